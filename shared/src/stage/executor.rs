//! The executor: `GET` mints a challenge (or passes by the DTH header, or ends the plan), `POST`
//! validates a response and ends the plan, or answers a new challenge in required mode.

use crate::error::CoreError;
use crate::model::{
    is_device_identifier, is_expired, DeviceRef, Outcome, PendingChallenge, Plan, StageMode,
};
use crate::ports::{
    random_alnum, record_audit, AuditLog, ChallengeMinter, ChallengeSigner, DeviceStore, PlanStore,
    Reserve, Store,
};
use crate::protocol::challenge::{assemble, signing_input, ChallengeClaims};
use crate::protocol::response::{Expected, Invalid, ParsedResponse};
use crate::protocol::{ct_eq, ATC_LEN};
use crate::settings::Env;

use super::decision::{
    conclude, conclude_consuming, final_outcome, invalid_event, refusal_reason, settled, Ending,
};
use super::{
    read_plan, retry_lost_races, valid_id, MAX_DTH_LEN, MSG_INVALID_CONFIGURATION,
    MSG_INVALID_DEVICE_TOKEN, MSG_INVALID_RESPONSE, MSG_TOO_MANY_ATTEMPTS,
};

/// Signs a challenge (its attempt already reserved), makes it the plan's pending one, and
/// answers it. Of concurrent GETs, the last stored is the pending one; the others' browsers get
/// a new challenge when they answer.
async fn mint<P: PlanStore, K: ChallengeSigner>(
    plans: &P,
    signer: &K,
    env: &Env<'_>,
    plan: &Plan,
    key: &str,
    invalid_response: bool,
) -> Result<Outcome, CoreError> {
    let now = env.clock.now();
    let description = signer.describe(key).await?;
    let claims = ChallengeClaims::new(
        random_alnum(env.rng, ATC_LEN),
        &plan.stage,
        now,
        plan.config.challenge_trigger_check_in,
    );
    let input = signing_input(description.alg, &description.kid, &claims);
    let signature = signer.sign(key, input.as_bytes()).await?;
    if signature.alg != description.alg || signature.kid != description.kid {
        // The key changed under us (rotation between describe and sign): never publish a
        // challenge whose header lies about its key.
        return Err(CoreError::Unavailable(
            "The challenge signing key changed while signing; try again.".into(),
        ));
    }
    let pending = PendingChallenge {
        jws: assemble(&input, &signature.signature),
        exp: claims.exp,
    };
    if !plans.set_challenge(&plan.id, &pending, now).await? {
        return settled(plans, &plan.id, now).await;
    }
    Ok(Outcome::Challenge {
        jws: pending.jws,
        idle_timeout: plan.config.challenge_idle_timeout,
        invalid_response,
        reason: None,
    })
}

/// `GET /v1/plans/{plan}/executor`: the DTH path, the skip rules, the attempt limit, and
/// otherwise a new challenge that replaces the pending one.
pub async fn executor_get<S: Store, K: ChallengeSigner>(
    store: &S,
    signer: &K,
    env: &Env<'_>,
    plan_id: &str,
    dth: Option<&str>,
) -> Result<Outcome, CoreError> {
    retry_lost_races(|| executor_get_once(store, store, signer, env, plan_id, dth)).await
}

/// One attempt of [`executor_get`]; plan and device reads go to the one store, named by the
/// part of it each uses.
async fn executor_get_once<P: PlanStore, Dv: DeviceStore, K: ChallengeSigner>(
    plans: &P,
    devices: &Dv,
    signer: &K,
    env: &Env<'_>,
    plan_id: &str,
    dth: Option<&str>,
) -> Result<Outcome, CoreError> {
    if !valid_id(plan_id) {
        return Err(CoreError::NotFound("plan".into()));
    }
    // Another region's plan is never written here (`region.rs`).
    env.settings.regions.check_home(plan_id)?;
    let now = env.clock.now();
    // The attempt is reserved before anything else, so that no number of concurrent GETs can
    // make more than `max_challenges_per_plan` KMS signatures for one plan.
    let max = env.settings.max_challenges_per_plan;
    let plan = match plans.reserve_challenge(plan_id, max, now).await? {
        Reserve::Granted(plan) => plan,
        Reserve::Refused(None) => return Err(CoreError::NotFound("plan".into())),
        Reserve::Refused(Some(plan)) => {
            if is_expired(Some(plan.expires_at), now) {
                return Err(CoreError::NotFound("plan".into()));
            }
            if let Some(outcome) = final_outcome(&plan) {
                return Ok(outcome);
            }
            if plan.challenges_issued >= max {
                return conclude(plans, env, &plan, Ending::deny(MSG_TOO_MANY_ATTEMPTS)).await;
            }
            return Err(CoreError::LostRace);
        }
    };
    if !plan.config.enabled {
        let ending = Ending::skip_or_deny(plan.config.mode, MSG_INVALID_CONFIGURATION);
        return conclude(plans, env, &plan, ending).await;
    }
    if let (Some(auth), Some(header)) = (&plan.device_auth, dth.filter(|h| !h.is_empty())) {
        let header_ok =
            header.len() <= MAX_DTH_LEN && ct_eq(header.as_bytes(), auth.token_sha256.as_bytes());
        // Our improvement over the reference: the token must still exist, be unexpired, and
        // belong to this device and this stage's connector; and the device's lock is read in
        // the same request as the token, so a lock holds here at once (not only once the
        // token's link expires).
        let (token, device) = if header_ok && !is_expired(auth.expires_at, now) {
            devices
                .token_and_device(&auth.token_sha256, &auth.device.identifier, now)
                .await?
        } else {
            (None, None)
        };
        let token_ok = token.is_some_and(|t| {
            t.token_id == auth.token_id
                && t.device == auth.device.identifier
                && t.connector == plan.config.connector
        });
        let ending = match device.filter(|_| token_ok) {
            Some(d) => {
                // The evaluations `auth_ia/` read with the device decide compliance here.
                let locked = d.lock_at(now).is_some();
                let (device, stored) = (auth.device.clone(), &auth.compliance);
                Ending::identified(&plan, (device, locked), stored, now, "device_token")
            }
            // No valid token identifies a device (a revoked or expired one proves nothing).
            None => Ending::deny(MSG_INVALID_DEVICE_TOKEN),
        };
        return conclude(plans, env, &plan, ending).await;
    }
    let Some(key) = plan.config.challenge_key.as_deref() else {
        let ending = Ending::skip_or_deny(plan.config.mode, MSG_INVALID_CONFIGURATION);
        return conclude(plans, env, &plan, ending).await;
    };
    mint(plans, signer, env, &plan, key, false).await
}

