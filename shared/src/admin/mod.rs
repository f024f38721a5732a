//! Operator operations (the `endpoint-admin` CLI and the agent API build on these): creating
//! connectors, stages, enrollment tokens, enrolling devices. Pure over the ports.

mod devices;
mod enrollment_tokens;
mod help;
mod owners;
mod rollout;

pub use rollout::{key_rollout, KeyRollout, NAMED_IN_REFUSAL};

pub use devices::{
    allow_reenroll, lock_device, lock_until_label, unlock_device, MAX_LOCK, MAX_REENROLL_WINDOW,
};
pub use enrollment_tokens::{
    create_enrollment_token, list_enrollment_tokens, revoke_enrollment_token,
    show_enrollment_token, EnrollmentTokenDetails, NewEnrollmentToken,
};
pub use help::{set_stage_help, stage_help};
pub use owners::{check_owner, check_owners, set_device_owners};

use crate::assertion::parse_audiences;
use crate::error::CoreError;
use crate::model::{
    is_device_identifier, Connector, Device, DeviceToken, ExistingSerial, NextKey, ReenrollPolicy,
    RetiredKey, Stage, StageMode, UnixTime,
};
use crate::ports::{random_alnum, random_id};
use crate::ports::{
    ChallengeSigner, Clock, DeviceStore, Directory, EnrollGrant, EnrollOutcome, Random,
    RolloutStore,
};
use crate::protocol::challenge::CHALLENGE_LIFETIME;
use crate::protocol::keys::SigningAlg;
use crate::redirect::parse_origins;
use crate::secret::Secret;

/// Length of a device token key (as the reference: 128 random characters).
pub const DEVICE_TOKEN_LEN: usize = 128;
/// Length of an enrollment token key (as the reference: 60 random alphanumerics).
pub const ENROLLMENT_TOKEN_LEN: usize = 60;
/// Longest serial, device name or connector name accepted.
pub const MAX_NAME_LEN: usize = 256;
/// How long a key replaced by `set-key` stays in the JWKS: a challenge signed just before the
/// switch stays verifiable until it expires, plus the agent's 60 s leeway.
pub const KEY_OVERLAP: i64 = CHALLENGE_LIFETIME + 60;
/// How long `connector rotate` keeps the old key published by default: agents that fetched
/// their configuration before the rotation still verify challenges of the old key meanwhile.
pub const DEFAULT_ROTATION_GRACE: i64 = 7 * 86_400;

fn check_name(what: &str, value: &str) -> Result<(), CoreError> {
    if !is_device_identifier(value) {
        return Err(CoreError::BadRequest(format!(
            "{what} must be 1 to {MAX_NAME_LEN} characters, without control characters or invisible formatting characters (bidirectional overrides, zero-width characters)"
        )));
    }
    Ok(())
}

