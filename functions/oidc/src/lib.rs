//! The OpenID provider (the device step): discovery, its keys, the authorization endpoint and
//! the browser's return from the hosted page, the token endpoint and `userinfo`. Thin: each
//! route parses its request and calls one `endpoint_core::oidc` operation.

pub mod fetch;
pub mod pages;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use endpoint_core::edge::routes::{self, OidcRoute};
use endpoint_core::edge::{self, error_class, Base};
use endpoint_core::edge::{Answer, Label, Reply};
use endpoint_core::oidc::authorize::{authorize, Next};
use endpoint_core::oidc::id_token::IdKeys;
use endpoint_core::oidc::keys::{discovery, provider_jwks, DiscoveryPaths};
use endpoint_core::oidc::params::{ParamError, Params};
use endpoint_core::oidc::resume::{resume, Resumed};
use endpoint_core::oidc::token::{token, userinfo, TokenError};
use endpoint_core::oidc::{Answer as Back, Failure};
use endpoint_core::ports::{ChallengeSigner, Clock, DeviceStore, Directory, JwksFetcher};
use endpoint_core::ports::{OidcStore, PlanStore};
use endpoint_core::CoreError;
use lambda_http::{Request, RequestExt};
use serde_json::json;

const PATHS: DiscoveryPaths = DiscoveryPaths {
    authorize: routes::OIDC_AUTHORIZE_GET.template,
    token: routes::OIDC_TOKEN.template,
    userinfo: routes::OIDC_USERINFO_GET.template,
    jwks: routes::OIDC_JWKS.template,
};

pub struct App<S, K, F> {
    pub base: Base,
    pub store: S,
    pub signer: K,
    pub fetcher: F,
    keys: IdKeys,
    /// The JWKS once built (the RSA key's certificate costs one KMS `Sign` per instance).
    jwks: tokio::sync::OnceCell<serde_json::Value>,
}

/// A core error on a browser route: an HTML page with the error table's status.
fn page_failed(e: &CoreError) -> Answer {
    let class = error_class(e);
    if class.status >= 500 {
        tracing::warn!(label = class.label.as_str(), detail = %e, "request failed");
    }
    (pages::error_page(class.status, &e.to_string()), class.label)
}

fn failure(f: Failure) -> Answer {
    match f {
        Failure::Page(why) => (pages::error_page(400, &why), Label::BadRequest),
        Failure::Core(e) => page_failed(&e),
    }
}

fn back(answer: Back) -> Answer {
    match answer {
        Back::Redirect(url) => (pages::see_other(&url), Label::Oidc),
        Back::FormPost { action, fields } => (pages::form_post(&action, &fields), Label::Oidc),
    }
}

fn param_failure(e: ParamError) -> Answer {
    (pages::error_page(400, &e.to_string()), Label::BadRequest)
}

/// The form body of a request, or nothing for another content type.
fn form_body(req: &Request) -> Result<Params, Answer> {
    let body = edge::body(req).map_err(|e| page_failed(&e))?;
    let form = edge::header(req, "content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Ok(Params::default());
    }
    let text = std::str::from_utf8(body).map_err(|_| param_failure(ParamError::Malformed))?;
    Params::parse(text).map_err(param_failure)
}

/// The query's parameters (every value: a repeated parameter is refused).
fn query_params(req: &Request) -> Result<Params, ParamError> {
    if let Some(q) = req.uri().query() {
        return Params::parse(q);
    }
    match req.query_string_parameters_ref() {
        Some(map) => Params::from_pairs(map.iter().map(|(k, v)| (k.to_string(), v.to_string()))),
        None => Ok(Params::default()),
    }
}

