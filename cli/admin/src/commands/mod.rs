//! Each command: one core operation (or store read) and its output, plain or JSON; one file
//! per command group, and here the commands of no group.

mod connector;
mod device;
mod enrollment_token;
mod key;
mod oidc;
mod policy;
mod stage;

use crate::clock::OperatorClock;
use endpoint_core::adapters::aws::load_config;
use endpoint_core::adapters::dynamodb::{DynamoStore, RotationReport};
use endpoint_core::adapters::kms::KmsSigner;
use endpoint_core::audit::{AuditKind, AuditQuery};
use endpoint_core::ports::{record_audit, AuditLog, Clock, SignalStore, SystemRandom};
use endpoint_core::ssf;
use serde_json::json;

use crate::cli::{Args, AuditCommand, Command, KeyCommand, SealingCommand};
use crate::device_args::{ReceiverCommand, SsfCommand};
use crate::error::AdminError;
use crate::output::{audit, operator, Output};

/// Runs the command; the output to print, or the error for the one line on stderr.
pub async fn run(args: Args) -> Result<String, AdminError> {
    let config = load_config().await;
    let store = DynamoStore::configured(
        &config,
        &args.table,
        args.sealing_key.as_deref(),
        args.audit_retention_days,
    );
    let signer = KmsSigner::from_config(&config);
    // Making KMS keys needs no table (a data key's record is stored in it).
    let needs_table = !matches!(
        args.command,
        Command::Init
            | Command::Key(
                KeyCommand::Create { .. }
                    | KeyCommand::CreateSealing { .. }
                    | KeyCommand::CreateWrapping { .. }
            )
    );
    if needs_table && !store.table_exists().await? {
        return Err(AdminError::NoTable {
            table: args.table.clone(),
            region: config
                .region()
                .map_or("(no region)".into(), |r| r.to_string()),
        });
    }
    let out = execute(&args, &store, &signer).await?;
    if let Some(mut event) = out.audit {
        event.actor = operator(&config).await;
        record_audit(&store, &event).await;
    }
    Ok(if args.json {
        out.json.to_string()
    } else {
        out.plain
    })
}

/// `endpoint-admin init`: the table, and with a sealing key its data key.
async fn init(args: &Args, store: &DynamoStore) -> Result<Output, AdminError> {
    let created = store.create_table().await?;
    // With a sealing key, the data key too (a new table refuses plain keys at once).
    let keyring = match &args.sealing_key {
        Some(_) => Some(store.ensure_keyring().await?),
        None => None,
    };
    Ok(Output {
        plain: format!(
            "{}\t{}",
            args.table,
            if created { "created" } else { "exists" }
        ),
        json: json!({"table": args.table, "created": created, "data_key_created": keyring}),
        audit: None,
    })
}

/// `endpoint-admin migrate`.
async fn migrate(store: &DynamoStore) -> Result<Output, AdminError> {
    let report = store.migrate().await?;
    let summary = format!(
        "data_key_created={} sealed={} enrollment_tokens={} audit_records={} device_tokens={} stream_counts={}",
        report.keyring_created,
        report.sealed,
        report.enrollment_tokens,
        report.audit_records,
        report.device_tokens,
        report.stream_counts
    );
    Ok(Output {
        plain: summary.clone(),
        json: json!({
            "data_key_created": report.keyring_created,
            "sealed": report.sealed,
            "enrollment_tokens": report.enrollment_tokens,
            "audit_records": report.audit_records,
            "device_tokens": report.device_tokens,
            "stream_counts": report.stream_counts,
        }),
        audit: Some(audit(AuditKind::DataMigrated).reason(summary)),
    })
}

/// `endpoint-admin sealing rotate`, with its progress on stderr.
async fn rotate(store: &DynamoStore, page: usize, now: i64) -> Result<Output, AdminError> {
    let mut progress = |r: &RotationReport| {
        eprintln!(
            "sealing rotate: {} devices, {} keys re-sealed under generation {}",
            r.devices, r.resealed, r.generation
        );
    };
    let r = store
        .rotate_data_key(page, None, now, &mut progress)
        .await?;
    let summary = format!(
        "generation={} devices={} resealed={} resumed={}",
        r.generation, r.devices, r.resealed, !r.started
    );
    Ok(Output {
        plain: summary.clone(),
        json: json!({
            "generation": r.generation,
            "devices": r.devices,
            "resealed": r.resealed,
            "resumed": !r.started,
        }),
        audit: Some(audit(AuditKind::DataKeyRotated).reason(summary)),
    })
}

