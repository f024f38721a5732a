//! Entra ID's `id_token_hint` (external authentication method): Entra issues it already
//! expired on purpose, so it is verified by signature, issuer, tenant, audience and age, not by
//! `exp` (IDENTITY-PROVIDERS.md; Microsoft's "external authentication method provider"
//! reference).
//!
//! The rules, each failure a typed [`HintError`] (`error=access_denied` upstream):
//! - at most [`MAX_HINT_BYTES`]; a compact JWS whose header says `RS256` (`none`, `HS*`,
//!   `ES*`, `PS*` are refused before any key is looked at);
//! - signed by a key of the client's registered tenant JWKS (by `kid`);
//! - `iss` is `https://login.microsoftonline.com/{tid}/v2.0` with `{tid}` among the client's
//!   allowed tenants, and the `tid` claim, when present, is that same tenant;
//! - `aud` is the client's registered Entra application id;
//! - `iat` at most [`MAX_HINT_AGE`] seconds old and not more than [`MAX_CLOCK_SKEW`] in the
//!   future; `exp` and `nbf` are not checked;
//! - `sub` present (the ID token's `sub` must equal it).
//!
//! The signature is checked by `jsonwebtoken` (no hand-written cryptography).

use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use super::owners::HintNames;
use super::tenant_keys::TenantKeys;
use crate::model::UnixTime;
use crate::protocol::b64url_decode;

/// Longest hint accepted (Entra's are about 1.5 KiB).
pub const MAX_HINT_BYTES: usize = 16 * 1024;
/// Oldest hint accepted, by `iat` (seconds).
pub const MAX_HINT_AGE: i64 = 600;
/// How far in the future an `iat` may be (the two clocks' disagreement).
pub const MAX_CLOCK_SKEW: i64 = 300;
/// Entra's v2.0 issuer is this, the tenant id, and [`ISSUER_SUFFIX`].
pub const ISSUER_PREFIX: &str = "https://login.microsoftonline.com/";
pub const ISSUER_SUFFIX: &str = "/v2.0";

/// What a client registered of its Entra tenant(s).
#[derive(Clone, Copy, Debug)]
pub struct EntraRules<'a> {
    /// The application id of the provider's app registration in Entra (the hint's `aud`).
    pub app_id: &'a str,
    /// The tenant ids (`tid`) whose users may sign in.
    pub tenants: &'a [String],
}

/// A verified hint: who Entra says is signing in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedHint {
    /// The ID token's `sub` must be this.
    pub sub: String,
    pub tid: String,
    pub oid: Option<String>,
    pub preferred_username: Option<String>,
    pub email: Option<String>,
    pub iat: UnixTime,
}

impl VerifiedHint {
    /// The names owner matching reads (`owners::NamedBy::hint`).
    pub fn names(&self) -> HintNames<'_> {
        HintNames {
            preferred_username: self.preferred_username.as_deref(),
            email: self.email.as_deref(),
            sub: Some(self.sub.as_str()),
        }
    }
}

/// Why a hint is refused. The label goes to logs; the upstream answer is `access_denied`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HintError {
    #[error("no id_token_hint")]
    Missing,
    #[error("the id_token_hint is larger than {MAX_HINT_BYTES} bytes")]
    TooLarge,
    #[error("the id_token_hint is not a compact JWS")]
    Malformed,
    #[error("the id_token_hint is signed with {0}, not RS256")]
    Algorithm(String),
    #[error("the id_token_hint's key is not among the tenant's keys")]
    UnknownKey,
    #[error("the id_token_hint's signature does not verify")]
    BadSignature,
    #[error("the id_token_hint's issuer is not an Entra v2.0 issuer")]
    Issuer,
    #[error("the id_token_hint is from a tenant this client does not allow")]
    ForeignTenant,
    #[error("the id_token_hint is for another application")]
    Audience,
    #[error("the id_token_hint was issued too long ago")]
    TooOld,
    #[error("the id_token_hint was issued in the future")]
    FromTheFuture,
    #[error("the id_token_hint has no {0}")]
    MissingClaim(&'static str),
}

