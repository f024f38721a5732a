//! `endpoint-admin connector ...`: connectors, their challenge keys and settings.

use crate::clock::OperatorClock;
use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::admin::{self, KeyRollout, NewConnector};
use endpoint_core::audit::AuditKind;
use endpoint_core::model::Connector;
use endpoint_core::ports::{Clock, Directory, SystemRandom};
use serde_json::{json, Value};

use super::key::Keys;
use crate::cli::ConnectorCommand;
use crate::error::AdminError;
use crate::output::{audit, date, Output};

pub(crate) async fn connector(
    cmd: &ConnectorCommand,
    store: &DynamoStore,
    signer: &Keys,
    clock: &OperatorClock,
    rng: &SystemRandom,
    sealing_configured: bool,
) -> Result<Output, AdminError> {
    match cmd {
        ConnectorCommand::Create {
            name,
            challenge_key,
            idle_timeout,
            trigger_check_in,
            reenroll,
        } => {
            if let Some(key) = challenge_key {
                check_key(signer, key).await?;
            }
            let new = NewConnector {
                name: name.clone(),
                challenge_key: challenge_key.clone(),
                idle_timeout: idle_timeout.map(|t| u32::try_from(t).unwrap_or(u32::MAX)),
                trigger_check_in: *trigger_check_in,
                reenroll: *reenroll,
            };
            let c = admin::create_connector(store, clock, rng, new).await?;
            // Devices enroll on a connector: the data key that seals their keys must exist.
            if sealing_configured {
                store.ensure_keyring().await?;
            }
            Ok(Output::value("id", &c.id).audited(
                audit(AuditKind::ConnectorCreated)
                    .connector(&c.id)
                    .reason(format!("reenroll={}", c.reenroll.as_str())),
            ))
        }
        ConnectorCommand::Show { id } => {
            let c = store
                .get_connector(id)
                .await?
                .ok_or_else(|| AdminError::NotFound(format!("connector {id}")))?;
            let rollout = admin::key_rollout(store, &c, clock.now()).await?;
            Ok(with_rollout(
                Output {
                    plain: connector_details(&c),
                    json: connector_json(&c),
                    audit: None,
                },
                rollout.as_ref(),
            ))
        }
        ConnectorCommand::List => {
            let list = store.list_connectors().await?;
            Ok(Output {
                plain: list
                    .iter()
                    .map(connector_line)
                    .collect::<Vec<_>>()
                    .join("\n"),
                json: json!({"connectors": list.iter().map(connector_json).collect::<Vec<_>>()}),
                audit: None,
            })
        }
        other => change(other, store, signer, clock).await,
    }
}

/// The commands that change a connector: each answers the connector as changed, audited.
async fn change(
    cmd: &ConnectorCommand,
    store: &DynamoStore,
    signer: &Keys,
    clock: &OperatorClock,
) -> Result<Output, AdminError> {
    let shown = |c: Connector| Output {
        plain: connector_line(&c),
        json: connector_json(&c),
        audit: None,
    };
    match cmd {
        ConnectorCommand::SetReenroll { id, policy } => {
            let c = admin::set_reenroll(store, id, *policy).await?;
            Ok(shown(c).audited(
                audit(AuditKind::ConnectorChanged)
                    .connector(id)
                    .reason(format!("reenroll={}", policy.as_str())),
            ))
        }
        ConnectorCommand::SetKey { id, key } => {
            check_key(signer, key).await?;
            let c = admin::set_connector_key(store, clock, id, key).await?;
            Ok(shown(c).audited(
                audit(AuditKind::ChallengeKeyRotated)
                    .connector(id)
                    .reason(format!("set-key {key}")),
            ))
        }
        ConnectorCommand::AddNextKey { id, key } => {
            check_key(signer, key).await?;
            let c = admin::add_next_key(store, clock, id, key).await?;
            Ok(shown(c).audited(
                audit(AuditKind::ChallengeKeyAdded)
                    .connector(id)
                    .reason(format!("next key {key}")),
            ))
        }
        ConnectorCommand::Rotate { id, grace, force } => {
            let (c, rollout) = admin::rotate(store, clock, id, *grace, *force).await?;
            let reason = format!(
                "signing with {}; {} of {} devices had fetched it{}",
                c.challenge_key.as_deref().unwrap_or("-"),
                rollout.fetched,
                rollout.devices,
                if rollout.complete() { "" } else { " (forced)" }
            );
            Ok(with_rollout(shown(c), Some(&rollout)).audited(
                audit(AuditKind::ChallengeKeyRotated)
                    .connector(id)
                    .reason(reason),
            ))
        }
        ConnectorCommand::SetInteractiveStage { id, stage } => Ok(shown(
            admin::set_interactive_stage(store, id, stage).await?,
        )
        .audited(
            audit(AuditKind::ConnectorChanged)
                .connector(id)
                .reason(format!("interactive stage {stage}")),
        )),
        ConnectorCommand::Disable { id } => Ok(shown(
            admin::set_connector_enabled(store, id, false).await?,
        )
        .audited(
            audit(AuditKind::ConnectorChanged)
                .connector(id)
                .reason("disabled"),
        )),
        ConnectorCommand::Enable { id } => Ok(shown(
            admin::set_connector_enabled(store, id, true).await?,
        )
        .audited(
            audit(AuditKind::ConnectorChanged)
                .connector(id)
                .reason("enabled"),
        )),
        other => Err(AdminError::Usage(format!("{other:?} is not a change"))),
    }
}

