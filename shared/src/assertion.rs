//! The device assertion: what a relying party verifies offline, instead of trusting a plan
//! read alone. A short-lived ES256 JWT, signed in KMS with the stack's assertion key (its own
//! key: no function that signs challenges signs these), signed once per passed plan (at its
//! first read, then kept with the plan) and valid until at most `auth_time + 300`: after that
//! the plan reads `"assertion": null`, also if it was never read before.

use serde::Serialize;
use serde_json::{json, Value};

use crate::error::CoreError;
use crate::model::{Plan, PlanStatus, Stage, UnixTime};
use crate::ports::{random_alnum, ChallengeSigner, PlanStore, Random};
use crate::protocol::challenge::{assemble, typed_signing_input};
use crate::protocol::jwk::Jwks;
use crate::protocol::keys::SigningAlg;

/// How long after the plan passed (`auth_time`) its assertion is valid: the most the contract
/// allows. No assertion is signed or answered later than this.
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
    /// The claims of `plan`'s assertion signed at `now`, if it passed with a device: a plan
    /// that did not pass, or passed without one (an optional stage), has none. It expires
    /// [`ASSERTION_LIFETIME`] after `auth_time` (the plan's end), whenever it is signed.
    pub fn of(plan: &Plan, issuer: &str, now: UnixTime, jti: String) -> Option<Self> {
        let device = plan
            .device
            .as_ref()
            .filter(|_| plan.status == PlanStatus::Passed)?;
        // A plan that ended before its end was kept has no `auth_time` to bound an assertion.
        let auth_time = plan.ended_at?;
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
            exp: auth_time + ASSERTION_LIFETIME,
            jti,
            nonce: plan.nonce.clone(),
            sub: device.id.clone()?,
            serial: device.identifier.clone(),
            name: device.name.clone(),
            connector: plan.config.connector.clone(),
            stage: plan.stage.clone(),
            plan: plan.id.clone(),
            auth_time,
            compliance,
        })
    }
}

/// The most audiences one stage registers.
pub const MAX_AUDIENCES: usize = 20;

/// A stage's audiences as an operator gives them: each as a relying party may ask for it (1 to
/// 256 characters, no control characters), unique, at most [`MAX_AUDIENCES`].
pub fn parse_audiences(audiences: &[String]) -> Result<Vec<String>, CoreError> {
    if audiences.len() > MAX_AUDIENCES {
        return Err(CoreError::BadRequest(format!(
            "a stage registers at most {MAX_AUDIENCES} audiences"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(audiences.len());
    for a in audiences {
        check_assertion_request(None, Some(a))?;
        if !out.contains(a) {
            out.push(a.clone());
        }
    }
    Ok(out)
}

/// Checks that a plan of `stage` may ask for `audience`: the stage id (the default, always
/// allowed) or one of the stage's registered audiences.
pub fn check_audience(stage: &Stage, audience: Option<&str>) -> Result<(), CoreError> {
    match audience {
        None => Ok(()),
        Some(a) if a == stage.id || stage.audiences.iter().any(|r| r == a) => Ok(()),
        Some(_) => Err(CoreError::BadRequest(
            "audience is not registered for this stage (endpoint-admin stage set-audiences)".into(),
        )),
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

/// What a relying party's read of a plan shows of its device assertion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AssertionView {
    /// The plan did not pass with a device: no assertion at all (no field).
    Absent,
    /// Its assertion's time is over (`auth_time + 300`): `"assertion": null`.
    Expired,
    /// The plan's one assertion, the same string on every read.
    Signed(String),
}

/// The device assertion of `plan` read at `now`: the one kept with the plan; at the first read
/// of a passed plan, signed (one KMS `Sign`) and kept with one conditional write, so every
/// later read answers the same string. Of concurrent first reads each may sign, but one
/// assertion is kept and all of them answer it. After `auth_time + 300`, none.
pub async fn plan_assertion<P: PlanStore, K: ChallengeSigner>(
    plans: &P,
    signer: &K,
    key: &str,
    issuer: &str,
    plan: &Plan,
    now: UnixTime,
    rng: &(impl Random + ?Sized),
) -> Result<AssertionView, CoreError> {
    let Some(claims) = AssertionClaims::of(plan, issuer, now, random_alnum(rng, 24)) else {
        return Ok(AssertionView::Absent);
    };
    if now >= claims.exp {
        return Ok(AssertionView::Expired);
    }
    if let Some(kept) = &plan.assertion {
        return Ok(AssertionView::Signed(kept.clone()));
    }
    let signed = sign_es256(signer, key, ASSERTION_TYP, &claims).await?;
    Ok(match plans.keep_assertion(&plan.id, &signed).await? {
        Some(kept) => AssertionView::Signed(kept),
        // Expired and deleted between the read and the write.
        None => AssertionView::Absent,
    })
}

/// The public keys of the assertion key (`GET /.well-known/jwks.json`), with their `kid`.
pub async fn assertion_jwks<K: ChallengeSigner>(signer: &K, key: &str) -> Result<Jwks, CoreError> {
    let description = signer.describe(key).await?;
    Ok(Jwks {
        keys: vec![description.jwk],
    })
}
