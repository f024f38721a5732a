//! Devices bound to people: whether the person an identity provider names is one of the
//! device's owners, and what the ID token then says of them.
//!
//! The rules (docs/OPERATING.md, "Device owners"):
//! - The person is named by the verified `id_token_hint` when there is one (Entra), else by
//!   the request's `login_hint` (which passes through the browser and is only a selection: the
//!   ID token then carries the matched owner's `preferred_username` and `email`, which the
//!   identity provider compares with the person it authenticated, as Okta does).
//! - `preferred_username` and `email` compare ASCII case-insensitively (Entra UPNs, Okta
//!   usernames and email addresses are case-insensitive in practice); letters outside ASCII
//!   compare exactly (no Unicode case folding: the Kelvin sign is no `k`). `sub` compares
//!   exactly (an opaque, case-sensitive identifier).
//! - Nothing is trimmed or normalised otherwise; a named value longer than an owner name can
//!   be matches nothing.

use crate::model::MAX_OWNER_CHARS;

/// Which claim of the signing-in person names a device owner (a client's `--match-owner`):
/// the model's, stored with the client.
pub use crate::model::OwnerClaim;

/// What the identity provider said of the signing-in person: the claims of a verified
/// `id_token_hint` (`None` when the request had none) and the request's `login_hint`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NamedBy<'a> {
    pub hint: Option<HintNames<'a>>,
    pub login_hint: Option<&'a str>,
}

/// The naming claims of a verified `id_token_hint`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HintNames<'a> {
    pub preferred_username: Option<&'a str>,
    pub email: Option<&'a str>,
    pub sub: Option<&'a str>,
}

impl<'a> NamedBy<'a> {
    /// The value that names the person for `claim`: the verified hint's claim when a hint was
    /// verified (an unverified `login_hint` never overrides or completes a verified hint),
    /// else the `login_hint`.
    pub fn named(&self, claim: OwnerClaim) -> Option<&'a str> {
        match &self.hint {
            Some(h) => match claim {
                OwnerClaim::PreferredUsername => h.preferred_username,
                OwnerClaim::Email => h.email,
                OwnerClaim::Sub => h.sub,
            },
            None => self.login_hint,
        }
        .filter(|v| !v.is_empty())
    }
}

/// The owner the person was matched to, and what the ID token says of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchedOwner {
    /// The owner as the operator stored it (the ID token's `sub` in profile `code`).
    pub owner: String,
    /// The ID token's `preferred_username`: the name as the identity provider spelled it
    /// (matching `preferred_username` or `email`, so that its own comparison of the claim
    /// with the person it authenticated succeeds whatever the case of the operator's entry),
    /// or the stored owner (matching `sub`).
    pub preferred_username: String,
    /// The ID token's `email`: that same name when it is shaped like an email address.
    pub email: Option<String>,
}

/// Why a device does not pass for the person: each is `error=access_denied` upstream, with
/// [`OwnerMismatch::description`] as its `error_description`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OwnerMismatch {
    /// The device has no owners: a client that matches owners passes no unowned device.
    #[error("device has no owner")]
    NoOwners,
    /// Neither the hint nor the `login_hint` named the person by the client's claim.
    #[error("the identity provider did not name the user")]
    NoUserNamed,
    /// The person is not among the device's owners.
    #[error("the user is not an owner of the device")]
    NotAnOwner,
}

impl OwnerMismatch {
    /// A short label for logs and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerMismatch::NoOwners => "device_has_no_owner",
            OwnerMismatch::NoUserNamed => "user_not_named",
            OwnerMismatch::NotAnOwner => "not_an_owner",
        }
    }

    /// The sentence for `error_description` (and the person, on the page): no owner's name.
    pub fn description(self) -> &'static str {
        match self {
            OwnerMismatch::NoOwners => "This device is not assigned to anyone.",
            OwnerMismatch::NoUserNamed => {
                "The sign-in did not say who is signing in, so the device's owner cannot be checked."
            }
            OwnerMismatch::NotAnOwner => "This device belongs to someone else.",
        }
    }
}

