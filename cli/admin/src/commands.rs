//! Each command: one core operation (or store read) and its output, plain or JSON.

use endpoint_core::adapters::aws::load_config;
use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::adapters::kms::KmsSigner;
use endpoint_core::admin::{self, NewConnector};
use endpoint_core::audit::{AuditEvent, AuditKind, AuditQuery, Caller};
use endpoint_core::facts;
use endpoint_core::model::{Connector, Device, EnrollmentToken};
use endpoint_core::ports::{
    random_alnum, record_audit, AuditLog, Clock, DeviceStore, Directory, SystemClock, SystemRandom,
};
use endpoint_core::protocol::keys::KeySpec;
use endpoint_core::CoreError;
use serde_json::{json, Value};

use crate::cli::*;

/// What a command prints: one value per line, or one JSON object with `--json`; and the
/// audit record of what it changed.
struct Output {
    plain: String,
    json: Value,
    audit: Option<Audit>,
}

/// An operator's audit record, built once the command succeeded.
struct Audit {
    kind: AuditKind,
    connector: Option<String>,
    device: Option<String>,
    reason: Option<String>,
}

impl Audit {
    fn of(kind: AuditKind) -> Self {
        Audit {
            kind,
            connector: None,
            device: None,
            reason: None,
        }
    }
    fn connector(mut self, id: &str) -> Self {
        self.connector = Some(id.to_string());
        self
    }
    fn device(mut self, serial: &str) -> Self {
        self.device = Some(serial.to_string());
        self
    }
    fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    fn build(self, clock: &SystemClock, operator: String) -> AuditEvent {
        let mut e = AuditEvent::new(
            self.kind,
            clock.now(),
            &random_alnum(&SystemRandom, 8),
            operator,
            &Caller::UNKNOWN,
        );
        e.connector = self.connector;
        e.device = self.device;
        e.reason = self.reason;
        e
    }
}

/// The operator for the audit trail: the IAM principal the AWS credentials belong to (STS
/// `GetCallerIdentity`, which needs no permission), so the record names who really acted.
/// If STS cannot answer, the name the operator gives (`ENDPOINT_ADMIN_OPERATOR`, else the login
/// name), marked unverified.
async fn operator(config: &aws_config::SdkConfig) -> String {
    let sts = aws_sdk_sts::Client::new(config);
    if let Ok(identity) = sts.get_caller_identity().send().await {
        if let Some(arn) = identity.arn() {
            return format!("operator:{arn}");
        }
    }
    let name = std::env::var("ENDPOINT_ADMIN_OPERATOR")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    let name: String = name.chars().take(128).collect();
    format!("operator:{name} (unverified)")
}

impl Output {
    fn value(field: &str, value: &str) -> Self {
        Output {
            plain: value.to_string(),
            json: json!({ field: value }),
            audit: None,
        }
    }

    fn audited(mut self, audit: Audit) -> Self {
        self.audit = Some(audit);
        self
    }
}

/// An enrollment token as `list` and `show` print it: never its key, nor the key's hash.
fn enrollment_token_json(t: &EnrollmentToken, now: i64) -> Value {
    json!({
        "id": t.id,
        "connector": t.connector,
        "name": t.name,
        "state": token_state(t, now),
        "created_at": t.created_at,
        "expires_at": t.expires_at,
        "max_uses": t.max_uses,
        "serial": t.serial,
        "uses": t.uses,
        "last_used_at": t.last_used_at,
        "revoked_at": t.revoked_at,
    })
}

fn token_state(t: &EnrollmentToken, now: i64) -> &'static str {
    if t.revoked_at.is_some() {
        "revoked"
    } else if endpoint_core::model::is_expired(t.expires_at, now) {
        "expired"
    } else if t.max_uses.is_some_and(|m| t.uses >= m) {
        "used_up"
    } else {
        "active"
    }
}

fn enrollment_token_line(t: &EnrollmentToken, now: i64) -> String {
    format!(
        "{}\t{}\t{}\t{}\tuses {}{}\texpires {}",
        t.id,
        t.connector,
        t.name,
        token_state(t, now),
        t.uses,
        t.max_uses.map_or_else(String::new, |m| format!("/{m}")),
        date(t.expires_at)
    )
}

fn err(e: impl Into<CoreError>) -> String {
    e.into().to_string()
}