/// Checks that `key` can sign challenges that every authentik platform agent can verify: it
/// must exist and be usable, and not be a P-521 key (the Rust agent's JWT library has no ES512).
pub async fn check_challenge_key<S: ChallengeSigner>(
    signer: &S,
    key: &str,
) -> Result<(), CoreError> {
    check_name("key", key)?;
    let description = signer
        .describe(key)
        .await
        .map_err(|e| CoreError::Conflict(format!("cannot use {key:?} as a challenge key: {e}")))?;
    if description.alg == SigningAlg::ES512 {
        return Err(CoreError::Conflict(format!(
            "{key:?} is a P-521 key: authentik platform agents cannot verify ES512 challenges; use an ECC_NIST_P256, ECC_NIST_P384 or RSA key"
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
    pub reenroll: ReenrollPolicy,
}

pub async fn create_connector<D: Directory, C: Clock + ?Sized, R: Random + ?Sized>(
    dir: &D,
    clock: &C,
    rng: &R,
    new: NewConnector,
) -> Result<Connector, CoreError> {
    let now = clock.now();
    check_name("name", &new.name)?;
    let mut c = Connector::new(random_id(rng, 12), new.name);
    c.challenge_key_since = new.challenge_key.as_ref().map(|_| now);
    c.challenge_key = new.challenge_key;
    c.challenge_trigger_check_in = new.trigger_check_in;
    c.reenroll = new.reenroll;
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

/// Makes `key` the signing key from `now` on; the old one stays published until `until`.
fn switch_key(c: &mut Connector, key: &str, now: UnixTime, until: UnixTime) {
    c.retired_keys.retain(|k| k.until > now && k.key != key);
    if c.next_key.as_ref().is_some_and(|n| n.key == key) {
        c.next_key = None;
    }
    if let Some(old) = c.challenge_key.replace(key.to_string()) {
        if old != key {
            c.retired_keys.push(RetiredKey {
                key: old,
                until,
                retired_at: Some(now),
            });
        } else {
            return;
        }
    }
    c.challenge_key_since = Some(now);
}

/// Points the connector at a new challenge key at once; the old one stays published for
/// [`KEY_OVERLAP`]. Agents that have not fetched their configuration since cannot verify the
/// new key's challenges: for a fleet of real agents use [`add_next_key`] and [`rotate`].
pub async fn set_connector_key<D: Directory, C: Clock + ?Sized>(
    dir: &D,
    clock: &C,
    id: &str,
    key: &str,
) -> Result<Connector, CoreError> {
    check_name("key", key)?;
    let mut c = connector(dir, id).await?;
    let now = clock.now();
    switch_key(&mut c, key, now, now + KEY_OVERLAP);
    dir.put_connector(&c).await?;
    Ok(c)
}

/// Publishes `key` as the connector's next challenge key now (in the JWKS route and in
/// `jwks_challenge`), without signing with it; [`rotate`] later makes it the signing key.
pub async fn add_next_key<D: Directory, C: Clock + ?Sized>(
    dir: &D,
    clock: &C,
    id: &str,
    key: &str,
) -> Result<Connector, CoreError> {
    check_name("key", key)?;
    let mut c = connector(dir, id).await?;
    if c.challenge_key.as_deref() == Some(key) {
        return Err(CoreError::Conflict(format!(
            "{key:?} is already the signing key of connector {id}"
        )));
    }
    c.next_key = Some(NextKey {
        key: key.to_string(),
        added_at: clock.now(),
    });
    dir.put_connector(&c).await?;
    Ok(c)
}

/// Signs with the next key from now on; the old signing key stays published for `grace`
/// seconds, so agents that have not refreshed their configuration keep verifying challenges.
/// Refused while a live device of the connector has not fetched its configuration since the
/// next key was published ([`KeyRollout`]: its agent would refuse the new key's challenges),
/// unless `force`. Answers the connector and the rollout it rotated at.
pub async fn rotate<D: Directory + RolloutStore, C: Clock + ?Sized>(
    dir: &D,
    clock: &C,
    id: &str,
    grace: i64,
    force: bool,
) -> Result<(Connector, KeyRollout), CoreError> {
    let mut c = connector(dir, id).await?;
    let now = clock.now();
    let rollout = key_rollout(dir, &c, now).await?.ok_or_else(|| {
        CoreError::Conflict(format!(
            "connector {id} has no next key: publish one first (connector add-next-key), and rotate once agents have fetched it"
        ))
    })?;
    if !rollout.complete() && !force {
        return Err(rollout.refusal(id));
    }
    // Never shorter than a challenge's life plus the agents' leeway.
    switch_key(&mut c, &rollout.next_key, now, now + grace.max(KEY_OVERLAP));
    dir.put_connector(&c).await?;
    Ok((c, rollout))
}

/// Reads the connector, applies `change`, stores it.
async fn change_connector<D: Directory>(
    dir: &D,
    id: &str,
    change: impl FnOnce(&mut Connector),
) -> Result<Connector, CoreError> {
    let mut c = connector(dir, id).await?;
    change(&mut c);
    dir.put_connector(&c).await?;
    Ok(c)
}

pub async fn set_connector_enabled<D: Directory>(
    dir: &D,
    id: &str,
    enabled: bool,
) -> Result<Connector, CoreError> {
    change_connector(dir, id, |c| c.enabled = enabled).await
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
        return Err(CoreError::Conflict(format!(
            "stage {stage} belongs to another connector"
        )));
    }
    c.interactive_stage = Some(stage.to_string());
    dir.put_connector(&c).await?;
    Ok(c)
}

/// Creates a stage. A required stage on a connector without a challenge key could never pass a
/// device, so it is refused (our improvement over the reference, which skips it).
pub async fn create_stage<D: Directory, R: Random + ?Sized>(
    dir: &D,
    rng: &R,
    connector_id: &str,
    mode: StageMode,
    redirect_origins: &[String],
) -> Result<Stage, CoreError> {
    let redirect_origins = parse_origins(redirect_origins)?;
    let c = connector(dir, connector_id).await?;
    if mode == StageMode::Required && c.challenge_key.is_none() {
        return Err(CoreError::Conflict(format!(
            "connector {connector_id} has no challenge key: a required stage could never pass; set a key first (connector set-key)"
        )));
    }
    let stage = Stage {
        id: random_id(rng, 12),
        connector: c.id,
        mode,
        policy: None,
        redirect_origins: Some(redirect_origins),
        audiences: Vec::new(),
        help: None,
    };
    dir.put_stage(&stage).await?;
    Ok(stage)
}

/// Registers the origins a stage's plans may redirect to (replacing those it had; none: a
/// path or a loopback URL only). A stage stored before origins existed leaves the older rule.
pub async fn set_redirect_origins<D: Directory>(
    dir: &D,
    stage_id: &str,
    origins: &[String],
) -> Result<Stage, CoreError> {
    let origins = parse_origins(origins)?;
    let mut stage = dir
        .get_stage(stage_id)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("stage {stage_id}")))?;
    stage.redirect_origins = Some(origins);
    dir.put_stage(&stage).await?;
    Ok(stage)
}

/// Registers the audiences a stage's plans may ask their device assertions to name, besides
/// the stage id (replacing those it had; none: the stage id only).
pub async fn set_audiences<D: Directory>(
    dir: &D,
    stage_id: &str,
    audiences: &[String],
) -> Result<Stage, CoreError> {
    let audiences = parse_audiences(audiences)?;
    let mut stage = dir
        .get_stage(stage_id)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("stage {stage_id}")))?;
    stage.audiences = audiences;
    dir.put_stage(&stage).await?;
    Ok(stage)
}

