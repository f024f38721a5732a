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
//! | DTH header matches a live token of the stage's connector | pass with device | same |
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

use crate::audit::{caller_actor, device_actor, AuditEvent, AuditKind, Caller};
use crate::error::CoreError;
pub use crate::model::Outcome;
use crate::model::*;
use crate::ports::*;
use crate::ports::{random_alnum, random_id};
use crate::protocol::challenge::{assemble, signing_input, ChallengeClaims};
use crate::protocol::jwk::Jwks;
use crate::protocol::response::{Expected, Invalid, ParsedResponse};
use crate::protocol::{ct_eq, ATC_LEN};

pub const MSG_INVALID_CONFIGURATION: &str = "Invalid stage configuration";
pub const MSG_INVALID_DEVICE_TOKEN: &str = "Invalid device token";
pub const MSG_INVALID_RESPONSE: &str = "Invalid challenge response";
pub const MSG_TOO_MANY_ATTEMPTS: &str = "Too many attempts";

/// Longest accepted plan redirect.
pub const MAX_REDIRECT_LEN: usize = 2048;
/// Longest accepted id in a path or body (plans, stages, connectors).
pub const MAX_ID_LEN: usize = 128;
/// Longest accepted DTH header (a SHA-256 hex digest is 64 characters).
pub const MAX_DTH_LEN: usize = 128;

/// Tunables, from the functions' environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Clock-skew leeway on a response's `exp`, `nbf`, `iat`, in seconds.
    pub leeway: i64,
    /// How long a plan lives, in seconds.
    pub plan_lifetime: i64,
    /// How many challenges one plan may mint (each costs a KMS signature).
    pub max_challenges_per_plan: u32,
    /// How many `auth_ia/` plans one device may create per minute.
    pub auth_ia_per_minute: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            leeway: crate::protocol::response::DEFAULT_LEEWAY,
            plan_lifetime: 15 * 60,
            max_challenges_per_plan: 10,
            auth_ia_per_minute: 10,
        }
    }
}

/// The clock, randomness and tunables every operation needs, and who is asking.
pub struct Env<'a> {
    pub clock: &'a dyn Clock,
    pub rng: &'a dyn Random,
    pub settings: &'a Settings,
    pub caller: &'a Caller,
}

impl Env<'_> {
    /// A new audit record of `kind` by `actor`, now, with the caller's address and agent.
    pub fn audit(&self, kind: AuditKind, actor: String) -> AuditEvent {
        AuditEvent::new(
            kind,
            self.clock.now(),
            &random_alnum(self.rng, 8),
            actor,
            self.caller,
        )
    }
}

/// A new plan, as `POST /v1/plans` answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanCreated {
    pub id: String,
    pub expires_at: UnixTime,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

/// A plan's redirect, where the hosted page sends the browser when the stage passes: a path
/// on the relying party's site (`/...`, never `//host` or `/\\`), or an `https:` URL; `http:`
/// only for a loopback host (`localhost`, `127.0.0.1`, `[::1]`). No other scheme
/// (`javascript:`, `data:`, ...), no credentials in the URL, no whitespace or backslash.
pub fn check_redirect(redirect: &str) -> Result<(), CoreError> {
    let refused = || {
        CoreError::BadRequest(format!(
            "redirect must be a path starting with / or an https: URL (http: only for localhost, 127.0.0.1 or [::1]), at most {MAX_REDIRECT_LEN} characters"
        ))
    };
    if redirect.is_empty()
        || redirect.len() > MAX_REDIRECT_LEN
        || redirect
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return Err(refused());
    }
    if let Some(path) = redirect.strip_prefix('/') {
        return if path.starts_with('/') {
            Err(refused())
        } else {
            Ok(())
        };
    }
    let scheme_end = redirect.find("://").ok_or_else(refused)?;
    let loopback_only = match redirect[..scheme_end].to_ascii_lowercase().as_str() {
        "https" => false,
        "http" => true,
        _ => return Err(refused()),
    };
    let rest = &redirect[scheme_end + 3..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = if authority.starts_with('[') {
        authority
            .find(']')
            .map(|end| &authority[..=end])
            .ok_or_else(refused)?
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            Some(_) => return Err(refused()),
            None => authority,
        }
    };
    let host_chars_ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-[]:".contains(&b));
    if host.is_empty() || !host_chars_ok {
        return Err(refused());
    }
    let loopback = matches!(
        host.to_ascii_lowercase().as_str(),
        "localhost" | "127.0.0.1" | "[::1]"
    );
    if loopback_only && !loopback {
        return Err(refused());
    }
    Ok(())
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
    if !valid_id(stage_id) {
        return Err(CoreError::NotFound("stage".into()));
    }
    let redirect = redirect.unwrap_or("/");
    check_redirect(redirect)?;
    let stage = store
        .get_stage(stage_id)
        .await?
        .ok_or_else(|| CoreError::NotFound("stage".into()))?;
    let connector = store
        .get_connector(&stage.connector)
        .await?
        .ok_or_else(|| CoreError::NotFound("connector".into()))?;
    let now = env.clock.now();
    // Interactive-auth plans are created by a device, not a relying party: their own id prefix
    // (the agent function's only PutItem grant) and no owner.
    let (id, owner) = match device_auth {
        None => (random_id(env.rng, 24), env.caller.owner()),
        Some(_) => (
            format!("{INTERACTIVE_PLAN_PREFIX}{}", random_id(env.rng, 24)),
            None,
        ),
    };
    let plan = Plan {
        id,
        stage: stage.id.clone(),
        config: StageSnapshot::of(&stage, &connector),
        redirect: redirect.to_string(),
        status: PlanStatus::Pending,
        pending_challenge: None,
        challenges_issued: 0,
        device: None,
        device_auth,
        denial: None,
        owner,
        created_at: now,
        expires_at: now + env.settings.plan_lifetime,
    };
    store.create_plan(&plan).await?;
    Ok(PlanCreated {
        id: plan.id,
        expires_at: plan.expires_at,
    })
}