pub async fn run(args: Args) -> Result<String, String> {
    let config = load_config().await;
    let store = DynamoStore::configured(&config, &args.table, args.sealing_key.as_deref(), 90);
    let signer = KmsSigner::from_config(&config);
    let needs_table = !matches!(
        args.command,
        Command::Init | Command::Key(KeyCommand::CreateSealing)
    );
    if needs_table && !store.table_exists().await.map_err(err)? {
        let region = config.region().map_or("(no region)", |r| r.as_ref());
        return Err(format!(
            "the table {:?} does not exist in {region}: pass --table (or set TABLE_NAME) to the stack's TableName output (aws cloudformation describe-stacks --stack-name endpoint-stage --query \"Stacks[0].Outputs\"), or set AWS_REGION to the stack's region; `endpoint-admin init` creates a table for a local emulator",
            args.table
        ));
    }
    let out = execute(&args, &store, &signer).await?;
    if let Some(event) = out.audit {
        let event = event.build(&SystemClock, operator(&config).await);
        record_audit(&store, &event).await;
    }
    Ok(if args.json {
        out.json.to_string()
    } else {
        out.plain
    })
}

/// Checks that a KMS key can sign challenges every agent verifies before a connector uses it.
async fn check_key(signer: &KmsSigner, key: &str) -> Result<(), String> {
    admin::check_challenge_key(signer, key).await.map_err(err)
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

fn date(t: Option<i64>) -> String {
    t.map_or_else(|| "-".into(), |t| t.to_string())
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

fn device_json(d: &Device) -> Value {
    json!({"identifier": d.identifier, "id": d.id, "name": d.name, "created_at": d.created_at, "expires_at": d.expires_at})
}

async fn execute(args: &Args, store: &DynamoStore, signer: &KmsSigner) -> Result<Output, String> {
    let rng = SystemRandom;
    let clock = SystemClock;
    match &args.command {
        Command::Init => {
            let created = store.create_table().await.map_err(err)?;
            // With a sealing key, the data key too (a new table refuses plain keys at once).
            let keyring = match &args.sealing_key {
                Some(_) => Some(store.ensure_keyring().await.map_err(err)?),
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
        Command::Migrate => {
            let report = store.migrate().await.map_err(err)?;
            let summary = format!(
                "data_key_created={} sealed={} enrollment_tokens={}",
                report.keyring_created, report.sealed, report.enrollment_tokens
            );
            Ok(Output {
                plain: summary.clone(),
                json: json!({
                    "data_key_created": report.keyring_created,
                    "sealed": report.sealed,
                    "enrollment_tokens": report.enrollment_tokens,
                }),
                audit: Some(Audit::of(AuditKind::DataMigrated).reason(summary)),
            })
        }
        Command::Audit(AuditCommand::List {
            device,
            connector,
            plan,
            since,
            limit,
            before,
        }) => {
            let now = clock.now();
            let query = AuditQuery {
                since: now - since,
                device: device.clone(),
                connector: connector.clone(),
                plan: plan.clone(),
                limit: *limit as usize,
                before: before.clone(),
            };
            let events = store.audit_events(&query, now).await.map_err(err)?;
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
        Command::Key(KeyCommand::Create { spec, alias }) => {
            let spec: KeySpec = parse_challenge_spec(spec)?.parse()?;
            let id = signer
                .create_key(spec, "endpoint-stage challenge key")
                .await
                .map_err(err)?;
            if let Some(alias) = alias {
                signer.set_alias(alias, &id).await.map_err(err)?;
            }
            Ok(Output::value("key_id", &id))
        }
        Command::Key(KeyCommand::CreateSealing) => {
            let config = load_config().await;
            let id = endpoint_core::adapters::vault::KmsVault::create_key(
                &config,
                "endpoint-stage device token sealing key",
            )
            .await
            .map_err(err)?;
            Ok(Output::value("key_id", &id))
        }
        Command::Connector(c) => {
            connector(c, store, signer, &clock, &rng, args.sealing_key.is_some()).await
        }
        Command::Stage(StageCommand::Create { connector, mode }) => {
            let stage = admin::create_stage(store, &rng, connector, *mode)
                .await
                .map_err(err)?;
            Ok(Output::value("id", &stage.id).audited(
                Audit::of(AuditKind::StageCreated)
                    .connector(connector)
                    .reason(format!("stage {} ({})", stage.id, mode.as_str())),
            ))
        }
        Command::EnrollmentToken(t) => enrollment_token(t, store, &clock, &rng).await,
        Command::Device(d) => device(d, store, &clock, &rng).await,
    }
}

async fn connector(
    cmd: &ConnectorCommand,
    store: &DynamoStore,
    signer: &KmsSigner,
    clock: &SystemClock,
    rng: &SystemRandom,
    sealing_configured: bool,
) -> Result<Output, String> {
    let shown = |c: Connector| Output {
        plain: connector_line(&c),
        json: connector_json(&c),
        audit: None,
    };
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
            let c = admin::create_connector(store, clock, rng, new)
                .await
                .map_err(err)?;
            // Devices enroll on a connector: the data key that seals their keys must exist.
            if sealing_configured {
                store.ensure_keyring().await.map_err(err)?;
            }
            Ok(Output::value("id", &c.id).audited(
                Audit::of(AuditKind::ConnectorCreated)
                    .connector(&c.id)
                    .reason(format!("reenroll={}", c.reenroll.as_str())),
            ))
        }
        ConnectorCommand::SetReenroll { id, policy } => {
            let c = admin::set_reenroll(store, id, *policy).await.map_err(err)?;
            Ok(shown(c).audited(
                Audit::of(AuditKind::ConnectorChanged)
                    .connector(id)
                    .reason(format!("reenroll={}", policy.as_str())),
            ))
        }
        ConnectorCommand::SetKey { id, key } => {
            check_key(signer, key).await?;
            let c = admin::set_connector_key(store, clock, id, key)
                .await
                .map_err(err)?;
            Ok(shown(c).audited(
                Audit::of(AuditKind::ChallengeKeyRotated)
                    .connector(id)
                    .reason(format!("set-key {key}")),
            ))
        }
        ConnectorCommand::AddNextKey { id, key } => {
            check_key(signer, key).await?;
            let c = admin::add_next_key(store, clock, id, key)
                .await
                .map_err(err)?;
            Ok(shown(c).audited(
                Audit::of(AuditKind::ChallengeKeyAdded)
                    .connector(id)
                    .reason(format!("next key {key}")),
            ))
        }
        ConnectorCommand::Rotate { id, grace } => {
            let c = admin::rotate(store, clock, id, *grace).await.map_err(err)?;
            let reason = format!("signing with {}", c.challenge_key.as_deref().unwrap_or("-"));
            Ok(shown(c).audited(
                Audit::of(AuditKind::ChallengeKeyRotated)
                    .connector(id)
                    .reason(reason),
            ))
        }
        ConnectorCommand::SetInteractiveStage { id, stage } => Ok(shown(
            admin::set_interactive_stage(store, id, stage)
                .await
                .map_err(err)?,
        )
        .audited(
            Audit::of(AuditKind::ConnectorChanged)
                .connector(id)
                .reason(format!("interactive stage {stage}")),
        )),
        ConnectorCommand::Disable { id } => Ok(shown(
            admin::set_connector_enabled(store, id, false)
                .await
                .map_err(err)?,
        )
        .audited(
            Audit::of(AuditKind::ConnectorChanged)
                .connector(id)
                .reason("disabled"),
        )),
        ConnectorCommand::Enable { id } => Ok(shown(
            admin::set_connector_enabled(store, id, true)
                .await
                .map_err(err)?,
        )
        .audited(
            Audit::of(AuditKind::ConnectorChanged)
                .connector(id)
                .reason("enabled"),
        )),
        ConnectorCommand::Show { id } => {
            let c = store
                .get_connector(id)
                .await
                .map_err(err)?
                .ok_or_else(|| format!("connector {id} was not found"))?;
            Ok(Output {
                plain: connector_details(&c),
                json: connector_json(&c),
                audit: None,
            })
        }
        ConnectorCommand::List => {
            let list = store.list_connectors().await.map_err(err)?;
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
    }
}

async fn device(
    cmd: &DeviceCommand,
    store: &DynamoStore,
    clock: &SystemClock,
    rng: &SystemRandom,
) -> Result<Output, String> {
    let now = clock.now();
    match cmd {
        DeviceCommand::Enroll {
            connector,
            serial,
            name,
        } => {
            store
                .get_connector(connector)
                .await
                .map_err(err)?
                .ok_or_else(|| format!("connector {connector} was not found"))?;
            let (_, key) = admin::enroll_device(store, clock, rng, connector, serial, name)
                .await
                .map_err(err)?;
            Ok(Output {
                plain: key.expose().to_string(),
                json: json!({"identifier": serial, "token": key.expose()}),
                audit: Some(
                    Audit::of(AuditKind::DeviceEnrolledByOperator)
                        .connector(connector)
                        .device(serial),
                ),
            })
        }
        DeviceCommand::List => {
            let list = store.list_devices(now).await.map_err(err)?;
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
                .await
                .map_err(err)?
                .ok_or_else(|| format!("device {serial} was not found"))?;
            let tokens: Vec<Value> = tokens
                .iter()
                .map(|t| json!({"id": t.id, "connector": t.connector, "created_at": t.created_at, "expires_at": t.expires_at}))
                .collect();
            let mut json = device_json(&device);
            json["tokens"] = Value::Array(tokens);
            // The latest facts snapshot the device reported through check_in/.
            // `truncated`: the device sent more than a DynamoDB item holds, and this is the
            // bounded subset that was kept.
            json["facts"] = match store.latest_facts(serial, now).await.map_err(err)? {
                Some(f) => json!({
                    "connector": f.connector,
                    "created_at": f.created_at,
                    "expires_at": f.expires_at,
                    "truncated": f.truncated,
                    "facts": facts::load(&f.facts_deflate)
                        .ok_or("the stored facts snapshot could not be read")?,
                }),
                None => Value::Null,
            };
            Ok(Output {
                plain: serde_json::to_string_pretty(&json).unwrap_or_default(),
                json,
                audit: None,
            })
        }
        DeviceCommand::Delete { serial } => {
            if !store.delete_device(serial).await.map_err(err)? {
                return Err(format!("device {serial} was not found"));
            }
            Ok(Output::value("deleted", serial)
                .audited(Audit::of(AuditKind::DeviceDeleted).device(serial)))
        }
        DeviceCommand::RevokeTokens { serial, connector } => {
            store
                .get_device(serial, now)
                .await
                .map_err(err)?
                .ok_or_else(|| format!("device {serial} was not found"))?;
            let n = store.revoke_tokens(serial, connector).await.map_err(err)?;
            Ok(Output {
                plain: n.to_string(),
                json: json!({"identifier": serial, "connector": connector, "revoked": n}),
                audit: Some(
                    Audit::of(AuditKind::DeviceTokensRevoked)
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
            let until = admin::allow_reenroll(store, clock, connector, serial, *window)
                .await
                .map_err(err)?;
            Ok(Output {
                plain: until.to_string(),
                json: json!({"identifier": serial, "connector": connector, "until": until}),
                audit: Some(
                    Audit::of(AuditKind::ReenrollmentAllowed)
                        .connector(connector)
                        .device(serial)
                        .reason(format!("until {until}")),
                ),
            })
        }
    }
}

async fn enrollment_token(
    cmd: &EnrollmentTokenCommand,
    store: &DynamoStore,
    clock: &SystemClock,
    rng: &SystemRandom,
) -> Result<Output, String> {
    let now = clock.now();
    match cmd {
        EnrollmentTokenCommand::Create {
            connector,
            name,
            expires,
            max_uses,
            serial,
        } => {
            let new = admin::NewEnrollmentToken {
                connector: connector.clone(),
                name: name.clone(),
                lifetime: match expires {
                    Expiry::After(s) => Some(*s),
                    Expiry::Never => None,
                },
                max_uses: *max_uses,
                serial: serial.clone(),
            };
            let (token, key) = admin::create_enrollment_token(store, clock, rng, new)
                .await
                .map_err(err)?;
            Ok(Output {
                plain: key.expose().to_string(),
                json: json!({"id": token.id, "key": key.expose(), "expires_at": token.expires_at, "max_uses": token.max_uses, "serial": token.serial}),
                audit: Some(
                    Audit::of(AuditKind::EnrollmentTokenCreated)
                        .connector(connector)
                        .reason(format!("token {}", token.id)),
                ),
            })
        }
        EnrollmentTokenCommand::List { connector } => {
            let list = admin::list_enrollment_tokens(store, connector.as_deref())
                .await
                .map_err(err)?;
            Ok(Output {
                plain: list
                    .iter()
                    .map(|t| enrollment_token_line(t, now))
                    .collect::<Vec<_>>()
                    .join("\n"),
                json: json!({"tokens": list.iter().map(|t| enrollment_token_json(t, now)).collect::<Vec<_>>()}),
                audit: None,
            })
        }
        EnrollmentTokenCommand::Show { id } => {
            let d = admin::show_enrollment_token(store, id).await.map_err(err)?;
            let mut json = enrollment_token_json(&d.token, now);
            json["enrolled"] = serde_json::to_value(&d.enrolled).unwrap_or(Value::Null);
            Ok(Output {
                plain: serde_json::to_string_pretty(&json).unwrap_or_default(),
                json,
                audit: None,
            })
        }
        EnrollmentTokenCommand::Revoke { id } => {
            let t = admin::revoke_enrollment_token(store, clock, id)
                .await
                .map_err(err)?;
            Ok(Output {
                plain: enrollment_token_line(&t, now),
                json: enrollment_token_json(&t, now),
                audit: Some(
                    Audit::of(AuditKind::EnrollmentTokenRevoked)
                        .connector(&t.connector)
                        .reason(format!("token {}", t.id)),
                ),
            })
        }
    }
}
