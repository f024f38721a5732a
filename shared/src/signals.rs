//! Signals out: CAEP `device-compliance-change` events, decided here and recorded by the store
//! in the same transaction as the change that causes them (an outbox: no change is lost between
//! the table and a receiver), and the security event tokens (RFC 8417) that carry them, signed
//! with the stack's assertion key.
//!
//! A status change under a posture policy between compliant and non-compliant is an event
//! (`initiating_entity: policy`); `unknown` is none (the last known status stands). An
//! operator's lock is one (`not-compliant`, `initiating_entity: admin`), and so is the unlock
//! (the device's status under its policies: `compliant` when it has none).

use serde_json::{json, Value};

use crate::assertion::sign_es256;
use crate::error::CoreError;
use crate::model::{
    CaepStatus, ComplianceStatus, Device, Evaluation, InitiatingEntity, SignalEvent, UnixTime,
    Verification,
};
use crate::ports::{random_alnum, ChallengeSigner, Clock, Random};

/// The CAEP event type this transmitter sends.
pub const DEVICE_COMPLIANCE_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/device-compliance-change";
/// The JOSE `typ` of a security event token.
pub const SET_TYP: &str = "secevent+jwt";

/// CAEP's name of a status; `unknown` has none.
pub fn caep(status: ComplianceStatus) -> Option<CaepStatus> {
    match status {
        ComplianceStatus::Compliant => Some(CaepStatus::Compliant),
        ComplianceStatus::NonCompliant => Some(CaepStatus::NotCompliant),
        ComplianceStatus::Unknown => None,
    }
}

/// A device's status under all its policies: not compliant if any evaluation says so,
/// otherwise compliant (also with none).
pub fn overall(evaluations: &[Evaluation]) -> CaepStatus {
    if evaluations
        .iter()
        .any(|e| e.status == ComplianceStatus::NonCompliant)
    {
        CaepStatus::NotCompliant
    } else {
        CaepStatus::Compliant
    }
}

fn event(
    rng: &(impl Random + ?Sized),
    clock: &(impl Clock + ?Sized),
    device: &Device,
    (previous, current): (CaepStatus, CaepStatus),
    initiating_entity: InitiatingEntity,
    reason: String,
) -> SignalEvent {
    // Time-ordered to the millisecond, so that one device's changes within a second keep
    // their order (`<seconds>.<millis>-<random>`, after a stream's `<seconds>` cursor).
    let (now, millis) = (clock.now(), clock.now_millis().rem_euclid(1000));
    SignalEvent {
        id: format!("{now:011}.{millis:03}-{}", random_alnum(rng, 12)),
        time: now,
        device_id: device.id.clone(),
        serial: device.identifier.clone(),
        previous_status: previous,
        current_status: current,
        initiating_entity,
        reason,
        txn: random_alnum(rng, 16),
    }
}

/// The event of a device's evaluation under a policy, if its status changed between
/// compliant and non-compliant since the last known one (`before`: the previous evaluation);
/// `reason` says what changed (the policy, its failing rules).
pub fn compliance_change(
    rng: &(impl Random + ?Sized),
    clock: &(impl Clock + ?Sized),
    device: &Device,
    before: Option<&Evaluation>,
    evaluation: &Evaluation,
    reason: impl FnOnce() -> String,
) -> Option<SignalEvent> {
    let before = before.and_then(Evaluation::known)?;
    let (previous, current) = (caep(before)?, caep(evaluation.status)?);
    let statuses = (previous, current);
    (previous != current).then(|| {
        event(
            rng,
            clock,
            device,
            statuses,
            InitiatingEntity::Policy,
            reason(),
        )
    })
}

/// The event of an operator's lock (`locked`) or unlock of a device whose evaluations are
/// `evaluations`.
pub fn lock_change(
    rng: &(impl Random + ?Sized),
    clock: &(impl Clock + ?Sized),
    device: &Device,
    evaluations: &[Evaluation],
    locked: bool,
    reason: Option<&str>,
) -> SignalEvent {
    let status = overall(evaluations);
    let (statuses, what) = if locked {
        (
            (status, CaepStatus::NotCompliant),
            "locked by an administrator",
        )
    } else {
        (
            (CaepStatus::NotCompliant, status),
            "unlocked by an administrator",
        )
    };
    let reason = match reason {
        Some(r) => format!("{what}: {r}"),
        None => what.to_string(),
    };
    event(
        rng,
        clock,
        device,
        statuses,
        InitiatingEntity::Admin,
        reason,
    )
}

/// The claims of `event`'s security event token for a receiver whose audience is `audience`:
/// RFC 8417 with CAEP's fields, the device as a complex subject, one event, no `sub`, no `exp`.
pub fn set_claims(event: &SignalEvent, issuer: &str, audience: &str, now: UnixTime) -> Value {
    json!({
        "iss": issuer,
        "jti": event.id,
        "iat": now,
        "aud": audience,
        "txn": event.txn,
        "sub_id": {
            "format": "complex",
            "device": {"format": "opaque", "id": event.device_id},
        },
        "events": {
            DEVICE_COMPLIANCE_CHANGE: {
                "previous_status": event.previous_status.as_str(),
                "current_status": event.current_status.as_str(),
                "initiating_entity": event.initiating_entity,
                "reason_admin": {"en": event.reason},
                "event_timestamp": event.time,
            }
        },
    })
}

/// `event`'s security event token for a receiver, signed with the assertion key `key`.
pub async fn sign_set<K: ChallengeSigner>(
    signer: &K,
    key: &str,
    event: &SignalEvent,
    issuer: &str,
    audience: &str,
    now: UnixTime,
) -> Result<String, CoreError> {
    let claims = set_claims(event, issuer, audience, now);
    sign_es256(signer, key, SET_TYP, &claims).await
}

/// The SSF verification event type.
pub const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";

/// The verification SET a receiver asked for on stream `stream` (its `state` echoed).
pub async fn sign_verification<K: ChallengeSigner>(
    signer: &K,
    key: &str,
    issuer: &str,
    audience: &str,
    stream: &str,
    verification: &Verification,
    now: UnixTime,
) -> Result<String, CoreError> {
    let mut event = json!({});
    if let Some(state) = &verification.state {
        event["state"] = Value::String(state.clone());
    }
    let claims = json!({
        "iss": issuer,
        "jti": verification.jti,
        "iat": now,
        "aud": audience,
        "sub_id": {"format": "opaque", "id": stream},
        "events": {VERIFICATION: event},
    });
    sign_es256(signer, key, SET_TYP, &claims).await
}