/// Whether two owner names are the same person's under `claim`'s rule.
pub fn same_owner(claim: OwnerClaim, a: &str, b: &str) -> bool {
    match claim {
        OwnerClaim::Sub => a == b,
        OwnerClaim::PreferredUsername | OwnerClaim::Email => a.eq_ignore_ascii_case(b),
    }
}

/// The decision: the device's owner the person named by `named` (under `claim`) is, or why
/// the device does not pass for them. Bounded: at most the device's owners (16) compared with
/// one name of at most 256 characters.
pub fn match_owner(
    claim: OwnerClaim,
    named: &NamedBy<'_>,
    owners: &[String],
) -> Result<MatchedOwner, OwnerMismatch> {
    if owners.is_empty() {
        return Err(OwnerMismatch::NoOwners);
    }
    let name = named.named(claim).ok_or(OwnerMismatch::NoUserNamed)?;
    if name.chars().count() > MAX_OWNER_CHARS {
        return Err(OwnerMismatch::NotAnOwner);
    }
    let owner = owners
        .iter()
        .find(|o| same_owner(claim, o, name))
        .ok_or(OwnerMismatch::NotAnOwner)?;
    let preferred_username = match claim {
        OwnerClaim::Sub => owner.clone(),
        OwnerClaim::PreferredUsername | OwnerClaim::Email => name.to_string(),
    };
    let email = is_email_shaped(&preferred_username).then(|| preferred_username.clone());
    Ok(MatchedOwner {
        owner: owner.clone(),
        preferred_username,
        email,
    })
}

/// [`match_owner`], except that when nobody was named (no verified hint, no `login_hint`) a
/// device with exactly one owner matches that owner. Only for a client whose identity provider
/// compares the ID token's `preferred_username` with the person it authenticated and refuses
/// another (Okta's IdP authenticator maps `preferred_username` to the Okta username): the
/// provider then is the check, and a device of several owners still needs a name.
pub fn match_owner_or_sole(
    claim: OwnerClaim,
    named: &NamedBy<'_>,
    owners: &[String],
) -> Result<MatchedOwner, OwnerMismatch> {
    match (named.named(claim), owners) {
        (None, [only]) => Ok(MatchedOwner {
            owner: only.clone(),
            preferred_username: only.clone(),
            email: is_email_shaped(only).then(|| only.clone()),
        }),
        _ => match_owner(claim, named, owners),
    }
}

