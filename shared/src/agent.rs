//! The agent-facing API (authentik platform agent compatible): `enroll/`, `agent_config/`,
//! `check_in/`, `auth_ia/`. Pure over the ports; the `agent` function maps these onto HTTP.
//!
//! Authentication: `Authorization: Bearer <enrollment token key>` for `enroll/`, and
//! `Authorization: Bearer+agent <device token key>` for the others. Keys are looked up by their
//! SHA-256 (no scan, no key compared in variable time). A missing or malformed header is 401;
//! an unknown or expired key, an expired device or a disabled connector is 403.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::admin;
use crate::error::CoreError;
use crate::model::*;
use crate::ports::*;
use crate::protocol::{random_id, sha256_hex};
use crate::stage::{self, Env};

/// Longest accepted key in an `Authorization` header.
pub const MAX_KEY_LEN: usize = 256;
/// Largest accepted facts document.
pub const MAX_FACTS: usize = 64 * 1024;
/// How long an interactive-auth link stays usable.
pub const DEVICE_AUTH_LIFETIME: i64 = 5 * 60;

const FORBIDDEN: &str = "The credentials are not valid for this request.";

/// The key of `Authorization: <scheme> <key>`, for exactly that scheme.
pub fn bearer<'a>(header: Option<&'a str>, scheme: &str) -> Result<&'a str, CoreError> {
    let unauthorized = || {
        CoreError::Unauthorized(format!(
            "An Authorization header \"{scheme} <key>\" is required."
        ))
    };
    let value = header.ok_or_else(unauthorized)?;
    let (got, key) = value.split_once(' ').ok_or_else(unauthorized)?;
    let key = key.trim();
    if got != scheme
        || key.is_empty()
        || key.len() > MAX_KEY_LEN
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(unauthorized());
    }
    Ok(key)
}

#[derive(Deserialize)]
struct EnrollRequest {
    device_serial: String,
    device_name: String,
}

async fn enabled_connector<D: Directory>(dir: &D, id: &str) -> Result<Connector, CoreError> {
    match dir.get_connector(id).await? {
        Some(c) if c.enabled => Ok(c),
        _ => Err(CoreError::Forbidden(FORBIDDEN.into())),
    }
}

