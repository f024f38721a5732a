//! `endpoint-admin policy ...`: posture policies, their rules, the dry run and re-evaluation.

use std::io::Read;

use crate::clock::OperatorClock;
use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::audit::AuditKind;
use endpoint_core::compliance::admin;
use endpoint_core::compliance::assess::{duration_label, enforcement_label};
use endpoint_core::compliance::kinds;
use endpoint_core::compliance::rules::NewRule;
use endpoint_core::model::{Evaluation, Policy, Rule};
use endpoint_core::ports::{Clock, Directory, SystemRandom};
use serde_json::{json, Value};

use crate::error::AdminError;
use crate::output::{audit, Output};
use crate::policy_args::{PolicyCommand, RuleKindArgs};

/// A rule as `show` prints it: its kind's fields, title, remediation and enforcement.
fn rule_json(r: &Rule) -> Value {
    let mut json = serde_json::to_value(r).unwrap_or(Value::Null);
    json["enforcement"] = Value::String(enforcement_label(r.enforce));
    json
}

fn policy_json(p: &Policy) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "version": p.version,
        "max_facts_age": p.max_facts_age,
        "when_unknown": p.when_unknown.as_str(),
        "created_at": p.created_at,
        "rules": p.rules.iter().map(rule_json).collect::<Vec<_>>(),
    })
}

fn policy_line(p: &Policy) -> String {
    format!(
        "{}\t{}\tversion {}\t{} rules\tmax facts age {}\twhen unknown {}",
        p.id,
        p.name,
        p.version,
        p.rules.len(),
        duration_label(p.max_facts_age),
        p.when_unknown.as_str()
    )
}

fn rule_line(r: &Rule) -> String {
    format!(
        "rule\t{}\t{}\t{}\t{}",
        r.id,
        kinds::name(&r.kind),
        enforcement_label(r.enforce),
        r.title
    )
}

/// An evaluation as `policy test` prints it: every rule's result with the value seen.
pub(crate) fn evaluation_json(e: &Evaluation) -> Value {
    json!({
        "policy": e.policy,
        "version": e.version,
        "status": e.status.as_str(),
        "evaluated_at": e.evaluated_at,
        "facts_at": e.facts_at,
        "rules": e.rules.iter().map(|r| json!({
            "rule": r.rule,
            "title": r.title,
            "result": r.verdict.as_str(),
            "seen": r.seen,
            "enforcement": enforcement_label(r.enforce),
            "failing_since": r.failing_since,
        })).collect::<Vec<_>>(),
    })
}

fn evaluation_lines(e: &Evaluation) -> String {
    let mut lines = vec![format!(
        "{}\tversion {}\t{}",
        e.policy,
        e.version,
        e.status.as_str()
    )];
    for r in &e.rules {
        lines.push(format!(
            "{}\t{}\t{}\t{}\tseen: {}",
            r.rule,
            r.verdict.as_str(),
            enforcement_label(r.enforce),
            r.title,
            r.seen.as_deref().unwrap_or("-")
        ));
    }
    lines.join("\n")
}

fn read_facts(path: &std::path::Path) -> Result<Vec<u8>, AdminError> {
    let mut body = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut body).map(|_| ())
    } else {
        std::fs::read(path).map(|b| body = b)
    };
    read.map_err(|e| AdminError::Usage(format!("cannot read {}: {e}", path.display())))?;
    Ok(body)
}