async fn execute(
    args: &Args,
    store: &DynamoStore,
    signer: &KmsSigner,
) -> Result<Output, AdminError> {
    let rng = SystemRandom;
    let clock = OperatorClock::from_env().map_err(AdminError::Usage)?;
    match &args.command {
        Command::Init => init(args, store).await,
        Command::Migrate => migrate(store).await,
        Command::Sealing(SealingCommand::Rotate { page }) => {
            rotate(store, usize::from(*page), clock.now()).await
        }
        Command::Ssf(SsfCommand::Receiver(r)) => receiver(r, store, &clock, &rng).await,
        Command::Audit(AuditCommand::List { .. }) => audit_list(&args.command, store).await,
        Command::Key(k) => key::key(k, args, store, signer, &clock).await,
        Command::Connector(c) => {
            let keys = key::keys(store, signer);
            connector::connector(c, store, &keys, &clock, &rng, args.sealing_key.is_some()).await
        }
        Command::Stage(s) => stage::stage(s, store, &rng).await,
        Command::Policy(p) => policy::policy(p.clone(), store, &clock, &rng).await,
        Command::EnrollmentToken(t) => {
            enrollment_token::enrollment_token(t, store, &clock, &rng).await
        }
        Command::Device(d) => device::device(d, store, &clock, &rng).await,
        Command::Oidc(o) => oidc::oidc(o, store, &clock, &rng).await,
    }
}

/// `endpoint-admin ssf receiver ...`: Shared Signals receivers.
async fn receiver(
    cmd: &ReceiverCommand,
    store: &DynamoStore,
    clock: &OperatorClock,
    rng: &SystemRandom,
) -> Result<Output, AdminError> {
    match cmd {
        ReceiverCommand::Create { name, audience } => {
            let (r, token) =
                ssf::create_receiver(store, clock, rng, name, audience.as_deref()).await?;
            Ok(Output {
                plain: token.expose().to_string(),
                json: json!({"id": r.id, "token": token.expose()}),
                audit: Some(
                    audit(AuditKind::ReceiverChanged).reason(format!("receiver {} created", r.id)),
                ),
            })
        }
        ReceiverCommand::List => {
            let list = store.list_receivers().await?;
            Ok(Output {
                plain: list
                    .iter()
                    .map(|r| {
                        format!(
                            "{}\t{}\t{}",
                            r.id,
                            r.name,
                            if r.revoked_at.is_some() {
                                "revoked"
                            } else {
                                "active"
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
                json: json!({"receivers": list.iter().map(|r| json!({
                    "id": r.id, "name": r.name, "audience": r.audience,
                    "created_at": r.created_at, "revoked_at": r.revoked_at,
                })).collect::<Vec<_>>()}),
                audit: None,
            })
        }
        ReceiverCommand::Revoke { id } => {
            if !ssf::revoke_receiver(store, clock, id).await? {
                return Err(AdminError::NotFound(format!("receiver {id}")));
            }
            Ok(Output::value("revoked", id).audited(
                audit(AuditKind::ReceiverChanged).reason(format!("receiver {id} revoked")),
            ))
        }
    }
}

/// `endpoint-admin audit list`: newest first, paged by `--before`.
async fn audit_list(cmd: &Command, store: &DynamoStore) -> Result<Output, AdminError> {
    let Command::Audit(AuditCommand::List {
        device,
        connector,
        plan,
        since,
        limit,
        before,
    }) = cmd
    else {
        return Err(AdminError::Usage("not an audit command".into()));
    };
    let clock = OperatorClock::from_env().map_err(AdminError::Usage)?;
    let now = clock.now();
    let query = AuditQuery {
        since: now - since,
        device: device.clone(),
        connector: connector.clone(),
        plan: plan.clone(),
        limit: *limit as usize,
        before: before.clone(),
    };
    let events = store.audit_events(&query, now).await?;
    let plain = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Output {
        plain,
        json: json!({
            "events": events,
            "next_before": (events.len() == query.limit).then(|| events.last().map(|e| e.id.clone())).flatten(),
        }),
        audit: None,
    })
}