/// `POST /v1/plans/{plan}/executor`: validates the response and passes, denies, or (required
/// mode, invalid response) answers a new challenge with the contract's `response_errors`.
/// A valid response passes only through the atomic consumption of the pending challenge.
pub async fn executor_post<S: Store, M: ChallengeMinter>(
    store: &S,
    minter: &M,
    env: &Env<'_>,
    plan_id: &str,
    response: Option<&str>,
) -> Result<Outcome, CoreError> {
    retry_lost_races(|| executor_post_once(store, store, minter, env, plan_id, response)).await
}

/// One attempt of [`executor_post`].
async fn executor_post_once<P: PlanStore + AuditLog, Dv: DeviceStore, M: ChallengeMinter>(
    plans: &P,
    devices: &Dv,
    minter: &M,
    env: &Env<'_>,
    plan_id: &str,
    response: Option<&str>,
) -> Result<Outcome, CoreError> {
    env.settings.regions.check_home(plan_id)?;
    let response = response.filter(|r| !r.is_empty());
    let parsed = response.map(ParsedResponse::parse);
    let now = env.clock.now();
    // The plan and the device are independent reads: issue them together.
    let device_read = async {
        match &parsed {
            Some(Ok(p)) if is_device_identifier(p.issuer()) => {
                devices.device_with_tokens(p.issuer(), now).await
            }
            _ => Ok(None),
        }
    };
    let (plan, device) = futures::join!(read_plan(plans, env.clock, plan_id), device_read);
    let plan = plan?;
    if let Some(outcome) = final_outcome(&plan) {
        return Ok(outcome);
    }
    if !plan.config.enabled || plan.config.challenge_key.is_none() {
        let ending = Ending::skip_or_deny(plan.config.mode, MSG_INVALID_CONFIGURATION);
        return conclude(plans, env, &plan, ending).await;
    }
    let (Some(response), Some(parsed)) = (response, parsed) else {
        let ending = Ending::skip_or_deny(plan.config.mode, MSG_INVALID_RESPONSE);
        return conclude(plans, env, &plan, ending).await;
    };
    let device = device?;
    let expected = Expected {
        challenge: plan
            .pending_challenge
            .as_ref()
            .map(|c| (c.jws.as_str(), c.exp)),
        connector: &plan.config.connector,
        now,
        leeway: env.settings.leeway,
    };
    let verdict: Result<DeviceRef, Invalid> =
        parsed.and_then(|p| p.verify(response, device.as_ref(), &expected));
    // The device's lock and stored evaluations came with the same query: no extra read.
    let locked = device
        .as_ref()
        .is_some_and(|d| d.device.lock_at(now).is_some());
    let stored_evaluations = device.map(|d| d.compliance);
    match verdict {
        Ok(device) => {
            let consumed = expected.challenge.map(|(jws, _)| jws);
            let stored = stored_evaluations.as_deref().unwrap_or_default();
            let ending = Ending::identified(&plan, (device, locked), stored, now, "valid_response");
            match conclude_consuming(plans, env, &plan, ending, consumed).await? {
                Ok(outcome) => {
                    if matches!(outcome, Outcome::Redirect { .. }) {
                        // The single use of the challenge (counted by the concurrency suite).
                        tracing::info!(event = "challenge_consumed", "challenge consumed");
                    }
                    Ok(outcome)
                }
                // Lost the race to a newer GET that replaced the challenge: this response
                // answers a stale challenge, which is invalid.
                Err(fresh) => {
                    invalid_response(plans, minter, env, &fresh, Invalid::ChallengeMismatch).await
                }
            }
        }
        Err(reason) => invalid_response(plans, minter, env, &plan, reason).await,
    }
}

async fn invalid_response<P: PlanStore + AuditLog, M: ChallengeMinter>(
    plans: &P,
    minter: &M,
    env: &Env<'_>,
    plan: &Plan,
    reason: Invalid,
) -> Result<Outcome, CoreError> {
    tracing::info!(plan_reason = %reason, "invalid challenge response");
    let event = invalid_event(env, plan, &reason);
    match plan.config.mode {
        StageMode::Optional => {
            // The pass without a device is recorded too (reason: the invalid response's class).
            let recorded = record_audit(plans, &event);
            let (outcome, ()) = futures::join!(
                conclude(plans, env, plan, Ending::pass(None, reason.class())),
                recorded
            );
            outcome
        }
        // The record is written while the challenge function mints: no extra round trip.
        StageMode::Required => Ok(
            match futures::join!(minter.new_challenge(&plan.id), record_audit(plans, &event)).0? {
                Outcome::Challenge {
                    jws, idle_timeout, ..
                } => Outcome::Challenge {
                    jws,
                    idle_timeout,
                    invalid_response: true,
                    reason: Some(refusal_reason(&reason)),
                },
                other => other,
            },
        ),
    }
}
