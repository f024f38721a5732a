//! The device assertion: what a relying party verifies offline, instead of trusting a plan
//! read alone. A short-lived ES256 JWT, signed in KMS with the stack's assertion key (its own
//! key: no function that signs challenges signs these), minted when a passed plan is read.

use serde::Serialize;
use serde_json::{json, Value};

use crate::error::CoreError;
use crate::model::{Plan, PlanStatus, UnixTime};
use crate::ports::{random_alnum, ChallengeSigner, Random};
use crate::protocol::challenge::{assemble, typed_signing_input};
use crate::protocol::jwk::Jwks;
use crate::protocol::keys::SigningAlg;

/// How long an assertion is valid: the most the contract allows.
pub const ASSERTION_LIFETIME: i64 = 300;
/// Its JOSE `typ`.
pub const ASSERTION_TYP: &str = "device-assertion+jwt";
/// The most characters of a relying party's `nonce` (printable ASCII) and `audience`.
pub const MAX_NONCE_CHARS: usize = 128;
pub const MAX_AUDIENCE_CHARS: usize = 256;

/// The claims of a device assertion.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AssertionClaims {
    pub iss: String,
    pub aud: String,
    pub iat: UnixTime,
    pub exp: UnixTime,
    pub jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The device's stable id (the UUID of `agent_config`).
    pub sub: String,
    pub serial: String,
    pub name: String,
    pub connector: String,
    pub stage: String,
    pub plan: String,
    pub auth_time: UnixTime,
    /// `{"status", "policy", "failed": [rule ids]}` when the stage has a policy, else null.
    pub compliance: Value,
}

impl AssertionClaims {
    /// The claims of `plan`'s assertion at `now`, if it passed with a device: a plan that did
    /// not pass, or passed without one (an optional stage), has none.
    pub fn of(plan: &Plan, issuer: &str, now: UnixTime, jti: String) -> Option<Self> {
        let device = plan
            .device
            .as_ref()
            .filter(|_| plan.status == PlanStatus::Passed)?;
        let compliance = plan.compliance.as_ref().map_or(Value::Null, |c| {
            json!({
                "status": c.status.as_str(),
                "policy": c.policy,
                "failed": c.failed.iter().map(|r| r.rule.as_str()).collect::<Vec<_>>(),
            })
        });
        Some(AssertionClaims {
            iss: issuer.to_string(),
            aud: plan.audience.clone().unwrap_or_else(|| plan.stage.clone()),
            iat: now,
            exp: now + ASSERTION_LIFETIME,
            jti,
            nonce: plan.nonce.clone(),
            sub: device.id.clone()?,
            serial: device.identifier.clone(),
            name: device.name.clone(),
            connector: plan.config.connector.clone(),
            stage: plan.stage.clone(),
            plan: plan.id.clone(),
            auth_time: plan.ended_at.unwrap_or(now),
            compliance,
        })
    }
}

/// Checks a relying party's `nonce` (1 to 128 printable ASCII characters) and `audience` (1
/// to 256 characters, no control characters).
pub fn check_assertion_request(
    nonce: Option<&str>,
    audience: Option<&str>,
) -> Result<(), CoreError> {
    if let Some(n) = nonce {
        let printable = n.bytes().all(|b| (0x20..0x7f).contains(&b));
        if n.is_empty() || n.len() > MAX_NONCE_CHARS || !printable {
            return Err(CoreError::BadRequest(format!(
                "nonce must be 1 to {MAX_NONCE_CHARS} printable ASCII characters"
            )));
        }
    }
    if let Some(a) = audience {
        let chars = a.chars().count();
        if chars == 0 || chars > MAX_AUDIENCE_CHARS || a.chars().any(char::is_control) {
            return Err(CoreError::BadRequest(format!(
                "audience must be 1 to {MAX_AUDIENCE_CHARS} characters without control characters"
            )));
        }
    }
    Ok(())
}

/// Signs `typ`-typed `claims` with the ES256 key `key`: the compact JWS.
pub async fn sign_es256<K: ChallengeSigner>(
    signer: &K,
    key: &str,
    typ: &str,
    claims: &impl Serialize,
) -> Result<String, CoreError> {
    let description = signer.describe(key).await?;
    if description.alg != SigningAlg::ES256 {
        return Err(CoreError::Unavailable(format!(
            "the assertion key must be an ECC_NIST_P256 key (it signs {})",
            description.alg.as_str()
        )));
    }
    let input = typed_signing_input(description.alg, &description.kid, typ, claims);
    let signature = signer.sign(key, input.as_bytes()).await?;
    if signature.alg != description.alg || signature.kid != description.kid {
        return Err(CoreError::Unavailable(
            "The assertion key changed while signing; try again.".into(),
        ));
    }
    Ok(assemble(&input, &signature.signature))
}

/// The device assertion of `plan` at `now`, if it passed with a device.
pub async fn mint_assertion<K: ChallengeSigner>(
    signer: &K,
    key: &str,
    issuer: &str,
    plan: &Plan,
    now: UnixTime,
    rng: &(impl Random + ?Sized),
) -> Result<Option<String>, CoreError> {
    let Some(claims) = AssertionClaims::of(plan, issuer, now, random_alnum(rng, 24)) else {
        return Ok(None);
    };
    sign_es256(signer, key, ASSERTION_TYP, &claims)
        .await
        .map(Some)
}

/// The public keys of the assertion key (`GET /.well-known/jwks.json`), with their `kid`.
pub async fn assertion_jwks<K: ChallengeSigner>(signer: &K, key: &str) -> Result<Jwks, CoreError> {
    let description = signer.describe(key).await?;
    Ok(Jwks {
        keys: vec![description.jwk],
    })
}
