//! `POST enroll/`: an enrollment token's holder enrolls a device (or enrolls it again, with a
//! token bound to its serial or where every connector is `open`), and receives the device
//! token key.

use serde::Deserialize;

use crate::admin;
use crate::audit::{device_actor, enrollment_token_actor, AuditEvent, AuditKind};
use crate::error::CoreError;
use crate::model::{
    is_device_identifier, Connector, EnrollmentToken, ExistingSerial, ReenrollPolicy, TokenRefusal,
    UnixTime,
};
use crate::ports::{record_audit, EnrollGrant, EnrollOutcome, Store};
use crate::secret::{sha256_hex, Secret};
use crate::settings::Env;

use super::{bearer, enabled_connector, FORBIDDEN};

#[derive(Deserialize)]
pub struct EnrollRequest {
    pub device_serial: String,
    pub device_name: String,
}

/// What `enroll/` answers: the new device token key (`expires_in` 0: it does not expire).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrolled {
    pub token: Secret,
    pub expires_in: i64,
}

/// The refusal of an existing serial: the same sentence whatever the serial's connectors, and
/// never saying that it exists.
const NEEDS_APPROVAL: &str = "This enrollment token cannot enroll this device. Ask an operator for an enrollment token for it (endpoint-admin device allow-reenroll).";

/// Refused enrollments within one minute after which every further attempt of the same
/// enrollment token, or of the same source address, gets 429 for the rest of the minute.
pub const REFUSALS_PER_TOKEN: u32 = 10;
pub const REFUSALS_PER_SOURCE: u32 = 60;

/// The refusal counters of one attempt: per presented token (by its hash, known or not) and
/// per source address (when the request has one), in the current minute.
struct RefusalLimits {
    buckets: Vec<String>,
    limits: Vec<u32>,
    window_end: UnixTime,
}

impl RefusalLimits {
    fn of(token_sha256: &str, source: Option<&str>, now: UnixTime) -> Self {
        let window_end = now - now.rem_euclid(60) + 60;
        let mut buckets = vec![format!("enroll_refused#token#{token_sha256}#{window_end}")];
        let mut limits = vec![REFUSALS_PER_TOKEN];
        if let Some(ip) = source {
            buckets.push(format!("enroll_refused#source#{ip}#{window_end}"));
            limits.push(REFUSALS_PER_SOURCE);
        }
        RefusalLimits {
            buckets,
            limits,
            window_end,
        }
    }

    /// 429 until the minute ends if any counter reached its limit.
    fn check(&self, counts: &[u32], now: UnixTime) -> Result<(), CoreError> {
        let reached = counts.iter().zip(&self.limits).any(|(c, l)| c >= l);
        if reached {
            tracing::warn!(
                event = "enrollment_refusals_limited",
                "enrollment attempts limited"
            );
            return Err(CoreError::RateLimited(
                (self.window_end - now).clamp(1, 60) as u32
            ));
        }
        Ok(())
    }

    /// Counts one more refusal in every counter (together, one round).
    async fn count<S: Store>(&self, store: &S) {
        let takes = self
            .buckets
            .iter()
            .zip(&self.limits)
            .map(|(b, l)| store.take(b, *l, self.window_end));
        for r in futures::future::join_all(takes).await {
            if let Err(e) = r {
                tracing::error!(event = "limit_write_failed", error = %e, "refusal not counted");
            }
        }
    }
}

/// Who is refused, for the audit record of a refusal: `anonymous` until a valid enrollment
/// token is presented (then its holder); the serial the request claims is kept apart, marked
/// unverified (only a well-formed one is recorded).
struct Refusals<'a> {
    env: &'a Env<'a>,
    claimed: Option<String>,
    limits: RefusalLimits,
}

impl Refusals<'_> {
    fn event(&self, reason: &str, token: Option<&str>, connector: Option<&str>) -> AuditEvent {
        let actor = token.map_or_else(|| "anonymous".to_string(), enrollment_token_actor);
        let event = self
            .env
            .audit(AuditKind::EnrollmentRefused, actor)
            .reason(reason);
        let event = match connector {
            Some(c) => event.connector(c),
            None => event,
        };
        match &self.claimed {
            Some(serial) => event.unverified_device(serial),
            None => event,
        }
    }

    /// Counts and records the refusal and answers 403 with `message`.
    async fn refuse<S: Store>(
        &self,
        store: &S,
        reason: &str,
        by: Option<&EnrollmentToken>,
        message: &str,
    ) -> CoreError {
        let event = self.event(
            reason,
            by.map(|t| t.id.as_str()),
            by.map(|t| t.connector.as_str()),
        );
        futures::join!(self.limits.count(store), record_audit(store, &event));
        CoreError::Forbidden(message.into())
    }

    /// Records a refusal of the token for `why` (an unusable token's holder is anonymous).
    async fn refuse_token<S: Store>(
        &self,
        store: &S,
        why: TokenRefusal,
        token: Option<&EnrollmentToken>,
    ) -> CoreError {
        let holder = token.filter(|_| why == TokenRefusal::OtherSerial);
        let message = token_refusal_message(why);
        let event = self.event(
            why.as_str(),
            holder.map(|t| t.id.as_str()),
            token.map(|t| t.connector.as_str()),
        );
        futures::join!(self.limits.count(store), record_audit(store, &event));
        CoreError::Forbidden(message.into())
    }
}

