//! The endpoint stage: plan creation, the decision table and the plan state machine.
//!
//! Every operation takes the ports it needs (one `S: Store` when it needs more than one store
//! port) and an [`Env`] (clock, randomness, tunables), so each rule is unit-testable with
//! deterministic time. Outcomes are typed values the edge maps one-to-one onto the contract's
//! JSON.
//!
//! The decision table (mode x situation -> outcome):
//!
//! | situation | optional | required |
//! |---|---|---|
//! | plan unknown or expired | not found | not found |
//! | plan already passed / denied | the redirect / the denial, again | same |
//! | connector disabled | pass, no device | deny "Invalid stage configuration" |
//! | DTH header matches a live token of the stage's connector | pass with device (locked: deny, the lock read with the token) | same |
//! | DTH header present, wrong | deny "Invalid device token" | same |
//! | connector has no challenge key | pass, no device | deny "Invalid stage configuration" |
//! | GET, otherwise | a new challenge, until the attempt limit; then deny "Too many attempts" | same |
//! | response null or absent | pass, no device | deny "Invalid challenge response" |
//! | response invalid | pass, no device | a new challenge with `response_errors` |
//! | response valid | pass with device; the challenge consumed by one conditional write | same |
//!
//! The state machine: a plan is `pending` until it passes or is denied, both final; every
//! transition is one conditional write, and an operation that loses a race against a concurrent
//! writer starts again on fresh state ([`retry_lost_races`]).

mod decision;
mod executor;

use crate::assertion::{check_assertion_request, check_audience};
use crate::error::CoreError;
use crate::model::Connector;
pub use crate::model::Outcome;
use crate::model::{DeviceAuthToken, Plan, StageSnapshot, UnixTime, INTERACTIVE_PLAN_PREFIX};
use crate::ports::{ChallengeSigner, Clock, Directory, PlanStore};
use crate::protocol::jwk::Jwks;
use crate::redirect::{plan_redirect, RedirectRule};
use crate::settings::Env;

pub use decision::denial_reason;
pub use executor::{executor_get, executor_post};

pub const MSG_INVALID_CONFIGURATION: &str = "Invalid stage configuration";
pub const MSG_INVALID_DEVICE_TOKEN: &str = "Invalid device token";
pub const MSG_INVALID_RESPONSE: &str = "Invalid challenge response";
pub const MSG_TOO_MANY_ATTEMPTS: &str = "Too many attempts";

/// Longest accepted id in a path or body (plans, stages, connectors).
pub const MAX_ID_LEN: usize = 128;
/// Longest accepted DTH header (a SHA-256 hex digest is 64 characters).
pub const MAX_DTH_LEN: usize = 128;

/// A new plan, as `POST /v1/plans` answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanCreated {
    pub id: String,
    pub expires_at: UnixTime,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

/// What a relying party asks of a new plan: where to go when it passes, and what its device
/// assertion is to carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanOptions {
    pub redirect: Option<String>,
    pub nonce: Option<String>,
    pub audience: Option<String>,
}

/// Creates a plan for `stage_id`, snapshotting what the stage needs from its connector.
/// `device_auth` is set for the interactive-auth path.
pub async fn create_plan<S: PlanStore + Directory>(
    store: &S,
    env: &Env<'_>,
    stage_id: &str,
    redirect: Option<&str>,
    device_auth: Option<DeviceAuthToken>,
) -> Result<PlanCreated, CoreError> {
    let options = PlanOptions {
        redirect: redirect.map(str::to_string),
        ..PlanOptions::default()
    };
    create_plan_with(store, env, stage_id, &options, device_auth).await
}

/// [`create_plan`] with everything a relying party may ask (`POST /v1/plans`).
pub async fn create_plan_with<S: PlanStore + Directory>(
    store: &S,
    env: &Env<'_>,
    stage_id: &str,
    options: &PlanOptions,
    device_auth: Option<DeviceAuthToken>,
) -> Result<PlanCreated, CoreError> {
    if !valid_id(stage_id) {
        return Err(CoreError::NotFound("stage".into()));
    }
    check_assertion_request(options.nonce.as_deref(), options.audience.as_deref())?;
    let redirect = options.redirect.as_deref().unwrap_or("/");
    // What no stage allows (the older rule allows the most) is refused before any read.
    plan_redirect(redirect, RedirectRule::Legacy)?;
    let stage = store
        .get_stage(stage_id)
        .await?
        .ok_or_else(|| CoreError::NotFound("stage".into()))?;
    let redirect = plan_redirect(redirect, RedirectRule::of(&stage))?;
    check_audience(&stage, options.audience.as_deref())?;
    let connector = store
        .get_connector(&stage.connector)
        .await?
        .ok_or_else(|| CoreError::NotFound("connector".into()))?;
    let now = env.clock.now();
    // Interactive-auth plans are created by a device, not a relying party: their own id prefix
    // (the agent function's only PutItem grant) and no owner.
    // Its id names this region: only this region ever writes it (`region.rs`).
    let id = env
        .settings
        .regions
        .new_plan_id(env.rng, device_auth.is_some());
    let owner = match device_auth {
        None => env.caller.owner(),
        Some(_) => None,
    };
    let plan = Plan {
        owner,
        device_auth,
        nonce: options.nonce.clone(),
        audience: options.audience.clone(),
        ..Plan::pending(
            id,
            stage.id.clone(),
            StageSnapshot::of(&stage, &connector),
            redirect,
            now,
            now + env.settings.plan_lifetime,
        )
    };
    store.create_plan(&plan).await?;
    Ok(PlanCreated {
        id: plan.id,
        expires_at: plan.expires_at,
    })
}

