//! `POST check_in/`: the facts a device reports are stored, and evaluated against each posture
//! policy a stage of its connector uses; the evaluations are stored with the device, so the
//! login decides from the read it already makes.
//!
//! Rounds: the token (1), the device with its previous evaluations, the connector and the
//! device's check-in counter together (2), the connector's policies when it has any (3), then
//! the writes together (4): the facts, the check-in's audit record, and the evaluations with the
//! audit records of what changed.
//!
//! At most `check_ins_per_minute` (20) per device and minute: the counter is the first thing
//! decided after authentication, so a refused check-in (429 `throttled`, `Retry-After`) parses,
//! evaluates and stores nothing, and writes at most one audit record a minute.

use std::sync::Arc;

use super::{
    authenticated, device_token, first_refusal_in_minute, minute_end, retry_after,
    AuthenticatedDevice,
};
use crate::audit::{device_actor, AuditEvent, AuditKind};
use crate::compliance::cel::CelFacts;
use crate::compliance::evaluate::{change_reason, evaluate_in};
use crate::error::CoreError;
use crate::facts::{self, Facts};
use crate::model::{ComplianceStatus, Evaluation, FactsSnapshot, SignalEvent};
use crate::ports::{record_audit, Store};
use crate::settings::Env;
use crate::signals::compliance_change;

/// What a check-in's evaluations changed: the audit records, and the signal events of changes
/// between compliant and non-compliant.
#[derive(Default)]
struct Changes {
    audit: Vec<AuditEvent>,
    signals: Vec<SignalEvent>,
}

/// Evaluates `facts` against the connector's policies, carrying grace clocks over from the
/// device's previous evaluations; returns the evaluations and what changed.
async fn evaluations<S: Store>(
    store: &S,
    env: &Env<'_>,
    auth: &AuthenticatedDevice,
    facts: &Arc<Facts>,
    facts_at: i64,
) -> Result<(Vec<Evaluation>, Changes), CoreError> {
    if auth.connector.policies.is_empty() {
        return Ok((Vec::new(), Changes::default()));
    }
    let policies = store.get_policies(&auth.connector.policies).await?;
    let now = env.clock.now();
    let mut evaluations = Vec::with_capacity(policies.len());
    let mut changes = Changes::default();
    // One conversion of the document for CEL, and one budget of work, for every policy.
    let mut converted = CelFacts::new(facts);
    for policy in &policies {
        let previous = auth.evaluations.iter().find(|e| e.policy == policy.id);
        // The whole document is at hand here: nothing is truncated.
        let evaluation = evaluate_in(policy, &mut converted, false, facts_at, now, previous);
        let before = previous.map_or(ComplianceStatus::Unknown, |p| p.status);
        if before != evaluation.status {
            changes
                .audit
                .push(change_event(env, auth, &evaluation, before));
        }
        let known = previous.and_then(Evaluation::known).unwrap_or(before);
        let reason = || change_reason(&evaluation, known);
        let signal = compliance_change(
            env.rng,
            env.clock,
            &auth.device,
            previous,
            &evaluation,
            reason,
        );
        changes.signals.extend(signal);
        evaluations.push(evaluation);
    }
    tracing::info!(
        event = "compliance_evaluated",
        policies = evaluations.len(),
        changed = changes.audit.len(),
        signals = changes.signals.len(),
        "facts evaluated"
    );
    Ok((evaluations, changes))
}

/// The audit record of a device's status changing under a policy: the previous and current
/// status and the failing rules.
pub fn change_event(
    env: &Env<'_>,
    auth: &AuthenticatedDevice,
    evaluation: &Evaluation,
    before: ComplianceStatus,
) -> AuditEvent {
    let serial = &auth.device.identifier;
    env.audit(AuditKind::DeviceComplianceChanged, device_actor(serial))
        .device(serial)
        .connector(&auth.connector.id)
        .reason(change_reason(evaluation, before))
}

/// `POST check_in/`: stores the facts snapshot (compressed; a bounded subset, marked truncated,
/// if it does not fit a DynamoDB item), expiring after the connector's snapshot expiry, and the
/// device's evaluation under each policy of the connector's stages.
pub async fn check_in<S: Store>(
    store: &S,
    env: &Env<'_>,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<(), CoreError> {
    let (token, hash) = device_token(store, env.clock, authorization).await?;
    let now = env.clock.now();
    let window_end = minute_end(now);
    let bucket = format!("check_in#{}#{window_end}", token.device);
    let limit = env.settings.check_ins_per_minute;
    // The counter is taken beside the device and connector reads: no extra round trip.
    let (auth, allowed) = futures::join!(
        authenticated(store, env.clock, token, hash),
        store.take(&bucket, limit, window_end)
    );
    let auth = auth?;
    if !allowed? {
        if first_refusal_in_minute(store, "check_in", &auth.device.id, window_end).await {
            let serial = &auth.device.identifier;
            let event = env
                .audit(AuditKind::CheckInRefused, device_actor(serial))
                .device(serial)
                .connector(&auth.connector.id)
                .reason("rate_limited");
            record_audit(store, &event).await;
        }
        return Err(retry_after(window_end, now));
    }
    let facts = Arc::new(facts::parse(body)?);
    let (evaluations, changes) = evaluations(store, env, &auth, &facts, now).await?;
    let stored = facts::store(&facts);
    if stored.truncated {
        tracing::warn!(
            event = "facts_truncated",
            compressed_bytes = stored.deflate.len(),
            "facts snapshot stored as a bounded subset"
        );
    }
    let snapshot = FactsSnapshot {
        device: auth.device.identifier.clone(),
        connector: auth.connector.id.clone(),
        facts_deflate: stored.deflate,
        truncated: stored.truncated,
        created_at: now,
        expires_at: now + i64::from(auth.connector.snapshot_expiry),
    };
    let event = env
        .audit(AuditKind::CheckIn, device_actor(&snapshot.device))
        .device(&snapshot.device)
        .connector(&snapshot.connector);
    // The writes go out together: no extra round trip for the audit record or the evaluations.
    let (stored, (), evaluated) = futures::join!(
        store.put_facts(&snapshot),
        record_audit(store, &event),
        store.put_evaluations(
            &snapshot.device,
            &evaluations,
            &changes.audit,
            &changes.signals
        )
    );
    stored?;
    evaluated?;
    for change in &changes.audit {
        change.log();
    }
    Ok(())
}