/// The output with how far the next key has reached the connector's devices: `rollout` in the
/// JSON, lines `fetched N of M` and one `not fetched SERIAL` per device otherwise.
fn with_rollout(mut out: Output, rollout: Option<&KeyRollout>) -> Output {
    let Some(r) = rollout else {
        return out;
    };
    out.json["rollout"] = json!({
        "next_key": r.next_key,
        "published_since": r.published_since,
        "devices": r.devices,
        "fetched": r.fetched,
        "not_fetched": r.not_fetched,
    });
    out.plain.push_str(&format!(
        "\nrollout\t{}\tfetched {} of {} devices since {}",
        r.next_key,
        r.fetched,
        r.devices,
        date(Some(r.published_since))
    ));
    for serial in &r.not_fetched {
        out.plain.push_str(&format!("\nnot fetched\t{serial}"));
    }
    out
}

/// Checks that a KMS key or data key can sign challenges every agent verifies before a connector uses it.
pub(crate) async fn check_key(signer: &Keys, key: &str) -> Result<(), AdminError> {
    admin::check_challenge_key(signer, key)
        .await
        .map_err(AdminError::from)
}

fn connector_json(c: &Connector) -> Value {
    let mut json = serde_json::to_value(c).unwrap_or(Value::Null);
    json["keys"] = Value::Array(
        key_roles(c)
            .into_iter()
            .map(|(role, key, date_name, date)| json!({"role": role, "key": key, date_name: date}))
            .collect(),
    );
    json
}

/// The connector's keys with their role and the date that goes with it: the signing key (since
/// when), the next key (published since when), retired keys (published until when).
fn key_roles(c: &Connector) -> Vec<(&'static str, &str, &'static str, Option<i64>)> {
    let mut keys = Vec::new();
    if let Some(k) = &c.challenge_key {
        keys.push(("signing", k.as_str(), "since", c.challenge_key_since));
    }
    if let Some(n) = &c.next_key {
        keys.push(("next", n.key.as_str(), "published_since", Some(n.added_at)));
    }
    for r in &c.retired_keys {
        keys.push(("retired", r.key.as_str(), "published_until", Some(r.until)));
    }
    keys
}

fn connector_details(c: &Connector) -> String {
    let mut lines = vec![connector_line(c)];
    for (role, key, date_name, t) in key_roles(c) {
        lines.push(format!("key\t{role}\t{key}\t{date_name} {}", date(t)));
    }
    lines.join("\n")
}

fn connector_line(c: &Connector) -> String {
    format!(
        "{}\t{}\t{}\t{}",
        c.id,
        c.name,
        if c.enabled { "enabled" } else { "disabled" },
        c.challenge_key.as_deref().unwrap_or("-")
    )
}
