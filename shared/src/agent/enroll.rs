//! `POST enroll/`: an enrollment token's holder enrolls a device (or re-enrolls it, when the
//! connector's policy allows), and receives the device token key.

use serde::Deserialize;

use crate::admin;
use crate::audit::{device_actor, AuditEvent, AuditKind};
use crate::error::CoreError;
use crate::model::{is_device_identifier, EnrollmentToken, TokenRefusal};
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

const NEEDS_APPROVAL: &str = "This device is already enrolled on this connector; an operator must allow its re-enrollment first (endpoint-admin device allow-reenroll).";

/// Who is refused, for the audit record of a refusal: the serial the request claims (only a
/// valid one is recorded).
struct Refusals<'a> {
    env: &'a Env<'a>,
    claimed: Option<String>,
}

impl Refusals<'_> {
    fn event(&self, reason: &str, connector: Option<&str>) -> AuditEvent {
        let actor = self
            .claimed
            .as_deref()
            .map_or_else(|| "device:(unknown)".to_string(), device_actor);
        let event = self
            .env
            .audit(AuditKind::EnrollmentRefused, actor)
            .reason(reason);
        let event = match connector {
            Some(c) => event.connector(c),
            None => event,
        };
        match &self.claimed {
            Some(serial) => event.device(serial),
            None => event,
        }
    }

    /// Records the refusal and answers 403 with `message`.
    async fn refuse<S: Store>(
        &self,
        store: &S,
        reason: &str,
        connector: Option<&str>,
        message: &str,
    ) -> CoreError {
        record_audit(store, &self.event(reason, connector)).await;
        CoreError::Forbidden(message.into())
    }

    /// Records a refusal of the token for `why`.
    async fn refuse_token<S: Store>(
        &self,
        store: &S,
        why: TokenRefusal,
        connector: Option<&str>,
    ) -> CoreError {
        self.refuse(store, why.as_str(), connector, token_refusal_message(why))
            .await
    }
}

/// `POST enroll/`: creates the device if new, replaces the connection's token if the
/// connector's re-enrollment policy allows it, returns the new device token key. Nothing is
/// written for an unknown, expired, revoked or used-up token or a disabled connector; every
/// refusal and every enrollment is audited. `request` is the parsed body, or why it could not
/// be parsed: the credentials are checked first, as on the reference.
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
    };
    // The credentials first, then the body, as on the reference.
    let token: EnrollmentToken = match store.enrollment_token_by_hash(&hash).await? {
        None => {
            return Err(refusals
                .refuse_token(store, TokenRefusal::Unknown, None)
                .await)
        }
        Some(t) => t,
    };
    let connector_id = Some(token.connector.as_str());
    if let Some(why) = token.refusal(now) {
        return Err(refusals.refuse_token(store, why, connector_id).await);
    }
    let request = request?;
    let serial = request.device_serial.as_str();
    if !token.allows_serial(serial) {
        let why = TokenRefusal::OtherSerial;
        return Err(refusals.refuse_token(store, why, connector_id).await);
    }
    let connector = match enabled_connector(store, &token.connector).await {
        Ok(c) => c,
        Err(e) => {
            record_audit(store, &refusals.event("connector_disabled", connector_id)).await;
            return Err(e);
        }
    };
    let (device, device_token, device_key) =
        admin::new_enrollment(env.rng, now, &connector.id, serial, &request.device_name)?;
    let accepted = env
        .audit(AuditKind::EnrollmentAccepted, device_actor(serial))
        .connector(&connector.id)
        .device(serial)
        .reason(format!("enrollment_token:{}", token.id));
    let grant = EnrollGrant {
        reenroll: Some(connector.reenroll),
        enrollment_token: Some(hash),
        now,
        audit: Some(accepted.clone()),
    };
    answer(
        store,
        &refusals,
        &connector.id,
        store.enroll(&device, &device_token, &grant).await?,
        accepted,
        device_key,
    )
    .await
}

/// The answer to an enrollment the store did (or refused, under its conditions).
async fn answer<S: Store>(
    store: &S,
    refusals: &Refusals<'_>,
    connector: &str,
    outcome: EnrollOutcome,
    accepted: AuditEvent,
    device_key: Secret,
) -> Result<Enrolled, CoreError> {
    let connector_id = Some(connector);
    match outcome {
        EnrollOutcome::Enrolled {
            replaced,
            allowance_used,
        } => {
            let kind = match (replaced, allowance_used) {
                (false, _) => "new",
                (true, true) => "reenrolled_with_allowance",
                (true, false) => "reenrolled_open_policy",
            };
            tracing::info!(event = "enrolled", kind, "device enrolled");
            accepted.log();
            Ok(Enrolled {
                token: device_key,
                expires_in: 0,
            })
        }
        EnrollOutcome::NeedsApproval => Err(refusals
            .refuse(
                store,
                "reenrollment_needs_approval",
                connector_id,
                NEEDS_APPROVAL,
            )
            .await),
        EnrollOutcome::TokenRefused => Err(refusals
            .refuse_token(store, TokenRefusal::UsedUp, connector_id)
            .await),
    }
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
