//! Each command: one core operation (or store read) and its output, plain or JSON.

use endpoint_core::adapters::aws::load_config;
use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::adapters::kms::KmsSigner;
use endpoint_core::admin::{self, NewConnector};
use endpoint_core::facts;
use endpoint_core::model::{Connector, Device};
use endpoint_core::ports::{Clock, DeviceStore, Directory, SystemClock, SystemRandom};
use endpoint_core::protocol::keys::KeySpec;
use endpoint_core::CoreError;
use serde_json::{json, Value};

use crate::cli::*;

/// What a command prints: one value per line, or one JSON object with `--json`.
struct Output {
    plain: String,
    json: Value,
}

impl Output {
    fn value(field: &str, value: &str) -> Self {
        Output {
            plain: value.to_string(),
            json: json!({ field: value }),
        }
    }
}

fn err(e: impl Into<CoreError>) -> String {
    e.into().to_string()
}

pub async fn run(args: Args) -> Result<String, String> {
    let config = load_config().await;
    let store = DynamoStore::from_config(&config, &args.table);
    let signer = KmsSigner::from_config(&config);
    if !matches!(args.command, Command::Init) && !store.table_exists().await.map_err(err)? {
        let region = config.region().map_or("(no region)", |r| r.as_ref());
        return Err(format!(
            "the table {:?} does not exist in {region}: pass --table (or set TABLE_NAME) to the stack's TableName output (aws cloudformation describe-stacks --stack-name endpoint-stage --query \"Stacks[0].Outputs\"), or set AWS_REGION to the stack's region; `endpoint-admin init` creates a table for a local emulator",
            args.table
        ));
    }
    let out = execute(&args, &store, &signer).await?;
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
            Ok(Output {
                plain: format!(
                    "{}\t{}",
                    args.table,
                    if created { "created" } else { "exists" }
                ),
                json: json!({"table": args.table, "created": created}),
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
        Command::Connector(c) => connector(c, store, signer, &clock, &rng).await,
        Command::Stage(StageCommand::Create { connector, mode }) => {
            let stage = admin::create_stage(store, &rng, connector, *mode)
                .await
                .map_err(err)?;
            Ok(Output::value("id", &stage.id))
        }
        Command::EnrollmentToken(EnrollmentTokenCommand::Create {
            connector,
            name,
            expires,
        }) => {
            let (token, key) = admin::create_enrollment_token(
                store, store, &clock, &rng, connector, name, *expires,
            )
            .await
            .map_err(err)?;
            Ok(Output {
                plain: key.expose().to_string(),
                json: json!({"id": token.id, "key": key.expose(), "expires_at": token.expires_at}),
            })
        }
        Command::Device(d) => device(d, store, &clock, &rng).await,
    }
}

async fn connector(
    cmd: &ConnectorCommand,
    store: &DynamoStore,
    signer: &KmsSigner,
    clock: &SystemClock,
    rng: &SystemRandom,
) -> Result<Output, String> {
    let shown = |c: Connector| Output {
        plain: connector_line(&c),
        json: connector_json(&c),
    };
    match cmd {
        ConnectorCommand::Create {
            name,
            challenge_key,
            idle_timeout,
            trigger_check_in,
        } => {
            if let Some(key) = challenge_key {
                check_key(signer, key).await?;
            }
            let new = NewConnector {
                name: name.clone(),
                challenge_key: challenge_key.clone(),
                idle_timeout: idle_timeout.map(|t| u32::try_from(t).unwrap_or(u32::MAX)),
                trigger_check_in: *trigger_check_in,
            };
            let c = admin::create_connector(store, clock, rng, new)
                .await
                .map_err(err)?;
            Ok(Output::value("id", &c.id))
        }
        ConnectorCommand::SetKey { id, key } => {
            check_key(signer, key).await?;
            Ok(shown(
                admin::set_connector_key(store, clock, id, key)
                    .await
                    .map_err(err)?,
            ))
        }
        ConnectorCommand::AddNextKey { id, key } => {
            check_key(signer, key).await?;
            Ok(shown(
                admin::add_next_key(store, clock, id, key)
                    .await
                    .map_err(err)?,
            ))
        }
        ConnectorCommand::Rotate { id, grace } => Ok(shown(
            admin::rotate(store, clock, id, *grace).await.map_err(err)?,
        )),
        ConnectorCommand::SetInteractiveStage { id, stage } => Ok(shown(
            admin::set_interactive_stage(store, id, stage)
                .await
                .map_err(err)?,
        )),
        ConnectorCommand::Disable { id } => Ok(shown(
            admin::set_connector_enabled(store, id, false)
                .await
                .map_err(err)?,
        )),
        ConnectorCommand::Enable { id } => Ok(shown(
            admin::set_connector_enabled(store, id, true)
                .await
                .map_err(err)?,
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
            })
        }
        DeviceCommand::Show { serial } => {
            let d = store
                .device_with_tokens(serial, now)
                .await
                .map_err(err)?
                .ok_or_else(|| format!("device {serial} was not found"))?;
            // Tokens are shown by id and connector only: never their key.
            let tokens: Vec<Value> = d
                .tokens
                .iter()
                .map(|t| json!({"id": t.id, "connector": t.connector, "created_at": t.created_at, "expires_at": t.expires_at}))
                .collect();
            let mut json = device_json(&d.device);
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
            })
        }
        DeviceCommand::Delete { serial } => {
            if !store.delete_device(serial).await.map_err(err)? {
                return Err(format!("device {serial} was not found"));
            }
            Ok(Output::value("deleted", serial))
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
            })
        }
    }
}
