//! The OpenID provider whose one job is the device step (the API contract, "OpenID provider (the device step)").
//! The person was authenticated by the identity provider that calls it; this runs the client's
//! stage on the hosted page and answers what the device did, as an ID token.
//!
//! | file | job |
//! |---|---|
//! | `params.rs` | the request parameters, bounded |
//! | `authorize.rs` | the authorization endpoint: client, exact `redirect_uri`, the profile's rules, the plan |
//! | `resume.rs` | the browser's return from the hosted page: code, form-posted ID token, or the denial |
//! | `entra.rs` | profile `entra-eam`: the `id_token_hint` and the `claims` parameter |
//! | `token.rs` | the token endpoint (client authentication, code, PKCE) and `userinfo` |
//! | `id_token.rs` | the ID token's claims and its signature in KMS |
//! | `keys.rs` | the provider's JWKS, the RSA key's certificate (`x5c`) |
//! | `clients.rs` | the operator's client registrations |

pub mod authorize;
pub mod clients;
pub mod entra;
pub mod id_token;
pub mod keys;
pub mod params;
pub mod resume;
pub mod token;

use url::Url;

use crate::error::CoreError;
use crate::model::Profile;
pub use crate::model::OIDC_PLAN_PREFIX;

/// The `acr` of profile `code`'s ID tokens.
pub const ACR_DEVICE: &str = "urn:endpoint-stage:device";
/// The one `amr` value (RFC 8176: a hardware-backed device key proved possession).
pub const AMR_DEVICE: &str = "hwk";
/// How long an ID token is valid.
pub const ID_TOKEN_LIFETIME: i64 = 300;
/// The random characters of an authorization code (`[A-Za-z0-9]`, 256 bits); with regions
/// after its region's code (`region.rs`, `Regions::new_code`).
pub const CODE_CHARS: usize = 43;
/// How long a code may wait for its redemption.
pub const CODE_LIFETIME: i64 = 60;
/// How long an access token (for `userinfo` only) is valid.
pub const ACCESS_TOKEN_LIFETIME: i64 = 300;
/// The owner of the provider's plans: no relying party's IAM principal ever equals it, so
/// `GET /v1/plans/{plan}` answers 404 for them.
pub const OIDC_PLAN_OWNER: &str = "endpoint-stage:oidc-provider";

/// How a request failed before it could go back to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// An HTML error page with status 400 (an unknown client, an unregistered `redirect_uri`,
    /// malformed parameters): never a redirect.
    Page(String),
    /// A contract error (unavailable, throttled, not found).
    Core(CoreError),
}

impl From<CoreError> for Failure {
    fn from(e: CoreError) -> Self {
        Failure::Core(e)
    }
}

/// What goes back to the client's registered `redirect_uri`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A redirect to this URL (its query carries the parameters).
    Redirect(String),
    /// An auto-submitting form POST of `fields` to `action` (OAuth 2.0 Form Post Response Mode).
    FormPost {
        action: String,
        fields: Vec<(String, String)>,
    },
}

impl Answer {
    /// `fields` to `redirect_uri` the way `profile` answers: a query (profile `code`) or a form
    /// POST (profile `entra-eam`).
    pub fn of(profile: Profile, redirect_uri: &str, fields: Vec<(String, String)>) -> Answer {
        match profile {
            Profile::EntraEam => Answer::FormPost {
                action: redirect_uri.to_string(),
                fields,
            },
            Profile::Code => match Url::parse(redirect_uri) {
                Ok(mut url) => {
                    url.query_pairs_mut().extend_pairs(fields.iter());
                    Answer::Redirect(url.into())
                }
                // Registered URIs are absolute URLs (checked at registration).
                Err(_) => Answer::Redirect(redirect_uri.to_string()),
            },
        }
    }

    /// An OIDC error (`error`, `error_description`, `state`) to `redirect_uri`.
    pub fn error(
        profile: Profile,
        redirect_uri: &str,
        error: &str,
        description: &str,
        state: Option<&str>,
    ) -> Answer {
        let mut fields = vec![
            ("error".to_string(), error.to_string()),
            ("error_description".to_string(), description.to_string()),
        ];
        if let Some(s) = state {
            fields.push(("state".to_string(), s.to_string()));
        }
        Answer::of(profile, redirect_uri, fields)
    }
}

/// Lowercase hex SHA-256 of a secret (codes, access tokens and client secrets are stored so).
pub fn secret_hash(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(secret.as_bytes()))
}