/// `GET /v1/plans/{plan}`: the plan, unless unknown, expired, or created by another principal
/// (answered exactly as unknown, so plan ids of others cannot even be confirmed). An assumed
/// role is one principal whatever its session name ([`Caller::owner`]). Plans of `auth_ia/`
/// belong to no relying party: answered as unknown too, before any read.
pub async fn read_own_plan<P: PlanStore>(
    plans: &P,
    env: &Env<'_>,
    id: &str,
) -> Result<Plan, CoreError> {
    if id.starts_with(INTERACTIVE_PLAN_PREFIX) {
        return Err(CoreError::NotFound("plan".into()));
    }
    env.settings.regions.check_home(id)?;
    let plan = read_plan(plans, env.clock, id).await?;
    match &plan.owner {
        Some(owner) if env.caller.owner().as_ref() != Some(owner) => {
            Err(CoreError::NotFound("plan".into()))
        }
        _ => Ok(plan),
    }
}

/// The plan, unless unknown or expired (the executor routes: the plan id is the capability).
pub async fn read_plan<P: PlanStore, C: Clock + ?Sized>(
    plans: &P,
    clock: &C,
    id: &str,
) -> Result<Plan, CoreError> {
    if !valid_id(id) {
        return Err(CoreError::NotFound("plan".into()));
    }
    plans
        .get_plan(id, clock.now())
        .await?
        .ok_or_else(|| CoreError::NotFound("plan".into()))
}

/// How many times an operation that lost a race against a concurrent writer starts again.
pub const RACE_RETRIES: usize = 3;

/// Runs `attempt` again on fresh state while it loses races ([`CoreError::LostRace`]), at most
/// [`RACE_RETRIES`] more times; then the last answer stands.
pub async fn retry_lost_races<T, F, Fut>(mut attempt: F) -> Result<T, CoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CoreError>>,
{
    let mut retries = 0;
    loop {
        match attempt().await {
            Err(CoreError::LostRace) if retries < RACE_RETRIES => retries += 1,
            other => return other,
        }
    }
}

/// `GET /v1/connectors/{connector}/jwks.json`: the public keys of the connector's current
/// challenge key and of keys it rotated away from within their overlap window, with the same
/// `kid` the challenges carry. Signers cache key descriptions, so a warm call makes no KMS call.
pub async fn connector_jwks<D, S, C>(
    directory: &D,
    signer: &S,
    clock: &C,
    connector_id: &str,
) -> Result<Jwks, CoreError>
where
    D: Directory,
    S: ChallengeSigner,
    C: Clock + ?Sized,
{
    if !valid_id(connector_id) {
        return Err(CoreError::NotFound("connector".into()));
    }
    let connector = directory
        .get_connector(connector_id)
        .await?
        .ok_or_else(|| CoreError::NotFound("connector".into()))?;
    jwks_of(&connector, signer, clock.now()).await
}

/// The JWKS of a connector already read (the agent API's `jwks_challenge`).
pub async fn jwks_of<S: ChallengeSigner>(
    connector: &Connector,
    signer: &S,
    now: UnixTime,
) -> Result<Jwks, CoreError> {
    let mut jwks = Jwks::default();
    for (i, key) in connector.published_keys(now).into_iter().enumerate() {
        match signer.describe(key).await {
            Ok(d) if jwks.keys.iter().all(|k| k.kid != d.kid) => jwks.keys.push(d.jwk),
            Ok(_) => {}
            // The current key must be publishable; a next or retired one that fails is skipped.
            Err(e) if i == 0 => return Err(e.into()),
            Err(e) => tracing::warn!(error = %e, "next or retired challenge key skipped in JWKS"),
        }
    }
    Ok(jwks)
}