impl HintError {
    /// A short label for logs and the audit trail.
    pub fn as_str(&self) -> &'static str {
        match self {
            HintError::Missing => "hint_missing",
            HintError::TooLarge => "hint_too_large",
            HintError::Malformed => "hint_malformed",
            HintError::Algorithm(_) => "hint_algorithm",
            HintError::UnknownKey => "hint_unknown_key",
            HintError::BadSignature => "hint_bad_signature",
            HintError::Issuer => "hint_issuer",
            HintError::ForeignTenant => "hint_foreign_tenant",
            HintError::Audience => "hint_audience",
            HintError::TooOld => "hint_too_old",
            HintError::FromTheFuture => "hint_from_the_future",
            HintError::MissingClaim(_) => "hint_missing_claim",
        }
    }
}

/// The header fields read before a key is chosen.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// The claims read (others are ignored).
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    tid: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    oid: Option<String>,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    iat: Option<i64>,
}

/// `aud`: one string, or an array (RFC 7519 4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Audience::One(a) => a == wanted,
            Audience::Many(all) => all.iter().any(|a| a == wanted),
        }
    }
}

/// The `kid` of a hint's header, after the size and algorithm checks: what the caller needs
/// to pick (or fetch) the tenant's key set before [`verify_hint`].
pub fn hint_kid(hint: &str) -> Result<Option<String>, HintError> {
    Ok(header(hint)?.kid)
}

fn header(hint: &str) -> Result<Header, HintError> {
    if hint.is_empty() {
        return Err(HintError::Missing);
    }
    if hint.len() > MAX_HINT_BYTES {
        return Err(HintError::TooLarge);
    }
    let mut parts = hint.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HintError::Malformed);
    };
    let header: Header = b64url_decode(h)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(HintError::Malformed)?;
    if header.alg != "RS256" {
        return Err(HintError::Algorithm(header.alg.chars().take(16).collect()));
    }
    Ok(header)
}

/// Verifies `hint` against the tenant's `keys` and the client's `rules` at `now`.
pub fn verify_hint(
    hint: &str,
    keys: &TenantKeys,
    rules: &EntraRules<'_>,
    now: UnixTime,
) -> Result<VerifiedHint, HintError> {
    let header = header(hint)?;
    let key = keys
        .find(header.kid.as_deref())
        .ok_or(HintError::UnknownKey)?;
    // The signature alone: issuer, audience and times are checked below, with their own
    // errors (and `exp` deliberately not at all).
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Claims>(hint, &key.key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => HintError::BadSignature,
            _ => HintError::Malformed,
        })?
        .claims;

    let iss = claims
        .iss
        .as_deref()
        .ok_or(HintError::MissingClaim("iss"))?;
    let tid = iss
        .strip_prefix(ISSUER_PREFIX)
        .and_then(|rest| rest.strip_suffix(ISSUER_SUFFIX))
        .filter(|t| !t.is_empty() && !t.contains('/'))
        .ok_or(HintError::Issuer)?;
    if !rules.tenants.iter().any(|t| t == tid) {
        return Err(HintError::ForeignTenant);
    }
    if claims.tid.as_deref().is_some_and(|t| t != tid) {
        return Err(HintError::ForeignTenant);
    }
    let aud = claims.aud.as_ref().ok_or(HintError::MissingClaim("aud"))?;
    if !aud.contains(rules.app_id) {
        return Err(HintError::Audience);
    }
    let iat = claims.iat.ok_or(HintError::MissingClaim("iat"))?;
    if now - iat > MAX_HINT_AGE {
        return Err(HintError::TooOld);
    }
    if iat - now > MAX_CLOCK_SKEW {
        return Err(HintError::FromTheFuture);
    }
    let sub = claims
        .sub
        .filter(|s| !s.is_empty())
        .ok_or(HintError::MissingClaim("sub"))?;
    Ok(VerifiedHint {
        sub,
        tid: tid.to_string(),
        oid: claims.oid,
        preferred_username: claims.preferred_username,
        email: claims.email,
        iat,
    })
}
