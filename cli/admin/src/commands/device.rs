//! `endpoint-admin device ...`: devices, their tokens and facts.

use crate::clock::OperatorClock;
use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::admin;
use endpoint_core::audit::AuditKind;
use endpoint_core::compliance::assess::assess;
use endpoint_core::facts;
use endpoint_core::model::{Device, DeviceLock, Evaluation, PolicyRef, Verdict, WhenUnknown};
use endpoint_core::ports::SystemRandom;
use endpoint_core::ports::{Clock, DeviceStore, Directory};
use serde_json::{json, Value};

use crate::device_args::DeviceCommand;
use crate::error::AdminError;
use crate::output::{audit, Output};

pub(crate) async fn device(
    cmd: &DeviceCommand,
    store: &DynamoStore,
    clock: &OperatorClock,
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
            non_compliant,
            policy: Some(policy),
        } => list_under_policy(store, policy, *non_compliant, now).await,
        DeviceCommand::List {
            non_compliant: true,
            policy: None,
        } => list_under_policy(store, "", true, now).await,
        DeviceCommand::List { .. } => {
            let list = store.list_devices(now).await?;
            Ok(Output {
                plain: list.iter().map(device_line).collect::<Vec<_>>().join("\n"),
                json: json!({"devices": list.iter().map(device_json).collect::<Vec<_>>()}),
                audit: None,
            })
        }
        DeviceCommand::Show { serial } => show(store, serial, now).await,
        other => change(other, store, clock, rng).await,
    }
}

/// The commands that change a device or its tokens, audited.
async fn change(
    cmd: &DeviceCommand,
    store: &DynamoStore,
    clock: &OperatorClock,
    rng: &SystemRandom,
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
            let (token, key) =
                admin::allow_reenroll(store, clock, rng, connector, serial, *window).await?;
            let until = token.expires_at.unwrap_or_default();
            Ok(Output {
                plain: key.expose().to_string(),
                json: json!({"id": token.id, "key": key.expose(), "expires_at": until}),
                audit: Some(
                    audit(AuditKind::ReenrollmentAllowed)
                        .connector(connector)
                        .device(serial)
                        .reason(format!("enrollment_token:{} until {until}", token.id)),
                ),
            })
        }
        DeviceCommand::Lock {
            serial,
            duration,
            reason,
        } => {
            let lock =
                admin::lock_device(store, clock, rng, serial, *duration, reason.as_deref()).await?;
            let until = admin::lock_until_label(lock.until);
            let why = match &lock.reason {
                Some(r) => format!("{until}: {r}"),
                None => until.clone(),
            };
            Ok(Output {
                plain: format!("locked {until}"),
                json: json!({"identifier": serial, "lock": lock_json(Some(&lock))}),
                audit: Some(audit(AuditKind::DeviceLocked).device(serial).reason(why)),
            })
        }
        DeviceCommand::SetOwners { serial, owners } => {
            let owners = admin::set_device_owners(store, serial, owners).await?;
            Ok(Output {
                plain: owners.join("\n"),
                json: json!({"identifier": serial, "owners": owners}),
                audit: Some(
                    audit(AuditKind::DeviceOwnersSet)
                        .device(serial)
                        .reason(owners_reason(&owners)),
                ),
            })
        }
        DeviceCommand::Unlock { serial } => {
            admin::unlock_device(store, clock, rng, serial).await?;
            Ok(Output {
                plain: "unlocked".into(),
                json: json!({"identifier": serial, "lock": null}),
                audit: Some(audit(AuditKind::DeviceUnlocked).device(serial)),
            })
        }
        other => Err(AdminError::Usage(format!("{other:?} is not a change"))),
    }
}

fn device_json(d: &Device) -> Value {
    json!({"identifier": d.identifier, "id": d.id, "name": d.name, "created_at": d.created_at, "expires_at": d.expires_at, "lock": lock_json(d.lock.as_ref()), "owners": d.owners})
}

/// The audit record's reason of `set-owners`: the owners it set (names an operator gave, no
/// secret), or that it cleared them.
fn owners_reason(owners: &[String]) -> String {
    if owners.is_empty() {
        "owners cleared".into()
    } else {
        format!("owners: {}", owners.join(", "))
    }
}

/// A device as `device list` prints it: serial, name and, if it has any, its owners.
fn device_line(d: &Device) -> String {
    if d.owners.is_empty() {
        format!("{}\t{}", d.identifier, d.name)
    } else {
        format!("{}\t{}\t{}", d.identifier, d.name, d.owners.join(","))
    }
}

/// A device's lock as `device show` and `device list` print it (`until` null: until unlocked;
/// a timed lock that ended shows as `held: false`).
fn lock_json(lock: Option<&DeviceLock>) -> Value {
    match lock {
        Some(l) => json!({
            "since": l.since,
            "until": l.until,
            "reason": l.reason,
            "held": l.holds_at(OperatorClock::from_env().unwrap_or_default().now()),
        }),
        None => Value::Null,
    }
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

/// `device list --non-compliant [--policy P]` (one index query), or `device list --policy P`:
/// each device with its status under the policy (one read of each device's partition).
async fn list_under_policy(
    store: &DynamoStore,
    policy: &str,
    non_compliant: bool,
    now: i64,
) -> Result<Output, AdminError> {
    let policy = (!policy.is_empty()).then_some(policy);
    let rows: Vec<(String, String, Option<Value>)> = if non_compliant {
        store
            .non_compliant(policy)
            .await?
            .iter()
            .map(|(serial, e)| (serial.clone(), String::new(), Some(compliance_json(e, now))))
            .collect()
    } else {
        let mut rows = Vec::new();
        for d in store.list_devices(now).await? {
            let evaluations = match store.device_profile(&d.identifier, now).await? {
                Some((_, e)) => e,
                None => Vec::new(),
            };
            let status = evaluations
                .iter()
                .find(|e| Some(e.policy.as_str()) == policy)
                .map(|e| compliance_json(e, now));
            rows.push((d.identifier, d.name, status));
        }
        rows
    };
    let status = |c: &Option<Value>| {
        c.as_ref()
            .and_then(|c| c["status"].as_str())
            .unwrap_or("unknown")
            .to_string()
    };
    Ok(Output {
        plain: rows
            .iter()
            .map(|(serial, name, c)| format!("{serial}\t{name}\t{}", status(c)))
            .collect::<Vec<_>>()
            .join("\n"),
        json: json!({"devices": rows.iter().map(|(serial, name, c)| json!({
            "identifier": serial,
            "name": name,
            "compliance": c,
        })).collect::<Vec<_>>()}),
        audit: None,
    })
}

/// `device show`: the device, its tokens (never their keys), its compliance per policy and its
/// latest facts snapshot.
async fn show(store: &DynamoStore, serial: &str, now: i64) -> Result<Output, AdminError> {
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
                .map(|f| f.to_value())
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
