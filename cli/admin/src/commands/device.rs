//! `endpoint-admin device ...`: devices, their tokens and facts.

use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::admin;
use endpoint_core::audit::AuditKind;
use endpoint_core::compliance::assess::assess;
use endpoint_core::facts;
use endpoint_core::model::{Device, Evaluation, PolicyRef, Verdict, WhenUnknown};
use endpoint_core::ports::{Clock, DeviceStore, Directory};
use endpoint_core::ports::{SystemClock, SystemRandom};
use serde_json::{json, Value};

use crate::cli::DeviceCommand;
use crate::error::AdminError;
use crate::output::{audit, Output};

pub(crate) async fn device(
    cmd: &DeviceCommand,
    store: &DynamoStore,
    clock: &SystemClock,
    rng: &SystemRandom,
) -> Result<Output, AdminError> {
    let now = clock.now();
    match cmd {
        DeviceCommand::Enroll {
            connector,
            serial,
            name,
        } => {
            store
                .get_connector(connector)
                .await?
                .ok_or_else(|| AdminError::NotFound(format!("connector {connector}")))?;
            let (_, key) = admin::enroll_device(store, clock, rng, connector, serial, name).await?;
            Ok(Output {
                plain: key.expose().to_string(),
                json: json!({"identifier": serial, "token": key.expose()}),
                audit: Some(
                    audit(AuditKind::DeviceEnrolledByOperator)
                        .connector(connector)
                        .device(serial),
                ),
            })
        }
        DeviceCommand::List {
            non_compliant: true,
            policy,
        } => {
            let list = store.non_compliant(policy.as_deref()).await?;
            Ok(Output {
                plain: list
                    .iter()
                    .map(|(serial, e)| {
                        format!(
                            "{serial}\t{}\t{}\tevaluated {}",
                            e.policy,
                            e.status.as_str(),
                            e.evaluated_at
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
                json: json!({"devices": list.iter().map(|(serial, e)| json!({
                    "identifier": serial,
                    "compliance": compliance_json(e, now),
                })).collect::<Vec<_>>()}),
                audit: None,
            })
        }
        DeviceCommand::List {
            non_compliant: false,
            policy: Some(policy),
        } => {
            // Each device's status under the policy: one read of its partition each.
            let mut rows = Vec::new();
            for d in store.list_devices(now).await? {
                let evaluations = match store.device_profile(&d.identifier, now).await? {
                    Some((_, e)) => e,
                    None => Vec::new(),
                };
                let status = evaluations
                    .iter()
                    .find(|e| &e.policy == policy)
                    .map(|e| compliance_json(e, now));
                rows.push((d, status));
            }
            Ok(Output {
                plain: rows
                    .iter()
                    .map(|(d, c)| {
                        format!(
                            "{}\t{}\t{}",
                            d.identifier,
                            d.name,
                            c.as_ref()
                                .and_then(|c| c["status"].as_str())
                                .unwrap_or("unknown")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
                json: json!({"devices": rows.iter().map(|(d, c)| {
                    let mut j = device_json(d);
                    j["compliance"] = c.clone().unwrap_or(Value::Null);
                    j
                }).collect::<Vec<_>>()}),
                audit: None,
            })
        }
        DeviceCommand::List { .. } => {
            let list = store.list_devices(now).await?;
            Ok(Output {
                plain: list
                    .iter()
                    .map(|d| format!("{}\t{}", d.identifier, d.name))
                    .collect::<Vec<_>>()
                    .join("\n"),
                json: json!({"devices": list.iter().map(device_json).collect::<Vec<_>>()}),
                audit: None,
            })
        }
        DeviceCommand::Show { serial } => {
            // Tokens are shown by id and connector only: never their key, and no key is read
            // (no sealing key needed).
            let (device, tokens) = store
                .device_token_info(serial, now)
                .await?
                .ok_or_else(|| AdminError::NotFound(format!("device {serial}")))?;
            let tokens: Vec<Value> = tokens
                .iter()
                .map(|t| json!({"id": t.id, "connector": t.connector, "created_at": t.created_at, "expires_at": t.expires_at}))
                .collect();
            let mut json = device_json(&device);
            json["tokens"] = Value::Array(tokens);
            // Per policy: the status now, the evaluation and facts times, each failing rule.
            let evaluations = match store.device_profile(serial, now).await? {
                Some((_, e)) => e,
                None => Vec::new(),
            };
            json["compliance"] = Value::Array(
                evaluations
                    .iter()
                    .map(|e| compliance_json(e, now))
                    .collect(),
            );
            // The latest facts snapshot the device reported through check_in/.
            // `truncated`: the device sent more than a DynamoDB item holds, and this is the
            // bounded subset that was kept.
            json["facts"] = match store.latest_facts(serial, now).await? {
                Some(f) => json!({
                    "connector": f.connector,
                    "created_at": f.created_at,
                    "expires_at": f.expires_at,
                    "truncated": f.truncated,
                    "facts": facts::load(&f.facts_deflate)
                        .ok_or(AdminError::Unreadable("the stored facts snapshot"))?,
                }),
                None => Value::Null,
            };
            Ok(Output {
                plain: serde_json::to_string_pretty(&json).unwrap_or_default(),
                json,
                audit: None,
            })
        }
        other => change(other, store, clock).await,
    }
}

/// The commands that change a device or its tokens, audited.
async fn change(
    cmd: &DeviceCommand,
    store: &DynamoStore,
    clock: &SystemClock,
) -> Result<Output, AdminError> {
    let now = clock.now();
    match cmd {
        DeviceCommand::Delete { serial } => {
            if !store.delete_device(serial).await? {
                return Err(AdminError::NotFound(format!("device {serial}")));
            }
            Ok(Output::value("deleted", serial)
                .audited(audit(AuditKind::DeviceDeleted).device(serial)))
        }
        DeviceCommand::RevokeTokens { serial, connector } => {
            store
                .get_device(serial, now)
                .await?
                .ok_or_else(|| AdminError::NotFound(format!("device {serial}")))?;
            let n = store.revoke_tokens(serial, connector).await?;
            Ok(Output {
                plain: n.to_string(),
                json: json!({"identifier": serial, "connector": connector, "revoked": n}),
                audit: Some(
                    audit(AuditKind::DeviceTokensRevoked)
                        .connector(connector)
                        .device(serial)
                        .reason(format!("{n} tokens")),
                ),
            })
        }
        DeviceCommand::AllowReenroll {
            serial,
            connector,
            window,
        } => {
            let until = admin::allow_reenroll(store, clock, connector, serial, *window).await?;
            Ok(Output {
                plain: until.to_string(),
                json: json!({"identifier": serial, "connector": connector, "until": until}),
                audit: Some(
                    audit(AuditKind::ReenrollmentAllowed)
                        .connector(connector)
                        .device(serial)
                        .reason(format!("until {until}")),
                ),
            })
        }
        other => Err(AdminError::Usage(format!("{other:?} is not a change"))),
    }
}

fn device_json(d: &Device) -> Value {
    json!({"identifier": d.identifier, "id": d.id, "name": d.name, "created_at": d.created_at, "expires_at": d.expires_at})
}

/// A device's compliance under one policy as `device show` and `device list` print it: the
/// status now (grace deadlines and facts age checked against the clock), when it was
/// evaluated, when the facts were reported, and each failing rule with the value seen.
fn compliance_json(e: &Evaluation, now: i64) -> Value {
    let policy = PolicyRef {
        id: e.policy.clone(),
        version: e.version,
        when_unknown: WhenUnknown::Deny,
    };
    let view = assess(&policy, std::slice::from_ref(e), now);
    json!({
        "policy": e.policy,
        "version": e.version,
        "status": view.status.as_str(),
        "evaluated_at": e.evaluated_at,
        "facts_at": e.facts_at,
        "failed": view.failed,
        "warnings": view.warnings,
        "rules": e.rules.iter().filter(|r| r.verdict != Verdict::Pass).map(|r| json!({
            "rule": r.rule, "title": r.title, "result": r.verdict.as_str(), "seen": r.seen,
        })).collect::<Vec<_>>(),
    })
}