/// `GET /v1/plans/{plan}`: the plan, unless unknown, expired, or created by another principal
/// (answered exactly as unknown, so plan ids of others cannot even be confirmed). An assumed
/// role is one principal whatever its session name ([`Caller::owner`]).
pub async fn read_own_plan<P: PlanStore>(
    plans: &P,
    env: &Env<'_>,
    id: &str,
) -> Result<Plan, CoreError> {
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

/// The audit record of a plan ending with `finish`.
fn finish_event(env: &Env<'_>, plan: &Plan, finish: &Finish, reason: &str) -> AuditEvent {
    let (kind, device) = match finish {
        Finish::Passed(device) => (AuditKind::StagePassed, device.as_ref()),
        Finish::Denied(_) => (AuditKind::StageDenied, None),
    };
    let actor = match device {
        Some(d) => device_actor(&d.identifier),
        None => caller_actor(env.caller),
    };
    let mut event = env
        .audit(kind, actor)
        .plan(&plan.id)
        .connector(&plan.config.connector)
        .reason(reason);
    if let Some(d) = device {
        event = event.device(&d.identifier);
    }
    event
}

/// A reason class for a denial message.
fn denial_class(message: &str) -> &'static str {
    match message {
        MSG_INVALID_CONFIGURATION => "invalid_configuration",
        MSG_INVALID_DEVICE_TOKEN => "invalid_device_token",
        MSG_INVALID_RESPONSE => "no_response",
        MSG_TOO_MANY_ATTEMPTS => "too_many_attempts",
        _ => "denied",
    }
}

/// The answer of a plan that is no longer pending.
fn final_outcome(plan: &Plan) -> Option<Outcome> {
    match plan.status {
        PlanStatus::Pending => None,
        PlanStatus::Passed => Some(Outcome::Redirect {
            to: plan.redirect.clone(),
        }),
        PlanStatus::Denied => Some(Outcome::Denied {
            message: plan
                .denial
                .clone()
                .unwrap_or_else(|| MSG_INVALID_CONFIGURATION.into()),
        }),
    }
}

/// Ends the plan (with its audit record, in the same write); if another request ended it
/// first, answers what that request decided. `reason` is the audit record's reason class.
async fn conclude<P: PlanStore>(
    plans: &P,
    env: &Env<'_>,
    plan: &Plan,
    finish: Finish,
    reason: &str,
) -> Result<Outcome, CoreError> {
    let now = env.clock.now();
    let reason = match &finish {
        Finish::Denied(m) => denial_class(m),
        Finish::Passed(_) => reason,
    };
    let event = finish_event(env, plan, &finish, reason);
    if plans
        .finish_plan(&plan.id, &finish, None, now, Some(&event))
        .await?
    {
        event.log();
        return Ok(match finish {
            Finish::Passed(_) => Outcome::Redirect {
                to: plan.redirect.clone(),
            },
            Finish::Denied(message) => Outcome::Denied { message },
        });
    }
    settled(plans, &plan.id, now).await
}

