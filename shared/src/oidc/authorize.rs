//! The authorization endpoint: the client and its exact `redirect_uri` first (a failure there
//! is an error page, never a redirect), then the profile's rules (a failure there goes back to
//! the `redirect_uri` as OIDC says), then a plan that runs the client's stage on the hosted
//! page and comes back to the provider's resume route (`resume`, given by the edge: the domain
//! knows no routes).

use crate::error::CoreError;
use crate::model::{AuthRequest, OidcClient, Plan, Profile, StageSnapshot, UnixTime};
use crate::ports::{Directory, JwksFetcher, OidcStore, PlanStore};
use crate::settings::Env;

use super::entra::{acr_from_claims, verify_hint};
use super::params::Params;
use super::{Answer, Failure, OIDC_PLAN_OWNER, OIDC_PLAN_PREFIX};

/// The longest `code_challenge` (RFC 7636: a base64url SHA-256 is 43 characters).
pub const MAX_CODE_CHALLENGE: usize = 128;

/// Where the browser goes after the authorization request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// To the hosted page of the new plan (its id).
    Page(String),
    /// Straight back to the client (an error the request already shows).
    Back(Answer),
}

/// The client and `redirect_uri` the request names, if both are known and registered.
pub async fn client_and_redirect<S: OidcStore>(
    store: &S,
    params: &Params,
) -> Result<(OidcClient, String), Failure> {
    let id = params
        .get("client_id")
        .ok_or_else(|| Failure::Page("The request names no client (client_id).".into()))?;
    let client = store
        .get_client(id)
        .await
        .map_err(|e| Failure::Core(e.into()))?
        .ok_or_else(|| {
            Failure::Page("The request names a client that is not registered.".into())
        })?;
    // Entra's documentation spells it `redirect_url`.
    let redirect = params
        .get("redirect_uri")
        .or_else(|| params.get("redirect_url"))
        .ok_or_else(|| Failure::Page("The request names no redirect_uri.".into()))?;
    if !client.redirect_uris.iter().any(|r| r == redirect) {
        return Err(Failure::Page(
            "The redirect_uri is not registered for this client.".into(),
        ));
    }
    Ok((client, redirect.to_string()))
}

fn is_pkce_challenge(s: &str) -> bool {
    (43..=MAX_CODE_CHALLENGE).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// `GET|POST /oidc/authorize`.
pub async fn authorize<S, F>(
    store: &S,
    fetcher: &F,
    env: &Env<'_>,
    resume: &(dyn Fn(&str) -> String + Sync),
    params: &Params,
) -> Result<Next, Failure>
where
    S: OidcStore + PlanStore + Directory,
    F: JwksFetcher,
{
    let (client, redirect_uri) = client_and_redirect(store, params).await?;
    let state = params.get("state").map(str::to_string);
    let back = |error: &str, description: &str| {
        Next::Back(Answer::error(
            client.profile,
            &redirect_uri,
            error,
            description,
            state.as_deref(),
        ))
    };
    let scopes = params.get("scope").unwrap_or("");
    if !scopes.split(' ').any(|s| s == "openid") {
        return Ok(back("invalid_scope", "The scope must contain openid."));
    }
    let now = env.clock.now();
    let mut request = AuthRequest {
        client: client.id.clone(),
        profile: client.profile,
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        nonce: params.get("nonce").map(str::to_string),
        code_challenge: None,
        login_hint: params.get("login_hint").map(str::to_string),
        hint_sub: None,
        hint_username: None,
        hint_email: None,
        acr: None,
        refused: None,
    };
    match client.profile {
        Profile::Code => {
            if params.get("response_type") != Some("code") {
                return Ok(back(
                    "unsupported_response_type",
                    "This client uses the authorization code flow (response_type=code).",
                ));
            }
            if params.get("response_mode").is_some_and(|m| m != "query") {
                return Ok(back(
                    "invalid_request",
                    "This client's response_mode is query.",
                ));
            }
            let challenge = params
                .get("code_challenge")
                .filter(|c| is_pkce_challenge(c));
            if params.get("code_challenge_method") != Some("S256") || challenge.is_none() {
                return Ok(back(
                    "invalid_request",
                    "PKCE is required: code_challenge with code_challenge_method=S256.",
                ));
            }
            request.code_challenge = challenge.map(str::to_string);
        }
        Profile::EntraEam => {
            if params.get("response_type") != Some("id_token")
                || params
                    .get("response_mode")
                    .is_some_and(|m| m != "form_post")
            {
                return Ok(back(
                    "unsupported_response_type",
                    "This client uses response_type=id_token with response_mode=form_post.",
                ));
            }
            let Some(hint) = params.get("id_token_hint") else {
                return Ok(back(
                    "access_denied",
                    "The request carries no id_token_hint.",
                ));
            };
            match verify_hint(&client, hint, now, fetcher).await {
                Ok(hint) => {
                    request.hint_sub = Some(hint.sub);
                    request.hint_username = hint.preferred_username;
                    request.hint_email = hint.email;
                }
                Err(why) => return Ok(back("access_denied", &why)),
            }
            request.acr = match acr_from_claims(params.get("claims")) {
                Ok(acr) => acr,
                Err(why) => return Ok(back("invalid_request", &why)),
            };
        }
    }
    let plan = new_plan(store, env, resume, &client, request, now)
        .await
        .map_err(Failure::Core)?;
    Ok(Next::Page(plan))
}

/// The plan that runs `client`'s stage for `request`: it belongs to no relying party (its
/// owner is the provider, so `GET /v1/plans/{plan}` answers 404 to every caller), and passes or
/// denies to the provider's resume route.
async fn new_plan<S: PlanStore + Directory>(
    store: &S,
    env: &Env<'_>,
    resume: &(dyn Fn(&str) -> String + Sync),
    client: &OidcClient,
    request: AuthRequest,
    now: UnixTime,
) -> Result<String, CoreError> {
    let stage = store
        .get_stage(&client.stage)
        .await?
        .ok_or_else(|| CoreError::Unavailable("The client's stage does not exist.".into()))?;
    let connector = store
        .get_connector(&stage.connector)
        .await?
        .ok_or_else(|| CoreError::Unavailable("The stage's connector does not exist.".into()))?;
    // `oidc_<code>_<random>` with regions: the plan's home is the region that made it.
    let id = format!(
        "{OIDC_PLAN_PREFIX}{}",
        env.settings.regions.new_plan_id(env.rng, false)
    );
    let redirect = resume(&id);
    let plan = Plan {
        owner: Some(OIDC_PLAN_OWNER.to_string()),
        oidc: Some(request),
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
    Ok(plan.id)
}
