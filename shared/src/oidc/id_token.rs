//! The ID token: its claims (OIDC Core 2, and the contract's), and its signature in KMS with
//! the provider's own keys (RS256: an RSA key; ES256 on request: a P-256 key).

use serde::Serialize;
use serde_json::Value;

use crate::error::CoreError;
use crate::model::{Grant, IdTokenAlg, OidcClient, Profile, UnixTime};
use crate::ports::ChallengeSigner;
use crate::protocol::challenge::{assemble, typed_signing_input};
use crate::protocol::keys::SigningAlg;

use super::{ACR_DEVICE, AMR_DEVICE, ID_TOKEN_LIFETIME};

/// The provider's signing keys (KMS key ids): never the assertion or the signals key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdKeys {
    pub rsa: Option<String>,
    pub ec: Option<String>,
}

impl IdKeys {
    /// The key of `alg`, if the stack has one.
    pub fn of(&self, alg: IdTokenAlg) -> Option<&str> {
        match alg {
            IdTokenAlg::RS256 => self.rsa.as_deref(),
            IdTokenAlg::ES256 => self.ec.as_deref(),
        }
    }
}

/// The claims of an ID token.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub iat: UnixTime,
    pub exp: UnixTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub auth_time: UnixTime,
    pub acr: String,
    pub amr: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<Value>,
}

impl IdTokenClaims {
    /// The claims for `grant` issued at `now` to `client`; `acr` is what the request asked
    /// for (profile `entra-eam`), else the provider's own.
    pub fn of(
        client: &OidcClient,
        issuer: &str,
        grant: &Grant,
        acr: Option<&str>,
        now: UnixTime,
    ) -> Self {
        IdTokenClaims {
            iss: issuer.to_string(),
            aud: client.id.clone(),
            sub: grant.sub.clone(),
            iat: now,
            exp: now + ID_TOKEN_LIFETIME,
            nonce: grant.nonce.clone(),
            auth_time: grant.auth_time,
            acr: match (client.profile, acr) {
                (Profile::EntraEam, Some(a)) => a.to_string(),
                _ => ACR_DEVICE.to_string(),
            },
            amr: vec![AMR_DEVICE],
            preferred_username: grant.preferred_username.clone(),
            email: grant.email.clone(),
            device: grant.device.clone(),
        }
    }
}

/// Signs the ID token of `grant` for `client` with the key of the client's algorithm (profile
/// `entra-eam`: RS256 whatever was asked, as Entra documents only RS256). One KMS `Sign`.
pub async fn sign_id_token<K: ChallengeSigner>(
    signer: &K,
    keys: &IdKeys,
    client: &OidcClient,
    issuer: &str,
    grant: &Grant,
    acr: Option<&str>,
    now: UnixTime,
) -> Result<String, CoreError> {
    let alg = match client.profile {
        Profile::EntraEam => IdTokenAlg::RS256,
        Profile::Code => client.alg,
    };
    let key = keys.of(alg).ok_or_else(|| {
        CoreError::Unavailable(format!("The stack has no {} ID token key.", alg.as_str()))
    })?;
    let description = signer.describe(key).await?;
    let want = match alg {
        IdTokenAlg::RS256 => SigningAlg::RS256,
        IdTokenAlg::ES256 => SigningAlg::ES256,
    };
    if description.alg != want {
        return Err(CoreError::Unavailable(format!(
            "The {} ID token key signs {}.",
            alg.as_str(),
            description.alg.as_str()
        )));
    }
    let claims = IdTokenClaims::of(client, issuer, grant, acr, now);
    let input = typed_signing_input(description.alg, &description.kid, "JWT", &claims);
    let signature = signer.sign(key, input.as_bytes()).await?;
    if signature.kid != description.kid {
        return Err(CoreError::Unavailable(
            "The ID token key changed while signing; try again.".into(),
        ));
    }
    Ok(assemble(&input, &signature.signature))
}