/// After a lost conditional write: the plan's final outcome, or `Conflict` if it is still
/// pending (a concurrent request replaced its challenge), or `NotFound` if it expired meanwhile.
async fn settled<P: PlanStore>(plans: &P, id: &str, now: UnixTime) -> Result<Outcome, CoreError> {
    match plans.get_plan(id, now).await? {
        None => Err(CoreError::NotFound("plan".into())),
        Some(p) => final_outcome(&p).ok_or(CoreError::LostRace),
    }
}

/// The outcome of a stage that cannot or need not check a device: pass without one in
/// optional mode, deny with `message` in required mode.
async fn skip_or_deny<P: PlanStore>(
    plans: &P,
    env: &Env<'_>,
    plan: &Plan,
    message: &str,
) -> Result<Outcome, CoreError> {
    let finish = match plan.config.mode {
        StageMode::Optional => Finish::Passed(None),
        StageMode::Required => Finish::Denied(message.to_string()),
    };
    conclude(plans, env, plan, finish, denial_class(message)).await
}

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
    })
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
                let finish = Finish::Denied(MSG_TOO_MANY_ATTEMPTS.into());
                return conclude(plans, env, &plan, finish, "").await;
            }
            return Err(CoreError::LostRace);
        }
    };
    if !plan.config.enabled {
        return skip_or_deny(plans, env, &plan, MSG_INVALID_CONFIGURATION).await;
    }
    if let (Some(auth), Some(header)) = (&plan.device_auth, dth.filter(|h| !h.is_empty())) {
        let header_ok =
            header.len() <= MAX_DTH_LEN && ct_eq(header.as_bytes(), auth.token_sha256.as_bytes());
        // Our improvement over the reference: the token must still exist, be unexpired, and
        // belong to this device and this stage's connector.
        let token_ok = header_ok
            && !is_expired(auth.expires_at, now)
            && devices
                .token_by_hash(&auth.token_sha256, now)
                .await?
                .is_some_and(|t| {
                    t.token_id == auth.token_id
                        && t.device == auth.device.identifier
                        && t.connector == plan.config.connector
                });
        let finish = if token_ok {
            Finish::Passed(Some(auth.device.clone()))
        } else {
            Finish::Denied(MSG_INVALID_DEVICE_TOKEN.into())
        };
        return conclude(plans, env, &plan, finish, "device_token").await;
    }
    let Some(key) = plan.config.challenge_key.as_deref() else {
        return skip_or_deny(plans, env, &plan, MSG_INVALID_CONFIGURATION).await;
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
        return skip_or_deny(plans, env, &plan, MSG_INVALID_CONFIGURATION).await;
    }
    let (Some(response), Some(parsed)) = (response, parsed) else {
        return skip_or_deny(plans, env, &plan, MSG_INVALID_RESPONSE).await;
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
    match verdict {
        Ok(device) => {
            let consumed = expected.challenge.map(|(jws, _)| jws);
            let finish = Finish::Passed(Some(device));
            let event = finish_event(env, &plan, &finish, "valid_response");
            if plans
                .finish_plan(&plan.id, &finish, consumed, now, Some(&event))
                .await?
            {
                // The single use of the challenge (counted by the concurrency suite).
                tracing::info!(event = "challenge_consumed", "challenge consumed");
                event.log();
                return Ok(Outcome::Redirect { to: plan.redirect });
            }
            // Lost the race: the plan ended (answer that), or the challenge was replaced by a
            // newer GET, in which case this response answers a stale challenge: invalid.
            match plans.get_plan(&plan.id, now).await? {
                None => Err(CoreError::NotFound("plan".into())),
                Some(p) => match final_outcome(&p) {
                    Some(outcome) => Ok(outcome),
                    None => {
                        invalid_response(plans, minter, env, &p, Invalid::ChallengeMismatch).await
                    }
                },
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
    let event = env
        .audit(AuditKind::InvalidResponse, caller_actor(env.caller))
        .plan(&plan.id)
        .connector(&plan.config.connector)
        .reason(reason.class());
    match plan.config.mode {
        StageMode::Optional => {
            // The pass without a device is recorded too (reason: the invalid response's class).
            let recorded = record_audit(plans, &event);
            let (outcome, ()) = futures::join!(
                conclude(plans, env, plan, Finish::Passed(None), reason.class()),
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
                },
                other => other,
            },
        ),
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
