//! Operator operations on posture policies (`endpoint-admin policy ...`, `stage set-policy`):
//! versioned changes that every stage using the policy follows, the dry run, and the paged
//! re-evaluation of stored facts.

use std::sync::Arc;

use super::evaluate::{change_reason, evaluate};
use super::rules::{self, NewRule, MAX_RULES};
use crate::audit::{device_actor, AuditEvent, AuditKind, Caller};
use crate::error::CoreError;
use crate::facts;
use crate::model::{
    ComplianceStatus, Evaluation, Policy, PolicyRef, Rule, Stage, UnixTime, WhenUnknown,
};
use crate::ports::{random_alnum, random_id, Clock, DeviceStore, Directory, Random};
use crate::signals::compliance_change;

/// How old facts may be unless the policy says otherwise: authentik's snapshot expiry.
pub const DEFAULT_MAX_FACTS_AGE: i64 = 24 * 3600;
/// Longest policy name.
pub const MAX_POLICY_NAME_CHARS: usize = 128;

/// The policy `id`, or 404.
pub async fn policy<D: Directory>(dir: &D, id: &str) -> Result<Policy, CoreError> {
    dir.get_policy(id)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("policy {id}")))
}

/// `policy create`.
pub async fn create_policy<D: Directory, R: Random + ?Sized>(
    dir: &D,
    rng: &R,
    now: UnixTime,
    name: &str,
    max_facts_age: Option<i64>,
    when_unknown: WhenUnknown,
) -> Result<Policy, CoreError> {
    if name.trim().is_empty()
        || name.chars().count() > MAX_POLICY_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(CoreError::BadRequest(format!(
            "a policy name is 1 to {MAX_POLICY_NAME_CHARS} characters without control characters"
        )));
    }
    let policy = Policy {
        id: random_id(rng, 12),
        name: name.to_string(),
        version: 1,
        max_facts_age: max_facts_age.unwrap_or(DEFAULT_MAX_FACTS_AGE),
        when_unknown,
        rules: Vec::new(),
        created_at: now,
    };
    dir.put_policy(&policy).await?;
    Ok(policy)
}

/// The stages that use policy `id`.
async fn stages_using<D: Directory>(dir: &D, id: &str) -> Result<Vec<Stage>, CoreError> {
    Ok(dir
        .list_stages()
        .await?
        .into_iter()
        .filter(|s| s.policy.as_ref().is_some_and(|p| p.id == id))
        .collect())
}

fn reference(policy: &Policy) -> PolicyRef {
    PolicyRef {
        id: policy.id.clone(),
        version: policy.version,
        when_unknown: policy.when_unknown,
    }
}

/// Stores a new version of `policy` and records it on every stage that uses it, so a plan
/// snapshots the version from the stage it already reads.
async fn new_version<D: Directory>(dir: &D, mut policy: Policy) -> Result<Policy, CoreError> {
    policy.version += 1;
    dir.put_policy(&policy).await?;
    for mut stage in stages_using(dir, &policy.id).await? {
        stage.policy = Some(reference(&policy));
        dir.put_stage(&stage).await?;
    }
    Ok(policy)
}

/// `policy add-rule`: the rule, validated (a CEL expression compiled with its bounds), with a
/// title and remediation; the policy's version increases.
pub async fn add_rule<D: Directory, R: Random + ?Sized>(
    dir: &D,
    rng: &R,
    policy_id: &str,
    new: NewRule,
) -> Result<(Policy, Rule), CoreError> {
    let mut policy = policy(dir, policy_id).await?;
    if policy.rules.len() >= MAX_RULES {
        return Err(CoreError::Conflict(format!(
            "policy {policy_id} has {MAX_RULES} rules, the most a policy holds"
        )));
    }
    let rule = rules::build(random_id(rng, 8), new)?;
    policy.rules.push(rule.clone());
    Ok((new_version(dir, policy).await?, rule))
}

/// `policy remove-rule`.
pub async fn remove_rule<D: Directory>(
    dir: &D,
    policy_id: &str,
    rule_id: &str,
) -> Result<Policy, CoreError> {
    let mut policy = policy(dir, policy_id).await?;
    let before = policy.rules.len();
    policy.rules.retain(|r| r.id != rule_id);
    if policy.rules.len() == before {
        return Err(CoreError::NotFound(format!("rule {rule_id}")));
    }
    new_version(dir, policy).await
}

/// `policy delete`: refused while a stage uses the policy.
pub async fn delete_policy<D: Directory>(dir: &D, id: &str) -> Result<(), CoreError> {
    policy(dir, id).await?;
    let using = stages_using(dir, id).await?;
    if let Some(stage) = using.first() {
        return Err(CoreError::Conflict(format!(
            "policy {id} is used by stage {} ({} stage(s) in all): set their policy to none first (stage set-policy STAGE none)",
            stage.id,
            using.len()
        )));
    }
    dir.delete_policy(id).await?;
    Ok(())
}