pub(crate) async fn policy(
    cmd: PolicyCommand,
    store: &DynamoStore,
    clock: &OperatorClock,
    rng: &SystemRandom,
) -> Result<Output, AdminError> {
    match cmd {
        PolicyCommand::Create {
            name,
            max_facts_age,
            when_unknown,
        } => {
            let p = admin::create_policy(
                store,
                rng,
                clock.now(),
                &name,
                Some(max_facts_age),
                when_unknown,
            )
            .await?;
            Ok(Output::value("id", &p.id).audited(
                audit(AuditKind::PolicyChanged).reason(format!("policy {} created", p.id)),
            ))
        }
        PolicyCommand::AddRule { policy, kind } => {
            let RuleKindArgs { kind, options: o } = kind;
            let new = NewRule {
                kind,
                title: o.title,
                remediation: o.remediation,
                enforce: o.enforce,
                unknown: o.unknown,
            };
            let (p, rule) = admin::add_rule(store, rng, &policy, new).await?;
            let reason = format!(
                "policy {} version {}: rule {} added",
                p.id, p.version, rule.id
            );
            Ok(Output::value("id", &rule.id)
                .audited(audit(AuditKind::PolicyChanged).reason(reason)))
        }
        PolicyCommand::RemoveRule { policy, rule } => {
            let p = admin::remove_rule(store, &policy, &rule).await?;
            let reason = format!("policy {} version {}: rule {rule} removed", p.id, p.version);
            Ok(Output {
                plain: policy_line(&p),
                json: policy_json(&p),
                audit: Some(audit(AuditKind::PolicyChanged).reason(reason)),
            })
        }
        PolicyCommand::Show { policy } => show(store, &policy).await,
        PolicyCommand::List => list(store).await,
        PolicyCommand::Delete { policy } => {
            admin::delete_policy(store, &policy).await?;
            Ok(Output::value("deleted", &policy).audited(
                audit(AuditKind::PolicyChanged).reason(format!("policy {policy} deleted")),
            ))
        }
        PolicyCommand::Test {
            policy,
            device,
            facts,
        } => test(store, clock, &policy, device, facts).await,
        PolicyCommand::Reevaluate {
            policy,
            page_size,
            after,
        } => reevaluate(store, clock, &policy, page_size, after).await,
    }
}

/// `policy test`: the dry run on a device's stored facts or on a document.
async fn test(
    store: &DynamoStore,
    clock: &OperatorClock,
    policy: &str,
    device: Option<String>,
    facts: Option<std::path::PathBuf>,
) -> Result<Output, AdminError> {
    let p = admin::policy(store, policy).await?;
    let now = clock.now();
    let evaluation = match (device, facts) {
        (Some(serial), _) => admin::test_device(store, &p, &serial, now).await?,
        (None, Some(path)) => admin::test_document(&p, &read_facts(&path)?, now)?,
        (None, None) => return Err(AdminError::Usage("give --device or --facts".into())),
    };
    Ok(Output {
        plain: evaluation_lines(&evaluation),
        json: evaluation_json(&evaluation),
        audit: None,
    })
}

/// `policy reevaluate`: every device's stored facts, paged, progress on stderr.
async fn reevaluate(
    store: &DynamoStore,
    clock: &OperatorClock,
    policy: &str,
    page_size: u32,
    after: Option<String>,
) -> Result<Output, AdminError> {
    let done = admin::reevaluate(
        store,
        clock,
        &SystemRandom,
        policy,
        page_size as usize,
        after,
        |p| {
            eprintln!(
                "endpoint-admin: {} devices looked at, {} evaluated, last {}",
                p.devices,
                p.evaluated,
                p.after.as_deref().unwrap_or("-")
            );
        },
    )
    .await?;
    Ok(Output {
        plain: format!("devices={} evaluated={}", done.devices, done.evaluated),
        json: json!({"devices": done.devices, "evaluated": done.evaluated, "last": done.after}),
        audit: Some(audit(AuditKind::PolicyChanged).reason(format!(
            "policy {policy} re-evaluated on {} devices",
            done.evaluated
        ))),
    })
}

/// `policy show`: the policy and its rules.
async fn show(store: &DynamoStore, policy: &str) -> Result<Output, AdminError> {
    let p = admin::policy(store, policy).await?;
    let mut lines = vec![policy_line(&p)];
    lines.extend(p.rules.iter().map(rule_line));
    Ok(Output {
        plain: lines.join("\n"),
        json: policy_json(&p),
        audit: None,
    })
}

/// `policy list`.
async fn list(store: &DynamoStore) -> Result<Output, AdminError> {
    let list = store.list_policies().await?;
    Ok(Output {
        plain: list.iter().map(policy_line).collect::<Vec<_>>().join("\n"),
        json: json!({"policies": list.iter().map(policy_json).collect::<Vec<_>>()}),
        audit: None,
    })
}
