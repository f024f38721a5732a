//! The browser's return from the hosted page (the plan's redirect, and its "Back to sign-in"):
//! the plan's outcome goes back to the client, once. A passed plan becomes a code (profile
//! `code`) or a form-posted ID token (profile `entra-eam`); a denied one `access_denied` with
//! the denial's sentence; a device that is not the user's (`--match-owner`) is denied too.

use serde_json::{json, Value};

use crate::idp::owners::{
    match_owner, match_owner_or_sole, HintNames, MatchedOwner, NamedBy, OwnerMismatch,
};
use crate::model::{AuthRequest, Grant, OidcClient, OwnerClaim, Plan, PlanStatus, Profile};
use crate::ports::{ChallengeSigner, DeviceStore, GrantKind, OidcStore, PlanStore};
use crate::settings::Env;
use crate::stage::read_plan;

use super::id_token::{sign_id_token, IdKeys};
use super::{secret_hash, Answer, Failure, CODE_CHARS, CODE_LIFETIME, ID_TOKEN_LIFETIME};

/// The sentence of a pass without a device (an optional stage): the provider's one job is the
/// device, so nothing passes without one.
pub const MSG_NO_DEVICE: &str = "No device was identified.";

/// Where the browser goes from the resume route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resumed {
    /// Back to the hosted page: the plan is still running.
    Page(String),
    /// To the client.
    Back(Answer),
}

/// `GET /oidc/plans/{plan}/resume`.
#[allow(clippy::too_many_arguments)]
pub async fn resume<S, K>(
    store: &S,
    signer: &K,
    keys: &IdKeys,
    env: &Env<'_>,
    issuer: &str,
    plan_id: &str,
) -> Result<Resumed, Failure>
where
    S: OidcStore + PlanStore + DeviceStore,
    K: ChallengeSigner,
{
    // Another region's plan: never read here, nor its one return marked (the edge answers a
    // redirect to its home first; this is the domain's own guarantee).
    env.settings
        .regions
        .check_home(plan_id)
        .map_err(|_| Failure::Page("This sign-in has expired or does not exist.".into()))?;
    let plan = read_plan(store, env.clock, plan_id)
        .await
        .map_err(|_| Failure::Page("This sign-in has expired or does not exist.".into()))?;
    let Some(request) = plan.oidc.clone() else {
        return Err(Failure::Page(
            "This sign-in has expired or does not exist.".into(),
        ));
    };
    if plan.status == PlanStatus::Pending {
        return Ok(Resumed::Page(plan.id));
    }
    let now = env.clock.now();
    // One answer per plan: a second return (a reload, a replayed link) gets nothing.
    if !store
        .mark_once(&format!("RESUME#{}", plan.id), plan.expires_at, now)
        .await
        .map_err(|e| Failure::Core(e.into()))?
    {
        return Err(Failure::Page(
            "This sign-in has already returned to the application.".into(),
        ));
    }
    let deny = |why: &str| {
        Ok(Resumed::Back(Answer::error(
            request.profile,
            &request.redirect_uri,
            "access_denied",
            why,
            request.state.as_deref(),
        )))
    };
    if plan.status == PlanStatus::Denied {
        return deny(
            plan.denial
                .as_deref()
                .unwrap_or("The device step was denied."),
        );
    }
    let Some(device) = plan.device.clone() else {
        return deny(MSG_NO_DEVICE);
    };
    let client = match store.get_client(&request.client).await {
        Ok(Some(c)) => c,
        Ok(None) => return deny("The client is no longer registered."),
        Err(e) => return Err(Failure::Core(e.into())),
    };
    let owner = match client.match_owner {
        None => None,
        Some(claim) => {
            let stored = store
                .device_token_info(&device.identifier, now)
                .await
                .map_err(|e| Failure::Core(e.into()))?;
            let owners = stored.map(|(d, _)| d.owners).unwrap_or_default();
            match owner_of(&request, claim, &owners) {
                Ok(matched) => Some(matched),
                Err(mismatch) => return deny(mismatch.description()),
            }
        }
    };
    let grant = grant_of(&plan, &request, &client, owner, now);
    let mut fields = Vec::new();
    match request.profile {
        Profile::Code => {
            // `<code>_<random>` with regions: redeemed only in this region (`region.rs`).
            let code = env.settings.regions.new_code(env.rng, CODE_CHARS);
            store
                .put_grant(GrantKind::Code, &secret_hash(&code), &grant)
                .await
                .map_err(|e| Failure::Core(e.into()))?;
            fields.push(("code".to_string(), code));
        }
        Profile::EntraEam => {
            let token = sign_id_token(
                signer,
                keys,
                &client,
                issuer,
                &grant,
                request.acr.as_deref(),
                now,
            )
            .await
            .map_err(Failure::Core)?;
            fields.push(("id_token".to_string(), token));
        }
    }
    if let Some(s) = &request.state {
        fields.push(("state".to_string(), s.clone()));
    }
    Ok(Resumed::Back(Answer::of(
        request.profile,
        &request.redirect_uri,
        fields,
    )))
}

/// The device's owner the request names (the verified hint's claims, else the `login_hint`),
/// by the domain's owner rules (`idp::owners`). Profile `code` passes a device of one owner
/// when nobody was named (Okta compares the ID token's `preferred_username` with the person it
/// authenticated); a verified Entra hint must name an owner.
fn owner_of(
    request: &AuthRequest,
    claim: OwnerClaim,
    owners: &[String],
) -> Result<MatchedOwner, OwnerMismatch> {
    let hint = request.hint_sub.as_deref().map(|sub| HintNames {
        preferred_username: request.hint_username.as_deref(),
        email: request.hint_email.as_deref(),
        sub: Some(sub),
    });
    let named = NamedBy {
        hint,
        login_hint: request.login_hint.as_deref(),
    };
    match request.profile {
        Profile::Code => match_owner_or_sole(claim, &named, owners),
        Profile::EntraEam => match_owner(claim, &named, owners),
    }
}

/// What the plan's pass stands for: the ID token's claims.
fn grant_of(
    plan: &Plan,
    request: &AuthRequest,
    client: &OidcClient,
    owner: Option<MatchedOwner>,
    now: i64,
) -> Grant {
    let device = plan.device.as_ref();
    let device_claim = device.map(|d| {
        json!({
            "id": d.id,
            "serial": d.identifier,
            "name": d.name,
            "compliance": plan.compliance.as_ref().map_or(Value::Null, |c| json!({
                "status": c.status.as_str(),
                "policy": c.policy,
            })),
        })
    });
    let device_id = device
        .and_then(|d| d.id.clone().or_else(|| Some(d.identifier.clone())))
        .unwrap_or_default();
    let sub = match (&request.hint_sub, &owner) {
        (Some(hint), _) => hint.clone(),
        (None, Some(o)) => o.owner.clone(),
        (None, None) => device_id,
    };
    let (preferred_username, email) = match owner {
        Some(o) => (Some(o.preferred_username), o.email),
        None => (None, None),
    };
    Grant {
        client: client.id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        code_challenge: request.code_challenge.clone(),
        nonce: request.nonce.clone(),
        sub,
        auth_time: plan.ended_at.unwrap_or(now),
        preferred_username,
        email,
        device: match request.profile {
            Profile::Code => device_claim,
            Profile::EntraEam => None,
        },
        expires_at: now
            + match request.profile {
                Profile::Code => CODE_LIFETIME,
                Profile::EntraEam => ID_TOKEN_LIFETIME,
            },
    }
}