/// An address `local@domain`: one `@`, something on each side, a dot in the domain that
/// neither starts nor ends it. Only the shape, to know whether a name goes in `email`.
pub fn is_email_shaped(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn login(hint: &str) -> NamedBy<'_> {
        NamedBy {
            hint: None,
            login_hint: Some(hint),
        }
    }

    #[test]
    fn a_named_owner_matches_and_the_token_carries_the_providers_spelling() {
        let m = match_owner(
            OwnerClaim::PreferredUsername,
            &login("Alice@Example.com"),
            &owners(&["bob", "alice@example.com"]),
        )
        .unwrap();
        assert_eq!(m.owner, "alice@example.com");
        assert_eq!(m.preferred_username, "Alice@Example.com");
        assert_eq!(m.email.as_deref(), Some("Alice@Example.com"));
    }

    #[test]
    fn a_username_owner_gets_no_email() {
        let m = match_owner(
            OwnerClaim::PreferredUsername,
            &login("BOB"),
            &owners(&["bob"]),
        )
        .unwrap();
        assert_eq!((m.owner.as_str(), m.email), ("bob", None));
    }

    #[test]
    fn someone_else_is_not_an_owner() {
        let r = match_owner(
            OwnerClaim::Email,
            &login("mallory@example.com"),
            &owners(&["alice@example.com"]),
        );
        assert_eq!(r, Err(OwnerMismatch::NotAnOwner));
    }

    #[test]
    fn an_unowned_device_and_an_unnamed_person_are_refused() {
        assert_eq!(
            match_owner(OwnerClaim::Email, &login("a@example.com"), &[]),
            Err(OwnerMismatch::NoOwners)
        );
        assert_eq!(
            match_owner(
                OwnerClaim::Email,
                &NamedBy::default(),
                &owners(&["a@example.com"])
            ),
            Err(OwnerMismatch::NoUserNamed)
        );
        assert_eq!(
            match_owner(OwnerClaim::Email, &login(""), &owners(&["a@example.com"])),
            Err(OwnerMismatch::NoUserNamed)
        );
    }

    #[test]
    fn sub_compares_exactly() {
        let o = owners(&["AbC123"]);
        assert_eq!(
            match_owner(OwnerClaim::Sub, &login("abc123"), &o),
            Err(OwnerMismatch::NotAnOwner)
        );
        let m = match_owner(OwnerClaim::Sub, &login("AbC123"), &o).unwrap();
        assert_eq!((m.preferred_username.as_str(), m.email), ("AbC123", None));
    }

    #[test]
    fn no_unicode_case_folding() {
        // U+212A KELVIN SIGN lowercases to `k` under Unicode rules, not under ASCII ones.
        let r = match_owner(
            OwnerClaim::PreferredUsername,
            &login("\u{212A}im"),
            &owners(&["kim"]),
        );
        assert_eq!(r, Err(OwnerMismatch::NotAnOwner));
        // Non-ASCII letters compare exactly.
        assert!(match_owner(
            OwnerClaim::PreferredUsername,
            &login("jürgen"),
            &owners(&["jürgen"])
        )
        .is_ok());
        assert!(match_owner(
            OwnerClaim::PreferredUsername,
            &login("JÜRGEN"),
            &owners(&["jürgen"])
        )
        .is_err());
    }

    #[test]
    fn a_verified_hint_wins_over_the_login_hint_and_is_not_completed_by_it() {
        let o = owners(&["alice@example.com"]);
        let hint = HintNames {
            preferred_username: Some("mallory@example.com"),
            email: None,
            sub: Some("s"),
        };
        let named = NamedBy {
            hint: Some(hint),
            login_hint: Some("alice@example.com"),
        };
        assert_eq!(
            match_owner(OwnerClaim::PreferredUsername, &named, &o),
            Err(OwnerMismatch::NotAnOwner)
        );
        // The hint has no email: the login_hint does not stand in for it.
        assert_eq!(
            match_owner(OwnerClaim::Email, &named, &o),
            Err(OwnerMismatch::NoUserNamed)
        );
    }

    #[test]
    fn an_overlong_name_matches_nothing() {
        let long = "a".repeat(MAX_OWNER_CHARS + 1);
        let r = match_owner(OwnerClaim::Sub, &login(&long), &owners(&[&long]));
        assert_eq!(r, Err(OwnerMismatch::NotAnOwner));
    }

    #[test]
    fn the_sole_owner_stands_in_only_when_nobody_is_named() {
        let one = owners(&["alice@example.com"]);
        let m =
            match_owner_or_sole(OwnerClaim::PreferredUsername, &NamedBy::default(), &one).unwrap();
        assert_eq!(m.preferred_username, "alice@example.com");
        assert_eq!(m.email.as_deref(), Some("alice@example.com"));
        // Named: the strict rule.
        assert_eq!(
            match_owner_or_sole(OwnerClaim::PreferredUsername, &login("bob"), &one),
            Err(OwnerMismatch::NotAnOwner)
        );
        // Several owners and nobody named: no guess.
        let two = owners(&["alice@example.com", "bob"]);
        assert_eq!(
            match_owner_or_sole(OwnerClaim::PreferredUsername, &NamedBy::default(), &two),
            Err(OwnerMismatch::NoUserNamed)
        );
        assert_eq!(
            match_owner_or_sole(OwnerClaim::PreferredUsername, &NamedBy::default(), &[]),
            Err(OwnerMismatch::NoOwners)
        );
    }

    #[test]
    fn email_shapes() {
        assert!(is_email_shaped("a@b.example"));
        for not in ["a", "@b.example", "a@b", "a@.b", "a@b.", "a@b@c.d"] {
            assert!(!is_email_shaped(not), "{not}");
        }
    }

    #[test]
    fn claims_parse_and_print() {
        for c in [
            OwnerClaim::PreferredUsername,
            OwnerClaim::Email,
            OwnerClaim::Sub,
        ] {
            assert_eq!(c.as_str().parse::<OwnerClaim>(), Ok(c));
        }
        assert!("upn".parse::<OwnerClaim>().is_err());
    }
}