/// `Authorization: Basic` as RFC 6749 2.3.1 writes it (each part form-urlencoded).
fn basic_credentials(req: &Request) -> Option<(String, String)> {
    let value = edge::header(req, "authorization")?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    if encoded.len() > 4096 {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| -> String {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

fn bearer(req: &Request) -> Option<&str> {
    let value = edge::header(req, "authorization")?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
}

impl<S, K, F> App<S, K, F>
where
    S: OidcStore + PlanStore + Directory + DeviceStore,
    K: ChallengeSigner,
    F: JwksFetcher,
{
    pub fn new(base: Base, store: S, signer: K, fetcher: F) -> Self {
        let keys = IdKeys {
            rsa: base.config.oidc_rsa_key.clone(),
            ec: base.config.oidc_ec_key.clone(),
        };
        App {
            base,
            store,
            signer,
            fetcher,
            keys,
            jwks: tokio::sync::OnceCell::new(),
        }
    }

    pub async fn handle(&self, req: Request) -> Answer {
        let (route, v) = match edge::route::<OidcRoute>(&req) {
            Ok(route) => route,
            Err(reply) => return *reply,
        };
        let issuer = edge::public_base_url(&self.base.config, &req).unwrap_or_default();
        let caller = edge::caller(&req);
        let env = self.base.env(&caller);
        match route {
            OidcRoute::OidcDiscovery => (
                pages::json(200, &discovery(&issuer, &PATHS), vec![]),
                Label::Oidc,
            ),
            OidcRoute::OidcJwks => {
                let jwks = self
                    .jwks
                    .get_or_try_init(|| provider_jwks(&self.signer, &self.keys))
                    .await;
                match jwks {
                    Ok(j) => (Reply::ok(j.clone()), Label::Jwks),
                    Err(e) => edge::failed(&e),
                }
            }
            OidcRoute::AuthorizeGet | OidcRoute::AuthorizePost => {
                let params = if route == OidcRoute::AuthorizeGet {
                    query_params(&req).map_err(param_failure)
                } else {
                    form_body(&req)
                };
                let params = match params {
                    Ok(p) => p,
                    Err(answer) => return answer,
                };
                let resume_url =
                    |plan: &str| format!("{issuer}{}", routes::OIDC_RESUME.path(&[plan]));
                match authorize(&self.store, &self.fetcher, &env, &resume_url, &params).await {
                    Ok(Next::Page(plan)) => (
                        pages::see_other(&format!("{issuer}{}", routes::STAGE_PAGE.path(&[&plan]))),
                        Label::Oidc,
                    ),
                    Ok(Next::Back(answer)) => back(answer),
                    Err(f) => failure(f),
                }
            }
            OidcRoute::Resume => {
                // Another region's plan: resumed at its home region (only it reads the plan).
                if let Err(answer) = edge::at_home(&self.base.config, &req, v[0]) {
                    return *answer;
                }
                match resume(&self.store, &self.signer, &self.keys, &env, &issuer, v[0]).await {
                    Ok(Resumed::Page(plan)) => (
                        pages::see_other(&format!("{issuer}{}", routes::STAGE_PAGE.path(&[&plan]))),
                        Label::Oidc,
                    ),
                    Ok(Resumed::Back(answer)) => back(answer),
                    Err(f) => failure(f),
                }
            }
            OidcRoute::Token => self.token(&req, &issuer, &env).await,
            OidcRoute::UserinfoGet | OidcRoute::UserinfoPost => {
                let now = self.base.clock.now();
                match userinfo(&self.store, now, bearer(&req)).await {
                    Ok(Some(body)) => (pages::json(200, &body, vec![]), Label::Oidc),
                    Ok(None) => (
                        pages::json(
                            401,
                            &json!({"error": "invalid_token", "error_description": "The access token is invalid or expired."}),
                            vec![("www-authenticate", "Bearer error=\"invalid_token\"".into())],
                        ),
                        Label::Unauthorized,
                    ),
                    Err(e) => edge::failed(&e),
                }
            }
        }
    }

    async fn token(
        &self,
        req: &Request,
        issuer: &str,
        env: &endpoint_core::settings::Env<'_>,
    ) -> Answer {
        let params = match form_body(req) {
            Ok(p) => p,
            Err(_) => {
                return (
                    pages::json(
                        400,
                        &json!({"error": "invalid_request", "error_description": "The request is not a valid form."}),
                        vec![],
                    ),
                    Label::BadRequest,
                )
            }
        };
        let basic = basic_credentials(req);
        let basic_ref = basic.as_ref().map(|(a, b)| (a.as_str(), b.as_str()));
        let endpoint = format!("{issuer}{}", routes::OIDC_TOKEN.template);
        let no_store = vec![("pragma", "no-cache".to_string())];
        match token(
            &self.store,
            &self.signer,
            &self.fetcher,
            &self.keys,
            env,
            issuer,
            &endpoint,
            basic_ref,
            &params,
        )
        .await
        {
            Ok(body) => (pages::json(200, &body, no_store), Label::Oidc),
            Err(TokenError::OAuth {
                status,
                error,
                description,
            }) => {
                let mut headers = no_store;
                if status == 401 {
                    headers.push(("www-authenticate", "Basic realm=\"oidc\"".into()));
                }
                let label = if status == 401 {
                    Label::Unauthorized
                } else {
                    Label::BadRequest
                };
                (
                    pages::json(
                        status,
                        &json!({"error": error, "error_description": description}),
                        headers,
                    ),
                    label,
                )
            }
            // A code another region issued: redeemed there only (the domain's decision).
            Err(TokenError::OtherRegion { region, base_url }) => {
                edge::to_region(req, &base_url, &region)
            }
            Err(TokenError::Core(e)) => edge::failed(&e),
        }
    }
}
