//! Signals out: CAEP `device-compliance-change` events, decided here and recorded by the store
//! in the same transaction as the change that causes them (an outbox: no change is lost between
//! the table and a receiver), and the security event tokens (RFC 8417) that carry them, signed
//! with the stack's signals key (never the assertion key), each once per receiver: every
//! delivery of an event to a receiver, by poll or push, carries the string signed first.
//!
//! A status change under a posture policy between compliant and non-compliant is an event
//! (`initiating_entity: policy`); `unknown` is none (the last known status stands). An
//! operator's lock is one (`not-compliant`, `initiating_entity: admin`), and so is the unlock
//! (the device's status under its policies: `compliant` when it has none).

use serde_json::{json, Value};

use crate::assertion::sign_es256;
use crate::error::CoreError;
use crate::model::{
    CaepStatus, ComplianceStatus, Device, Evaluation, InitiatingEntity, Receiver, SignalEvent,
    UnixTime, Verification,
};
use crate::ports::{random_alnum, ChallengeSigner, Clock, Random, SignalStore};

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
    // Unique, and in the writer's time order (the outbox settles what one writer wrote in this
    // order); delivery's order is the store's `seq`, never this writer's clock.
    let (now, millis) = (clock.now(), clock.now_millis().rem_euclid(1000));
    SignalEvent {
        id: format!("{now:011}.{millis:03}-{}", random_alnum(rng, 12)),
        seq: 0,
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

/// `event`'s security event token for a receiver, signed with the signals key `key`.
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

/// The SETs of `events` (consecutive settled events, in order) for `receiver`, by `jti`: each
/// one signed before is the string kept then; the others are signed now and kept (if two
/// deliveries sign one at once, the first kept wins and both carry it). So a receiver costs one
/// signature per event, however often it polls or its pushes are retried.
pub async fn sets_of<S, K>(
    store: &S,
    signer: &K,
    (key, issuer): (&str, &str),
    receiver: &Receiver,
    events: &[SignalEvent],
    now: UnixTime,
) -> Result<Vec<(String, String)>, CoreError>
where
    S: SignalStore,
    K: ChallengeSigner,
{
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Ok(Vec::new());
    };
    let kept = store
        .signed_sets(&receiver.id, first.seq.saturating_sub(1), last.seq)
        .await?;
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let set = match kept.iter().find(|(seq, _)| *seq == e.seq) {
            Some((_, set)) => set.clone(),
            None => {
                let set = sign_set(signer, key, e, issuer, &receiver.audience, now).await?;
                store.keep_signed_set(&receiver.id, e, &set, now).await?
            }
        };
        out.push((e.id.clone(), set));
    }
    Ok(out)
}