/// `POST enroll/`: creates the device if new; enrolls an existing serial again only with an
/// enrollment token bound to it, or where the target connector and every connector the serial
/// is on are `open`; returns the new device token key. Nothing is written for an unknown,
/// expired, revoked or used-up token or a disabled connector; every refusal and every
/// enrollment is audited, and refusals are limited per token and per source address.
/// `request` is the parsed body, or why it could not be parsed: the credentials are checked
/// first, as on the reference.
pub async fn enroll<S: Store>(
    store: &S,
    env: &Env<'_>,
    authorization: Option<&str>,
    request: Result<EnrollRequest, CoreError>,
) -> Result<Enrolled, CoreError> {
    let key = bearer(authorization, "Bearer")?;
    let hash = sha256_hex(key.as_bytes());
    let now = env.clock.now();
    let refusals = Refusals {
        env,
        claimed: request
            .as_ref()
            .ok()
            .map(|r| r.device_serial.clone())
            .filter(|s| is_device_identifier(s)),
        limits: RefusalLimits::of(&hash, env.caller.source_ip.as_deref(), now),
    };
    // The counters are read beside the token: no extra round.
    let (token, counts) = futures::join!(
        store.enrollment_token_by_hash(&hash),
        store.counts(&refusals.limits.buckets, now)
    );
    refusals.limits.check(&counts?, now)?;
    // The credentials first, then the body, as on the reference.
    let Some(token) = token? else {
        return Err(refusals
            .refuse_token(store, TokenRefusal::Unknown, None)
            .await);
    };
    if let Some(why) = token.refusal(now) {
        return Err(refusals.refuse_token(store, why, Some(&token)).await);
    }
    let request = request?;
    let serial = request.device_serial.as_str();
    if !token.allows_serial(serial) {
        let why = TokenRefusal::OtherSerial;
        return Err(refusals.refuse_token(store, why, Some(&token)).await);
    }
    let connector = match enabled_connector(store, &token.connector).await {
        Ok(c) => c,
        Err(e) => {
            let event = refusals.event(
                "connector_disabled",
                Some(&token.id),
                Some(&token.connector),
            );
            record_audit(store, &event).await;
            return Err(e);
        }
    };
    let existing = existing_serial_rule(store, &token, &connector).await?;
    let (mut device, device_token, device_key) =
        admin::new_enrollment(env.rng, now, &connector.id, serial, &request.device_name)?;
    // A token with an owner makes that person the device's only owner (a device handed over
    // and re-enrolled belongs to its new person); without, the device keeps its owners.
    device.owners = token.owner.iter().cloned().collect();
    let accepted = env
        .audit(AuditKind::EnrollmentAccepted, device_actor(serial))
        .connector(&connector.id)
        .device(serial)
        .reason(format!("enrollment_token:{}", token.id));
    let grant = EnrollGrant {
        existing,
        enrollment_token: Some(hash),
        now,
        audit: Some(accepted.clone()),
    };
    let outcome = store.enroll(&device, &device_token, &grant).await?;
    answer(store, &refusals, &token, outcome, accepted, device_key).await
}

/// The answer to an enrollment the store did, or refused under its conditions.
async fn answer<S: Store>(
    store: &S,
    refusals: &Refusals<'_>,
    token: &EnrollmentToken,
    outcome: EnrollOutcome,
    accepted: AuditEvent,
    device_key: Secret,
) -> Result<Enrolled, CoreError> {
    match outcome {
        EnrollOutcome::Enrolled { existed, replaced } => {
            let kind = match (existed, token.serial.is_some()) {
                (false, _) => "new",
                (true, true) => "reenrolled_with_bound_token",
                (true, false) => "reenrolled_open_policy",
            };
            tracing::info!(event = "enrolled", kind, replaced, "device enrolled");
            accepted.log();
            Ok(Enrolled {
                token: device_key,
                expires_in: 0,
            })
        }
        EnrollOutcome::NeedsApproval => {
            let why = "reenrollment_needs_approval";
            Err(refusals
                .refuse(store, why, Some(token), NEEDS_APPROVAL)
                .await)
        }
        EnrollOutcome::TokenRefused => Err(refusals
            .refuse_token(store, TokenRefusal::UsedUp, Some(token))
            .await),
    }
}

/// Who may enroll the serial if it exists: a token bound to it may; a general one only where
/// everything is `open` (the open connectors are read only when the target itself is open).
async fn existing_serial_rule<S: Store>(
    store: &S,
    token: &EnrollmentToken,
    target: &Connector,
) -> Result<ExistingSerial, CoreError> {
    if token.serial.is_some() {
        return Ok(ExistingSerial::Approved);
    }
    let open = match target.reenroll {
        ReenrollPolicy::Approve => Vec::new(),
        ReenrollPolicy::Open => store
            .list_connectors()
            .await?
            .into_iter()
            .filter(|c| c.reenroll == ReenrollPolicy::Open)
            .map(|c| c.id)
            .collect(),
    };
    Ok(ExistingSerial::OnlyIfOpen {
        target: target.id.clone(),
        open,
    })
}

fn token_refusal_message(why: TokenRefusal) -> &'static str {
    match why {
        TokenRefusal::Unknown => FORBIDDEN,
        TokenRefusal::Revoked => "The enrollment token was revoked.",
        TokenRefusal::Expired => "The enrollment token has expired.",
        TokenRefusal::UsedUp => "The enrollment token has been used as many times as it allows.",
        TokenRefusal::OtherSerial => "The enrollment token is bound to another device.",
    }
}
