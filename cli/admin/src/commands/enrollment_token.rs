//! `endpoint-admin enrollment-token ...`: the tokens agents enroll with.

use crate::clock::OperatorClock;
use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::admin;
use endpoint_core::audit::AuditKind;
use endpoint_core::model::{is_expired, EnrollmentToken};
use endpoint_core::ports::Clock;
use endpoint_core::ports::SystemRandom;
use serde_json::{json, Value};

use crate::cli::EnrollmentTokenCommand;
use crate::error::AdminError;
use crate::output::{audit, date, Output};
use crate::parsers::Expiry;

pub(crate) async fn enrollment_token(
    cmd: &EnrollmentTokenCommand,
    store: &DynamoStore,
    clock: &OperatorClock,
    rng: &SystemRandom,
) -> Result<Output, AdminError> {
    let now = clock.now();
    match cmd {
        EnrollmentTokenCommand::Create {
            connector,
            name,
            expires,
            max_uses,
            serial,
            owner,
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
                owner: owner.clone(),
            };
            let (token, key) = admin::create_enrollment_token(store, clock, rng, new).await?;
            Ok(Output {
                plain: key.expose().to_string(),
                json: json!({"id": token.id, "key": key.expose(), "expires_at": token.expires_at, "max_uses": token.max_uses, "serial": token.serial, "owner": token.owner}),
                audit: Some(
                    audit(AuditKind::EnrollmentTokenCreated)
                        .connector(connector)
                        .reason(format!("token {}", token.id)),
                ),
            })
        }
        EnrollmentTokenCommand::List { connector } => {
            let list = admin::list_enrollment_tokens(store, connector.as_deref()).await?;
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
            let d = admin::show_enrollment_token(store, id).await?;
            let mut json = enrollment_token_json(&d.token, now);
            json["enrolled"] = serde_json::to_value(&d.enrolled).unwrap_or(Value::Null);
            Ok(Output {
                plain: serde_json::to_string_pretty(&json).unwrap_or_default(),
                json,
                audit: None,
            })
        }
        EnrollmentTokenCommand::Revoke { id } => {
            let t = admin::revoke_enrollment_token(store, clock, id).await?;
            Ok(Output {
                plain: enrollment_token_line(&t, now),
                json: enrollment_token_json(&t, now),
                audit: Some(
                    audit(AuditKind::EnrollmentTokenRevoked)
                        .connector(&t.connector)
                        .reason(format!("token {}", t.id)),
                ),
            })
        }
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
        "owner": t.owner,
        "uses": t.uses,
        "last_used_at": t.last_used_at,
        "revoked_at": t.revoked_at,
    })
}

fn token_state(t: &EnrollmentToken, now: i64) -> &'static str {
    if t.revoked_at.is_some() {
        "revoked"
    } else if is_expired(t.expires_at, now) {
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
