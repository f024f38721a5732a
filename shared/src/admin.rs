//! Operator operations (the `endpoint-admin` CLI and the agent API build on these): creating
//! connectors, stages, enrollment tokens, enrolling devices. Pure over the ports.

use crate::error::CoreError;
use crate::model::*;
use crate::ports::*;
use crate::protocol::challenge::CHALLENGE_LIFETIME;
use crate::protocol::{random_alnum, random_id, sha256_hex};
use crate::secret::Secret;

/// Length of a device token key (as the reference: 128 random characters).
pub const DEVICE_TOKEN_LEN: usize = 128;
/// Length of an enrollment token key (as the reference: 60 random alphanumerics).
pub const ENROLLMENT_TOKEN_LEN: usize = 60;
/// Longest serial, device name or connector name accepted.
pub const MAX_NAME_LEN: usize = 256;
/// How long a rotated-away key stays in the JWKS: a challenge signed just before the rotation
/// stays verifiable until it expires, plus the agent's 60 s leeway.
pub const KEY_OVERLAP: i64 = CHALLENGE_LIFETIME + 60;

fn check_name(what: &str, value: &str) -> Result<(), CoreError> {
    if value.is_empty() || value.len() > MAX_NAME_LEN || value.chars().any(char::is_control) {
        return Err(CoreError::BadRequest(format!(
            "{what} must be 1 to {MAX_NAME_LEN} characters without control characters"
        )));
    }
    Ok(())
}

/// Settings of a new connector.
#[derive(Clone, Debug, Default)]
pub struct NewConnector {
    pub name: String,
    pub challenge_key: Option<String>,
    pub idle_timeout: Option<u32>,
    pub trigger_check_in: bool,
}

pub async fn create_connector<D: Directory, R: Random>(
    dir: &D,
    rng: &R,
    new: NewConnector,
) -> Result<Connector, CoreError> {
    check_name("name", &new.name)?;
    let mut c = Connector::new(random_id(rng, 12), new.name);
    c.challenge_key = new.challenge_key;
    c.challenge_trigger_check_in = new.trigger_check_in;
    if let Some(t) = new.idle_timeout {
        c.challenge_idle_timeout = t;
    }
    dir.put_connector(&c).await?;
    Ok(c)
}

async fn connector<D: Directory>(dir: &D, id: &str) -> Result<Connector, CoreError> {
    dir.get_connector(id)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("connector {id}")))
}

/// Points the connector at a new challenge key; the old one stays published for the overlap.
pub async fn set_connector_key<D: Directory, C: Clock>(
    dir: &D,
    clock: &C,
    id: &str,
    key: &str,
) -> Result<Connector, CoreError> {
    check_name("key", key)?;
    let mut c = connector(dir, id).await?;
    let now = clock.now();
    c.retired_keys.retain(|k| k.until > now && k.key != key);
    if let Some(old) = c.challenge_key.replace(key.to_string()) {
        if old != key {
            c.retired_keys.push(RetiredKey {
                key: old,
                until: now + KEY_OVERLAP,
            });
        }
    }
    dir.put_connector(&c).await?;
    Ok(c)
}

pub async fn set_connector_enabled<D: Directory>(
    dir: &D,
    id: &str,
    enabled: bool,
) -> Result<Connector, CoreError> {
    let mut c = connector(dir, id).await?;
    c.enabled = enabled;
    dir.put_connector(&c).await?;
    Ok(c)
}

pub async fn set_interactive_stage<D: Directory>(
    dir: &D,
    id: &str,
    stage: &str,
) -> Result<Connector, CoreError> {
    let mut c = connector(dir, id).await?;
    let s = dir
        .get_stage(stage)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("stage {stage}")))?;
    if s.connector != c.id {
        return Err(CoreError::Refused(format!(
            "stage {stage} belongs to another connector"
        )));
    }
    c.interactive_stage = Some(stage.to_string());
    dir.put_connector(&c).await?;
    Ok(c)
}

/// Creates a stage. A required stage on a connector without a challenge key could never pass a
/// device, so it is refused (our improvement over the reference, which skips it).
pub async fn create_stage<D: Directory, R: Random>(
    dir: &D,
    rng: &R,
    connector_id: &str,
    mode: StageMode,
) -> Result<Stage, CoreError> {
    let c = connector(dir, connector_id).await?;
    if mode == StageMode::Required && c.challenge_key.is_none() {
        return Err(CoreError::Refused(format!(
            "connector {connector_id} has no challenge key: a required stage could never pass; set a key first (connector set-key)"
        )));
    }
    let stage = Stage {
        id: random_id(rng, 12),
        connector: c.id,
        mode,
    };
    dir.put_stage(&stage).await?;
    Ok(stage)
}

/// Creates an enrollment token; returns it with its key, which is stored only as a hash.
pub async fn create_enrollment_token<D, E, C, R>(
    dir: &D,
    store: &E,
    clock: &C,
    rng: &R,
    connector_id: &str,
    name: &str,
    lifetime: Option<i64>,
) -> Result<(EnrollmentToken, Secret), CoreError>
where
    D: Directory,
    E: EnrollmentStore,
    C: Clock,
    R: Random,
{
    check_name("name", name)?;
    connector(dir, connector_id).await?;
    let key = Secret::new(random_alnum(rng, ENROLLMENT_TOKEN_LEN));
    let token = EnrollmentToken {
        id: random_id(rng, 12),
        key_sha256: key.sha256_hex(),
        connector: connector_id.to_string(),
        name: name.to_string(),
        expires_at: lifetime.map(|l| clock.now() + l),
    };
    store.put_enrollment_token(&token).await?;
    Ok((token, key))
}

/// Enrolls (or re-enrolls) a device on a connector: every older token of the connection is
/// deleted and a new device token key is returned.
pub async fn enroll_device<Dv, C, R>(
    devices: &Dv,
    clock: &C,
    rng: &R,
    connector_id: &str,
    serial: &str,
    name: &str,
) -> Result<(DeviceToken, Secret), CoreError>
where
    Dv: DeviceStore,
    C: Clock,
    R: Random,
{
    check_name("serial", serial)?;
    check_name("name", name)?;
    let now = clock.now();
    let key = Secret::new(random_alnum(rng, DEVICE_TOKEN_LEN));
    let device = Device {
        identifier: serial.to_string(),
        name: name.to_string(),
        created_at: now,
        expires_at: None,
    };
    let token = DeviceToken {
        id: random_id(rng, 12),
        device: serial.to_string(),
        connector: connector_id.to_string(),
        key: key.clone(),
        created_at: now,
        expires_at: None,
    };
    devices.enroll(&device, &token).await?;
    Ok((token, key))
}

/// The SHA-256 under which a secret is stored and looked up.
pub fn key_hash(key: &str) -> String {
    sha256_hex(key.as_bytes())
}