/// `POST enroll/`: creates the device if new, replaces the connection's tokens, returns the new
/// device token key. Nothing is written for an unknown or expired token or a disabled connector.
pub async fn enroll<D, E, Dv, C, R>(
    dir: &D,
    enrollments: &E,
    devices: &Dv,
    clock: &C,
    rng: &R,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<Value, CoreError>
where
    D: Directory,
    E: EnrollmentStore,
    Dv: DeviceStore,
    C: Clock,
    R: Random,
{
    let key = bearer(authorization, "Bearer")?;
    let request: EnrollRequest = crate::http::parse_object(body)?;
    let token = enrollments
        .enrollment_token_by_hash(&sha256_hex(key.as_bytes()), clock.now())
        .await?
        .ok_or_else(|| CoreError::Forbidden(FORBIDDEN.into()))?;
    let connector = enabled_connector(dir, &token.connector).await?;
    let (_, device_key) = admin::enroll_device(
        devices,
        clock,
        rng,
        &connector.id,
        &request.device_serial,
        &request.device_name,
    )
    .await?;
    Ok(json!({"token": device_key.expose(), "expires_in": 0}))
}

/// The device and connector a device token key authenticates, or 403.
pub async fn authenticate_device<D, Dv, C>(
    dir: &D,
    devices: &Dv,
    clock: &C,
    authorization: Option<&str>,
) -> Result<(TokenRef, Device, Connector, String), CoreError>
where
    D: Directory,
    Dv: DeviceStore,
    C: Clock,
{
    let key = bearer(authorization, "Bearer+agent")?;
    let hash = sha256_hex(key.as_bytes());
    let now = clock.now();
    let forbidden = || CoreError::Forbidden(FORBIDDEN.into());
    let token = devices
        .token_by_hash(&hash, now)
        .await?
        .ok_or_else(forbidden)?;
    // The device and the connector are independent reads: issue them together.
    let (device, connector) = futures::join!(
        devices.get_device(&token.device, now),
        enabled_connector(dir, &token.connector)
    );
    let device = device?.ok_or_else(forbidden)?;
    Ok((token, device, connector?, hash))
}

/// `GET agent_config/`.
pub async fn agent_config<D, Dv, S, C>(
    dir: &D,
    devices: &Dv,
    signer: &S,
    clock: &C,
    authorization: Option<&str>,
) -> Result<Value, CoreError>
where
    D: Directory,
    Dv: DeviceStore,
    S: ChallengeSigner,
    C: Clock,
{
    let (_, device, connector, _) = authenticate_device(dir, devices, clock, authorization).await?;
    let jwks_challenge = match connector.challenge_key {
        // The connector is already read: its JWKS costs no further DynamoDB call.
        Some(_) => serde_json::to_value(stage::jwks_of(&connector, signer, clock.now()).await?)
            .unwrap_or(Value::Null),
        None => Value::Null,
    };
    Ok(json!({
        "device_id": device.identifier,
        "refresh_interval": connector.refresh_interval,
        "jwks_challenge": jwks_challenge,
        "jwks_auth": {"keys": []},
        "authorization_flow": null,
        "nss_uid_offset": 1000,
        "nss_gid_offset": 1000,
        "auth_terminate_session_on_expiry": false,
        "system_config": {},
        "license_status": null,
    }))
}

/// Validates a device facts document: a JSON object with a non-empty string `hardware.serial`,
/// at most 64 KiB. Returns it re-serialized (compact).
pub fn validate_facts(body: &[u8]) -> Result<String, CoreError> {
    if body.len() > MAX_FACTS {
        return Err(CoreError::PayloadTooLarge(MAX_FACTS));
    }
    let facts: Value = serde_json::from_slice(body)
        .map_err(|_| CoreError::BadRequest("The facts are not valid JSON.".into()))?;
    let serial = facts
        .get("hardware")
        .and_then(|h| h.get("serial"))
        .and_then(Value::as_str);
    if !facts.is_object() || serial.is_none_or(str::is_empty) {
        return Err(CoreError::BadRequest(
            "The facts need a non-empty string hardware.serial.".into(),
        ));
    }
    Ok(facts.to_string())
}

/// `POST check_in/`: stores the facts snapshot, expiring after the connector's snapshot expiry.
pub async fn check_in<D, Dv, C>(
    dir: &D,
    devices: &Dv,
    clock: &C,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<(), CoreError>
where
    D: Directory,
    Dv: DeviceStore,
    C: Clock,
{
    let (_, device, connector, _) = authenticate_device(dir, devices, clock, authorization).await?;
    let facts = validate_facts(body)?;
    let now = clock.now();
    let snapshot = FactsSnapshot {
        device: device.identifier,
        connector: connector.id,
        facts,
        created_at: now,
        expires_at: now + i64::from(connector.snapshot_expiry),
    };
    devices.put_facts(&snapshot).await?;
    Ok(())
}

/// `POST auth_ia/`: a device authentication token and a plan of the connector's interactive
/// stage; returns the URL whose GET (with the DTH header) passes the stage with this device.
pub async fn auth_ia<P, D, Dv, C, R>(
    plans: &P,
    dir: &D,
    devices: &Dv,
    env: &Env<'_, C, R>,
    public_base_url: &str,
    authorization: Option<&str>,
) -> Result<Value, CoreError>
where
    P: PlanStore,
    D: Directory,
    Dv: DeviceStore,
    C: Clock,
    R: Random,
{
    let (token, device, connector, hash) =
        authenticate_device(dir, devices, env.clock, authorization).await?;
    let stage_id = connector
        .interactive_stage
        .clone()
        .ok_or_else(|| CoreError::Refused("The connector has no interactive stage.".into()))?;
    let auth = DeviceAuthToken {
        id: random_id(env.rng, 16),
        device: DeviceRef::from(&device),
        token_id: token.token_id,
        token_sha256: hash,
        connector: connector.id,
        expires_at: Some(env.clock.now() + DEVICE_AUTH_LIFETIME),
    };
    let plan = stage::create_plan(plans, dir, env, &stage_id, None, Some(auth)).await?;
    Ok(json!({"url": format!("{public_base_url}/v1/plans/{}/executor", plan.id)}))
}
