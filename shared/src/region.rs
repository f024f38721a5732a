//! Regions: which region a plan belongs to, and which region is the primary.
//!
//! Deployed in several regions (docs/ARCHITECTURE.md, "Regions"), every region shares one
//! global table whose replicas resolve conflicts last-writer-wins, and a conditional write sees
//! only its own region's copy. So a plan is written by one region only, its home: the region
//! that created it, whose short code its id carries (`<code>_<random>`, or
//! `ia_<code>_<random>` for interactive-auth plans). Its challenges are issued and consumed
//! there, and the single-use condition is decided by one table. Another region never reads or
//! writes it: it names the home region's base URL instead (the edge answers a redirect there).
//!
//! The random part is unchanged (at least 128 bits), so an id stays as unguessable as before; the
//! code only says where the plan lives. A plan id without a code (made before regions were
//! configured) belongs to the primary region.
//!
//! The OpenID provider's authorization codes are single-use the same way, so they are
//! region-affine too (`new_code`): `<code>_<random>`, redeemed only at the region that issued
//! it; another region's token endpoint names the home region instead (`home_of`).

use crate::error::CoreError;
use crate::model::{INTERACTIVE_PLAN_PREFIX, OIDC_PLAN_PREFIX};
use crate::ports::{random_alnum, random_id, Random};

/// Longest region code (`use1`, `euw1`: a few characters).
pub const MAX_REGION_CODE_LEN: usize = 8;
/// Most regions one deployment names (`REGION_BASE_URLS`).
pub const MAX_REGIONS: usize = 16;
/// Longest base URL of a region.
pub const MAX_BASE_URL_LEN: usize = 256;
/// The random bytes of a plan id (at least 128 bits: the contract).
pub const PLAN_ID_BYTES: usize = 24;

/// A region code: 1 to 8 lowercase ASCII letters and digits, never `ia` nor `oidc` (an id
/// starting with `ia_` is an interactive-auth plan: the agent function's only grant; `oidc_`, an
/// OpenID provider's plan, `oidc_<code>_<random>`).
pub fn valid_region_code(code: &str) -> bool {
    (1..=MAX_REGION_CODE_LEN).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && format!("{code}_") != INTERACTIVE_PLAN_PREFIX
        && format!("{code}_") != OIDC_PLAN_PREFIX
}

/// The region code a plan id carries, if any.
pub fn plan_region(id: &str) -> Option<&str> {
    let rest = id
        .strip_prefix(INTERACTIVE_PLAN_PREFIX)
        .or_else(|| id.strip_prefix(OIDC_PLAN_PREFIX))
        .unwrap_or(id);
    let (code, random) = rest.split_once('_')?;
    (valid_region_code(code)
        && !random.is_empty()
        && random.bytes().all(|b| b.is_ascii_alphanumeric()))
    .then_some(code)
}

/// Where a plan is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Home<'a> {
    /// In this region.
    Here,
    /// In the region `code`, at `base_url` when this deployment knows it.
    Elsewhere {
        code: &'a str,
        base_url: Option<&'a str>,
    },
}

/// The deployment's regions, from the functions' environment (`REGION_CODE`,
/// `REGION_BASE_URLS`, `PRIMARY_REGION`). The default is one region: plan ids carry no code and
/// every plan is served here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Regions {
    /// This region's code; `None`: one region.
    pub own: Option<String>,
    /// Each region's public base URL (where its page and executor are served), by code.
    pub base_urls: Vec<(String, String)>,
    /// The primary region's code (enrollment, the operator's CLI, the signals outbox);
    /// `None`: this region.
    pub primary: Option<String>,
    /// Affinity switched off: every region serves every plan from its own copy. Only the local
    /// regions stack's negative control sets it (`REGION_AFFINITY=off`), to show that the
    /// replay test catches the double pass it allows; never `template.yaml`.
    pub affinity_off: bool,
}

