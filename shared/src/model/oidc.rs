//! The OpenID provider's entities: the relying parties it serves (clients), what an
//! authorization request asked (kept with its plan), and the grants it issues (codes, access
//! tokens), each stored by the hash of its secret, never the secret.

use serde::{Deserialize, Serialize};

use super::UnixTime;

/// Which identity provider's rules a client follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Authorization code with PKCE S256 (Okta IdP authenticator, Keycloak, generic OIDC).
    Code,
    /// Entra ID external authentication method: implicit `id_token`, `form_post`, a verified
    /// `id_token_hint`.
    EntraEam,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Code => "code",
            Profile::EntraEam => "entra-eam",
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "code" => Ok(Profile::Code),
            "entra-eam" => Ok(Profile::EntraEam),
            other => Err(format!("unknown profile {other:?} (code or entra-eam)")),
        }
    }
}

/// How a client authenticates at the token endpoint (exactly one per client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
}

impl ClientAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::ClientSecretBasic => "client_secret_basic",
            ClientAuth::ClientSecretPost => "client_secret_post",
            ClientAuth::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

impl std::str::FromStr for ClientAuth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "client_secret_basic" => Ok(ClientAuth::ClientSecretBasic),
            "client_secret_post" => Ok(ClientAuth::ClientSecretPost),
            "private_key_jwt" => Ok(ClientAuth::PrivateKeyJwt),
            other => Err(format!(
                "unknown auth method {other:?} (client_secret_basic, client_secret_post or private_key_jwt)"
            )),
        }
    }
}

/// Where a set of public keys comes from: kept inline (read from a file by the operator), or
/// fetched from a URL (through the egress policy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// The JWKS document, as the operator's file held it.
    Inline(String),
    Uri(String),
}

/// The ID token signature algorithm a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdTokenAlg {
    RS256,
    ES256,
}

impl IdTokenAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            IdTokenAlg::RS256 => "RS256",
            IdTokenAlg::ES256 => "ES256",
        }
    }
}

impl std::str::FromStr for IdTokenAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "RS256" => Ok(IdTokenAlg::RS256),
            "ES256" => Ok(IdTokenAlg::ES256),
            other => Err(format!("unknown alg {other:?} (RS256 or ES256)")),
        }
    }
}

/// Which claim of the signing-in user names a device owner (`--match-owner`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerClaim {
    PreferredUsername,
    Email,
    Sub,
}

impl OwnerClaim {
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerClaim::PreferredUsername => "preferred_username",
            OwnerClaim::Email => "email",
            OwnerClaim::Sub => "sub",
        }
    }
}

impl std::str::FromStr for OwnerClaim {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "preferred_username" => Ok(OwnerClaim::PreferredUsername),
            "email" => Ok(OwnerClaim::Email),
            "sub" => Ok(OwnerClaim::Sub),
            other => Err(format!(
                "unknown claim {other:?} (preferred_username, email or sub)"
            )),
        }
    }
}

/// An Entra tenant set-up of an `entra-eam` client: the provider's app registration id (the
/// hint's `aud`), the tenants allowed (`tid`), and the tenant's signing keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntraTenant {
    pub app_id: String,
    pub tenants: Vec<String>,
    pub keys: KeySource,
}

/// A relying party of the OpenID provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcClient {
    pub id: String,
    pub name: String,
    pub profile: Profile,
    pub stage: String,
    /// Compared character for character with a request's `redirect_uri`.
    pub redirect_uris: Vec<String>,
    pub auth: ClientAuth,
    /// Lowercase hex SHA-256 of the client secret (secret methods only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_sha256: Option<String>,
    /// The client's public keys (`private_key_jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<KeySource>,
    pub alg: IdTokenAlg,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_owner: Option<OwnerClaim>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entra: Option<EntraTenant>,
    pub created_at: UnixTime,
}

/// What an authorization request asked, kept with the plan that runs the client's stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client: String,
    pub profile: Profile,
    pub redirect_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The PKCE S256 challenge (profile `code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    /// The request's `login_hint` (a selection, not a proof: owner matching reads it only
    /// without a verified hint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
    /// Profile `entra-eam`: the verified hint's `sub`, `preferred_username` and `email`, and the
    /// `acr` the `claims` asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint_sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// Why the request cannot pass whatever the device does (a hint that failed verification):
    /// answered as `access_denied` when the browser comes back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// The claims an issued code or access token stands for (what the ID token says).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub client: String,
    pub redirect_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub sub: String,
    pub auth_time: UnixTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `{"id", "serial", "name", "compliance"}` (profile `code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<serde_json::Value>,
    pub expires_at: UnixTime,
}