/// `stage set-policy STAGE POLICY|none`: the stage's policy, and its connector's list of the
/// policies its stages use (what `check_in/` evaluates).
pub async fn set_stage_policy<D: Directory>(
    dir: &D,
    stage_id: &str,
    policy_id: Option<&str>,
) -> Result<Stage, CoreError> {
    let mut stage = dir
        .get_stage(stage_id)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("stage {stage_id}")))?;
    stage.policy = match policy_id {
        Some(id) => Some(reference(&policy(dir, id).await?)),
        None => None,
    };
    dir.put_stage(&stage).await?;
    let mut connector = dir
        .get_connector(&stage.connector)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("connector {}", stage.connector)))?;
    let mut used: Vec<String> = dir
        .list_stages()
        .await?
        .into_iter()
        .filter(|s| s.connector == connector.id)
        .filter_map(|s| s.policy.map(|p| p.id))
        .collect();
    used.sort();
    used.dedup();
    connector.policies = used;
    dir.put_connector(&connector).await?;
    Ok(stage)
}

/// `policy test --facts FILE`: the policy on a document, now; nothing is stored.
pub fn test_document(policy: &Policy, body: &[u8], now: UnixTime) -> Result<Evaluation, CoreError> {
    let document = Arc::new(facts::parse(body)?);
    Ok(evaluate(policy, &document, false, now, now, None))
}

/// The latest stored facts of `serial` evaluated against `policy` at `now` (grace clocks
/// carried over from `previous`); `None` without a stored snapshot.
async fn evaluate_stored<S: DeviceStore>(
    store: &S,
    policy: &Policy,
    serial: &str,
    now: UnixTime,
    previous: Option<&Evaluation>,
) -> Result<Option<Evaluation>, CoreError> {
    let Some(snapshot) = store.latest_facts(serial, now).await? else {
        return Ok(None);
    };
    let document = facts::load(&snapshot.facts_deflate).ok_or_else(|| {
        CoreError::Unavailable(format!("the stored facts of {serial} could not be read"))
    })?;
    Ok(Some(evaluate(
        policy,
        &Arc::new(document),
        snapshot.truncated,
        snapshot.created_at,
        now,
        previous,
    )))
}

/// `policy test --device SERIAL`: the policy on the device's latest stored facts, now.
pub async fn test_device<S: DeviceStore + Directory>(
    store: &S,
    policy: &Policy,
    serial: &str,
    now: UnixTime,
) -> Result<Evaluation, CoreError> {
    let (_, evaluations) = store
        .device_profile(serial, now)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("device {serial}")))?;
    let previous = evaluations.iter().find(|e| e.policy == policy.id);
    evaluate_stored(store, policy, serial, now, previous)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("a current facts snapshot of device {serial}")))
}

/// Progress of `policy reevaluate`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Devices looked at.
    pub devices: usize,
    /// Devices whose stored facts were evaluated again.
    pub evaluated: usize,
    /// The last serial done: a run started after it goes on from there.
    pub after: Option<String>,
}

/// `policy reevaluate`: every device's latest stored facts against the policy's current
/// version, `page` devices at a time, calling `progress` after each page. Each device's result
/// is written on its own, so an interrupted run loses nothing and a run started again (from
/// the beginning, or after the last serial it reported) only redoes work.
pub async fn reevaluate<S, C, R, F>(
    store: &S,
    clock: &C,
    rng: &R,
    policy_id: &str,
    page: usize,
    after: Option<String>,
    mut progress: F,
) -> Result<Progress, CoreError>
where
    S: DeviceStore + Directory,
    C: Clock + ?Sized,
    R: Random + ?Sized,
    F: FnMut(&Progress),
{
    let policy = policy(store, policy_id).await?;
    let mut done = Progress {
        after,
        ..Progress::default()
    };
    loop {
        let now = clock.now();
        let (devices, next) = store
            .devices_page(done.after.as_deref(), page.max(1), now)
            .await?;
        if devices.is_empty() {
            return Ok(done);
        }
        for device in &devices {
            let (_, evaluations) = store
                .device_profile(&device.identifier, now)
                .await?
                .unwrap_or_else(|| (device.clone(), Vec::new()));
            let previous = evaluations.iter().find(|e| e.policy == policy.id);
            if let Some(e) =
                evaluate_stored(store, &policy, &device.identifier, now, previous).await?
            {
                // A status that changes is recorded with the evaluation, as at check-in.
                let before = previous.map_or(ComplianceStatus::Unknown, |p| p.status);
                let change = (before != e.status).then(|| {
                    AuditEvent::new(
                        AuditKind::DeviceComplianceChanged,
                        now,
                        &random_alnum(rng, 8),
                        device_actor(&device.identifier),
                        &Caller::UNKNOWN,
                    )
                    .device(&device.identifier)
                    .reason(format!("{} (re-evaluated)", change_reason(&e, before)))
                });
                let known = previous.and_then(Evaluation::known).unwrap_or(before);
                let reason = || change_reason(&e, known);
                let signal = compliance_change(rng, clock, device, previous, &e, reason);
                store
                    .put_evaluations(
                        &device.identifier,
                        std::slice::from_ref(&e),
                        change.as_slice(),
                        signal.as_slice(),
                    )
                    .await?;
                if let Some(event) = &change {
                    event.log();
                }
                done.evaluated += 1;
            }
            done.devices += 1;
        }
        done.after = devices.last().map(|d| d.identifier.clone()).or(done.after);
        progress(&done);
        if next.is_none() {
            return Ok(done);
        }
    }
}