/// How long an enrollment token lives unless the operator says otherwise.
pub const DEFAULT_ENROLLMENT_TOKEN_LIFETIME: i64 = 7 * 86_400;
/// How long `device allow-reenroll` allows a re-enrollment unless told otherwise.
pub const DEFAULT_REENROLL_WINDOW: i64 = 3600;

/// Settings of a new enrollment token.
/// Sets a connector's re-enrollment policy.
pub async fn set_reenroll<D: Directory>(
    dir: &D,
    id: &str,
    policy: ReenrollPolicy,
) -> Result<Connector, CoreError> {
    change_connector(dir, id, |c| c.reenroll = policy).await
}

/// A new device (kept by the store if it exists: its id is assigned at first enrollment) and
/// its new token for the connector, with the token's key.
pub fn new_enrollment<R: Random + ?Sized>(
    rng: &R,
    now: UnixTime,
    connector_id: &str,
    serial: &str,
    name: &str,
) -> Result<(Device, DeviceToken, Secret), CoreError> {
    check_name("serial", serial)?;
    check_name("name", name)?;
    let key = Secret::new(random_alnum(rng, DEVICE_TOKEN_LEN));
    let device = Device {
        id: random_uuid(rng),
        identifier: serial.to_string(),
        name: name.to_string(),
        created_at: now,
        expires_at: None,
        lock: None,
        owners: Vec::new(),
    };
    let token = DeviceToken {
        id: random_id(rng, 12),
        device: serial.to_string(),
        connector: connector_id.to_string(),
        key: key.clone(),
        created_at: now,
        expires_at: None,
    };
    Ok((device, token, key))
}

/// An operator enrolls (or re-enrolls) a device on a connector: every older token of the
/// connection is deleted and a new device token key is returned. An existing device keeps its
/// id, name and expiry, as on the reference; only the connection's tokens are replaced.
pub async fn enroll_device<S, C, R>(
    store: &S,
    clock: &C,
    rng: &R,
    connector_id: &str,
    serial: &str,
    name: &str,
) -> Result<(DeviceToken, Secret), CoreError>
where
    S: Directory + DeviceStore,
    C: Clock + ?Sized,
    R: Random + ?Sized,
{
    connector(store, connector_id).await?;
    let now = clock.now();
    let (device, token, key) = new_enrollment(rng, now, connector_id, serial, name)?;
    let grant = EnrollGrant {
        existing: ExistingSerial::Approved,
        enrollment_token: None,
        now,
        audit: None,
    };
    match store.enroll(&device, &token, &grant).await? {
        EnrollOutcome::Enrolled { .. } => Ok((token, key)),
        // Neither can happen to an approved grant without an enrollment token.
        EnrollOutcome::NeedsApproval | EnrollOutcome::TokenRefused => Err(CoreError::Conflict(
            "the enrollment was refused by the store".into(),
        )),
    }
}

/// A random (version 4) UUID, as the reference's device primary keys.
pub fn random_uuid(rng: &(impl Random + ?Sized)) -> String {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}
