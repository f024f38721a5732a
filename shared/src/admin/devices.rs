//! Operator operations on one device: approving its re-enrollment, locking and unlocking it.

use crate::error::CoreError;
use crate::model::{DeviceLock, EnrollmentToken, UnixTime};
use crate::ports::{Clock, DeviceStore, Directory, EnrollmentStore, Random};
use crate::secret::Secret;

use super::{check_name, create_enrollment_token, NewEnrollmentToken};
use crate::signals::lock_change;

/// The longest re-enrollment window an operator may give.
pub const MAX_REENROLL_WINDOW: i64 = 30 * 86_400;
/// The longest timed lock (`--for`); a lock without `--for` holds until unlocked.
pub const MAX_LOCK: i64 = 366 * 86_400;
/// Longest lock reason kept.
pub const MAX_LOCK_REASON_CHARS: usize = 256;

/// Approves one re-enrollment of `serial` on the connector: a new enrollment token bound to
/// that serial, single use, living `window` seconds (what the reinstalled device enrolls with;
/// no other token can enroll an existing serial on an `approve` connector).
pub async fn allow_reenroll<S, C, R>(
    store: &S,
    clock: &C,
    rng: &R,
    connector_id: &str,
    serial: &str,
    window: i64,
) -> Result<(EnrollmentToken, Secret), CoreError>
where
    S: Directory + EnrollmentStore,
    C: Clock + ?Sized,
    R: Random + ?Sized,
{
    check_name("serial", serial)?;
    if !(1..=MAX_REENROLL_WINDOW).contains(&window) {
        return Err(CoreError::BadRequest(format!(
            "the window must be between 1 second and {} days",
            MAX_REENROLL_WINDOW / 86_400
        )));
    }
    let new = NewEnrollmentToken {
        connector: connector_id.to_string(),
        name: format!("re-enrollment of {serial}"),
        lifetime: Some(window),
        max_uses: Some(1),
        serial: Some(serial.to_string()),
        owner: None,
    };
    create_enrollment_token(store, clock, rng, new).await
}

/// Locks the device from now on, for `duration` seconds (`None`: until unlocked), with the
/// operator's reason. Every stage denies it, its `auth_ia/` is refused, its check-ins flow.
/// Receivers hear of it (a `device-compliance-change` to `not-compliant`, in the same write).
pub async fn lock_device<S, C, R>(
    store: &S,
    clock: &C,
    rng: &R,
    serial: &str,
    duration: Option<i64>,
    reason: Option<&str>,
) -> Result<DeviceLock, CoreError>
where
    S: DeviceStore,
    C: Clock + ?Sized,
    R: Random + ?Sized,
{
    check_name("serial", serial)?;
    if duration.is_some_and(|d| !(1..=MAX_LOCK).contains(&d)) {
        return Err(CoreError::BadRequest(format!(
            "a timed lock lasts between 1 second and {} days (without --for: until unlocked)",
            MAX_LOCK / 86_400
        )));
    }
    if let Some(r) = reason {
        if r.chars().count() > MAX_LOCK_REASON_CHARS {
            return Err(CoreError::BadRequest(format!(
                "the reason must be at most {MAX_LOCK_REASON_CHARS} characters"
            )));
        }
        check_name("reason", r)?;
    }
    let now = clock.now();
    let lock = DeviceLock {
        since: now,
        until: duration.map(|d| now + d),
        reason: reason.map(str::to_string),
    };
    let (device, evaluations) = profile(store, serial, now).await?;
    let signal = lock_change(rng, clock, &device, &evaluations, true, reason);
    if !store
        .set_device_lock(serial, Some(&lock), Some(&signal))
        .await?
    {
        return Err(CoreError::NotFound(format!("device {serial}")));
    }
    Ok(lock)
}

/// Lifts the device's lock (also when it had none; receivers hear of it when it had one).
pub async fn unlock_device<S, C, R>(
    store: &S,
    clock: &C,
    rng: &R,
    serial: &str,
) -> Result<(), CoreError>
where
    S: DeviceStore,
    C: Clock + ?Sized,
    R: Random + ?Sized,
{
    check_name("serial", serial)?;
    let now = clock.now();
    let (device, evaluations) = profile(store, serial, now).await?;
    let signal = device
        .lock_at(now)
        .map(|_| lock_change(rng, clock, &device, &evaluations, false, None));
    if !store.set_device_lock(serial, None, signal.as_ref()).await? {
        return Err(CoreError::NotFound(format!("device {serial}")));
    }
    Ok(())
}

/// The device with its evaluations (what a lock's event says of its status).
async fn profile<S: DeviceStore>(
    store: &S,
    serial: &str,
    now: UnixTime,
) -> Result<(crate::model::Device, Vec<crate::model::Evaluation>), CoreError> {
    store
        .device_profile(serial, now)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("device {serial}")))
}

/// Until when a lock holds, as the CLI prints it.
pub fn lock_until_label(until: Option<UnixTime>) -> String {
    until.map_or_else(|| "until unlocked".to_string(), |u| format!("until {u}"))
}