impl Regions {
    /// From the environment's values: `own` a code, `urls` `code=https://...` pairs separated
    /// by commas, `primary` a code, `affinity` `on` (default) or `off`.
    pub fn parse(
        own: Option<&str>,
        urls: Option<&str>,
        primary: Option<&str>,
        affinity: Option<&str>,
    ) -> Result<Regions, String> {
        let code = |name: &str, v: &str| -> Result<String, String> {
            let v = v.trim();
            if valid_region_code(v) {
                Ok(v.to_string())
            } else {
                Err(format!(
                    "{name} must be 1 to {MAX_REGION_CODE_LEN} lowercase letters and digits (not \"ia\"), got {v:?}"
                ))
            }
        };
        let own = match own.map(str::trim).filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => Some(code("REGION_CODE", v)?),
        };
        let mut base_urls: Vec<(String, String)> = Vec::new();
        for pair in urls.unwrap_or("").split(',').map(str::trim) {
            if pair.is_empty() {
                continue;
            }
            let Some((c, url)) = pair.split_once('=') else {
                return Err("REGION_BASE_URLS must be code=URL pairs separated by commas".into());
            };
            let c = code("REGION_BASE_URLS", c)?;
            let url = url.trim().trim_end_matches('/');
            if url.len() > MAX_BASE_URL_LEN
                || !(url.starts_with("https://") || url.starts_with("http://"))
                || url
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            {
                return Err(format!("REGION_BASE_URLS: {c}'s URL must be an http(s) URL of at most {MAX_BASE_URL_LEN} characters"));
            }
            if base_urls.iter().any(|(have, _)| *have == c) {
                return Err(format!("REGION_BASE_URLS names {c} twice"));
            }
            base_urls.push((c, url.to_string()));
        }
        if base_urls.len() > MAX_REGIONS {
            return Err(format!(
                "REGION_BASE_URLS names more than {MAX_REGIONS} regions"
            ));
        }
        let primary = match primary.map(str::trim).filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => Some(code("PRIMARY_REGION", v)?),
        };
        if (!base_urls.is_empty() || primary.is_some()) && own.is_none() {
            return Err("REGION_BASE_URLS and PRIMARY_REGION need REGION_CODE".into());
        }
        let affinity_off = match affinity.map(str::trim) {
            None | Some("" | "on") => false,
            Some("off") => true,
            Some(_) => return Err("REGION_AFFINITY must be on or off".into()),
        };
        Ok(Regions {
            own,
            base_urls,
            primary,
            affinity_off,
        })
    }

    /// A new plan id: `[A-Za-z0-9]` with at least 128 random bits, after this region's code
    /// (`<code>_`) and for an interactive-auth plan the `ia_` prefix before all.
    pub fn new_plan_id(&self, rng: &(impl Random + ?Sized), interactive: bool) -> String {
        let random = random_id(rng, PLAN_ID_BYTES);
        let prefix = if interactive {
            INTERACTIVE_PLAN_PREFIX
        } else {
            ""
        };
        match &self.own {
            Some(code) => format!("{prefix}{code}_{random}"),
            None => format!("{prefix}{random}"),
        }
    }

    /// A new authorization code of the OpenID provider: `len` random `[A-Za-z0-9]` characters,
    /// after this region's code (`<code>_<random>`) with regions; without, unchanged. Its home
    /// (`home_of`) is the region that issued it: only that region redeems it, so its single-use
    /// condition is decided by one region's table.
    pub fn new_code(&self, rng: &(impl Random + ?Sized), len: usize) -> String {
        let random = random_alnum(rng, len);
        match &self.own {
            Some(code) => format!("{code}_{random}"),
            None => random,
        }
    }

    /// This region's public base URL, if the deployment names it.
    pub fn own_base_url(&self) -> Option<&str> {
        let own = self.own.as_deref()?;
        self.base_url(own)
    }

    fn base_url(&self, code: &str) -> Option<&str> {
        self.base_urls
            .iter()
            .find(|(c, _)| c == code)
            .map(|(_, u)| u.as_str())
    }

    /// The primary region's base URL, when this region is not the primary and knows it.
    pub fn primary_base_url(&self) -> Option<&str> {
        if self.is_primary() {
            return None;
        }
        self.base_url(self.primary.as_deref()?)
    }

    /// Whether this region is the primary (one region: always).
    pub fn is_primary(&self) -> bool {
        match (&self.own, &self.primary) {
            (Some(own), Some(primary)) => own == primary,
            _ => true,
        }
    }

    /// Where the plan `id` (or the provider's authorization code `id`, `new_code`) is served:
    /// here, or in its home region.
    pub fn home_of<'a>(&'a self, id: &'a str) -> Home<'a> {
        let Some(own) = self.own.as_deref() else {
            return Home::Here;
        };
        if self.affinity_off {
            return Home::Here;
        }
        let code = match plan_region(id) {
            Some(code) => code,
            // Made before regions were configured: the primary's.
            None => match self.primary.as_deref() {
                Some(primary) => primary,
                None => own,
            },
        };
        if code == own {
            Home::Here
        } else {
            Home::Elsewhere {
                code,
                base_url: self.base_url(code),
            }
        }
    }

    /// Refuses a plan of another region before any read: this region never reads or writes it.
    /// (The edge answers a redirect to its home first; this is the domain's own guarantee.)
    pub fn check_home(&self, id: &str) -> Result<(), CoreError> {
        match self.home_of(id) {
            Home::Here => Ok(()),
            Home::Elsewhere { .. } => Err(CoreError::NotFound("plan".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SystemRandom;

    fn two(own: &str) -> Regions {
        Regions::parse(
            Some(own),
            Some("use1=https://a.example/,euw1=https://b.example"),
            Some("use1"),
            None,
        )
        .unwrap_or_default()
    }

    #[test]
    fn plan_ids_carry_their_region_and_keep_their_randomness() {
        let a = two("use1");
        let id = a.new_plan_id(&SystemRandom, false);
        assert!(id.starts_with("use1_"), "{id}");
        assert!(id.len() >= 5 + 33, "{id}");
        assert_eq!(plan_region(&id), Some("use1"));
        let ia = a.new_plan_id(&SystemRandom, true);
        assert!(ia.starts_with("ia_use1_"), "{ia}");
        assert_eq!(plan_region(&ia), Some("use1"));
        // An OpenID provider's plan: `oidc_<code>_<random>`, its home the region in it.
        let oidc = format!("{OIDC_PLAN_PREFIX}{}", a.new_plan_id(&SystemRandom, false));
        assert_eq!(plan_region(&oidc), Some("use1"));
        assert_eq!(
            two("euw1").home_of(&oidc),
            Home::Elsewhere {
                code: "use1",
                base_url: Some("https://a.example")
            }
        );
        // Made without regions: no code, the primary's.
        assert_eq!(plan_region("oidc_abcDEF123"), None);
        assert!(matches!(
            two("euw1").home_of("oidc_abcDEF123"),
            Home::Elsewhere { code: "use1", .. }
        ));
        let single = Regions::default().new_plan_id(&SystemRandom, false);
        assert!(
            single.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{single}"
        );
        assert_eq!(plan_region(&single), None);
    }

    #[test]
    fn a_plan_is_served_only_by_its_home_region() {
        let (a, b) = (two("use1"), two("euw1"));
        let id = a.new_plan_id(&SystemRandom, false);
        assert_eq!(a.home_of(&id), Home::Here);
        assert!(a.check_home(&id).is_ok());
        assert_eq!(
            b.home_of(&id),
            Home::Elsewhere {
                code: "use1",
                base_url: Some("https://a.example")
            }
        );
        assert!(matches!(b.check_home(&id), Err(CoreError::NotFound(_))));
        // An id without a code is the primary's; an unknown region has no URL.
        assert_eq!(a.home_of("abcDEF123"), Home::Here);
        assert!(matches!(
            b.home_of("abcDEF123"),
            Home::Elsewhere { code: "use1", .. }
        ));
        assert_eq!(
            a.home_of("apse2_abc"),
            Home::Elsewhere {
                code: "apse2",
                base_url: None
            }
        );
        // One region: everything here.
        assert_eq!(Regions::default().home_of("euw1_abc"), Home::Here);
    }

    #[test]
    fn authorization_codes_carry_their_region_and_are_redeemed_only_there() {
        let (a, b) = (two("use1"), two("euw1"));
        let code = a.new_code(&SystemRandom, 43);
        let (region, random) = code.split_once('_').unwrap_or_default();
        assert_eq!(region, "use1");
        assert_eq!(random.len(), 43);
        assert!(random.bytes().all(|c| c.is_ascii_alphanumeric()), "{code}");
        assert_eq!(a.home_of(&code), Home::Here);
        assert_eq!(
            b.home_of(&code),
            Home::Elsewhere {
                code: "use1",
                base_url: Some("https://a.example")
            }
        );
        // Affinity off (the negative control): any region redeems it.
        let b_off = Regions {
            affinity_off: true,
            ..two("euw1")
        };
        assert_eq!(b_off.home_of(&code), Home::Here);
        // One region: the code is as before, 43 characters of `[A-Za-z0-9]`, served here.
        let single = Regions::default().new_code(&SystemRandom, 43);
        assert_eq!(single.len(), 43);
        assert!(
            single.bytes().all(|c| c.is_ascii_alphanumeric()),
            "{single}"
        );
        assert_eq!(Regions::default().home_of(&single), Home::Here);
        // A code issued before regions were configured: the primary's.
        assert_eq!(
            b.home_of(&single),
            Home::Elsewhere {
                code: "use1",
                base_url: Some("https://a.example")
            }
        );
    }

    #[test]
    fn affinity_off_serves_every_plan_everywhere() {
        let b = Regions {
            affinity_off: true,
            ..two("euw1")
        };
        assert_eq!(b.home_of("use1_abc"), Home::Here);
    }

    #[test]
    fn region_codes_are_bounded_and_never_the_interactive_prefix() {
        for ok in ["use1", "a", "euw1", "12345678"] {
            assert!(valid_region_code(ok), "{ok}");
        }
        for bad in [
            "",
            "ia",
            "oidc",
            "USE1",
            "us-east-1",
            "123456789",
            "a_b",
            "é",
        ] {
            assert!(!valid_region_code(bad), "{bad}");
        }
        for not_coded in ["ia_abc", "abc", "Use1_abc", "use1_", "use1_a-b", "x_y_z"] {
            assert_eq!(plan_region(not_coded), None, "{not_coded}");
        }
    }

    #[test]
    fn configuration_is_validated() {
        assert_eq!(
            Regions::parse(None, None, None, None),
            Ok(Regions::default())
        );
        assert!(Regions::parse(Some("ia"), None, None, None).is_err());
        assert!(Regions::parse(None, Some("use1=https://a"), None, None).is_err());
        assert!(Regions::parse(Some("use1"), Some("use1"), None, None).is_err());
        assert!(Regions::parse(Some("use1"), Some("use1=ftp://a"), None, None).is_err());
        assert!(Regions::parse(
            Some("use1"),
            Some("use1=https://a,use1=https://b"),
            None,
            None
        )
        .is_err());
        assert!(Regions::parse(Some("use1"), None, None, Some("maybe")).is_err());
        let many: Vec<String> = (0..=MAX_REGIONS)
            .map(|i| format!("r{i}=https://r{i}"))
            .collect();
        assert!(Regions::parse(Some("r0"), Some(&many.join(",")), None, None).is_err());
        assert!(two("use1").is_primary());
        assert!(!two("euw1").is_primary());
        assert!(Regions::default().is_primary());
        assert_eq!(two("euw1").own_base_url(), Some("https://b.example"));
        assert_eq!(two("euw1").primary_base_url(), Some("https://a.example"));
        assert_eq!(two("use1").primary_base_url(), None);
    }
}
