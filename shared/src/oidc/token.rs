//! The token endpoint (authorization code with PKCE S256; the client authenticated with the one
//! method it was registered with) and `userinfo`.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::CoreError;
use crate::model::{ClientAuth, KeySource, OidcClient, UnixTime};
use crate::ports::{random_alnum, ChallengeSigner, GrantKind, JwksFetcher, OidcStore};
use crate::protocol::b64url;
use crate::region::Home;
use crate::settings::Env;

use super::id_token::{sign_id_token, IdKeys};
use super::params::Params;
use super::{secret_hash, ACCESS_TOKEN_LIFETIME};

/// The client assertion type of RFC 7523.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The furthest in the future a client assertion may expire (its `jti` is kept that long): an
/// hour, what Okta allows and what Authlib signs by default.
pub const MAX_ASSERTION_LIFETIME: i64 = 3600;
/// The most keys of a client's JWKS tried for an assertion without a `kid`.
pub const MAX_CLIENT_KEYS: usize = 10;

/// An OAuth error of the token or userinfo endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// `{"error", "error_description"}` with this status (401 for `invalid_client`).
    OAuth {
        status: u16,
        error: &'static str,
        description: String,
    },
    /// The code was issued by another region (`region.rs`): only that region redeems it, so
    /// this one neither reads nor writes it. The edge answers `307` to the same path at
    /// `base_url`, the code's home region (`edge::home`).
    OtherRegion {
        region: String,
        base_url: String,
    },
    Core(CoreError),
}

impl TokenError {
    fn invalid_client(why: &str) -> Self {
        TokenError::OAuth {
            status: 401,
            error: "invalid_client",
            description: why.to_string(),
        }
    }
    fn bad(error: &'static str, why: &str) -> Self {
        TokenError::OAuth {
            status: 400,
            error,
            description: why.to_string(),
        }
    }
}

impl From<CoreError> for TokenError {
    fn from(e: CoreError) -> Self {
        TokenError::Core(e)
    }
}

impl From<crate::error::StoreError> for TokenError {
    fn from(e: crate::error::StoreError) -> Self {
        TokenError::Core(e.into())
    }
}

/// Whether `secret` hashes to `sha256_hex`, compared in constant time.
fn secret_matches(secret: &str, sha256_hex: Option<&str>) -> bool {
    let Some(want) = sha256_hex else {
        return false;
    };
    secret_hash(secret).as_bytes().ct_eq(want.as_bytes()).into()
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    exp: UnixTime,
    jti: String,
}

/// The client of a token request, authenticated by the one method it was registered with.
async fn authenticate<S: OidcStore, F: JwksFetcher>(
    store: &S,
    fetcher: &F,
    token_endpoint: &str,
    basic: Option<(&str, &str)>,
    params: &Params,
    now: UnixTime,
) -> Result<OidcClient, TokenError> {
    let assertion = params.get("client_assertion");
    let (id, method) = match (basic, assertion, params.get("client_secret")) {
        (Some((id, _)), None, None) => (id.to_string(), ClientAuth::ClientSecretBasic),
        (None, Some(a), None) => {
            if params.get("client_assertion_type") != Some(JWT_BEARER) {
                return Err(TokenError::invalid_client("Unknown client_assertion_type."));
            }
            // The client is named by client_id, else by the assertion's (unverified) `sub`,
            // which the verification below then checks.
            let id = match params.get("client_id") {
                Some(id) => id.to_string(),
                None => unverified_sub(a).ok_or_else(|| {
                    TokenError::invalid_client("The client assertion names no client.")
                })?,
            };
            (id, ClientAuth::PrivateKeyJwt)
        }
        (None, None, Some(_)) => match params.get("client_id") {
            Some(id) => (id.to_string(), ClientAuth::ClientSecretPost),
            None => return Err(TokenError::invalid_client("No client_id.")),
        },
        (None, None, None) => return Err(TokenError::invalid_client("No client authentication.")),
        _ => {
            return Err(TokenError::invalid_client(
                "More than one client authentication method.",
            ))
        }
    };
    let client = store
        .get_client(&id)
        .await?
        .ok_or_else(|| TokenError::invalid_client("Client authentication failed."))?;
    let failed = || TokenError::invalid_client("Client authentication failed.");
    if client.auth != method {
        return Err(failed());
    }
    match method {
        ClientAuth::ClientSecretBasic => {
            let secret = basic.map(|(_, s)| s).unwrap_or("");
            if !secret_matches(secret, client.secret_sha256.as_deref()) {
                return Err(failed());
            }
        }
        ClientAuth::ClientSecretPost => {
            let secret = params.get("client_secret").unwrap_or("");
            if !secret_matches(secret, client.secret_sha256.as_deref()) {
                return Err(failed());
            }
        }
        ClientAuth::PrivateKeyJwt => {
            let a = assertion.unwrap_or("");
            let keys = client_keys(&client, fetcher).await?;
            let claims =
                verify_assertion(a, &keys, &client.id, token_endpoint, now).ok_or_else(failed)?;
            if claims.jti.is_empty() || claims.jti.len() > 256 {
                return Err(failed());
            }
            let marker = format!("JTI#{}#{}", client.id, secret_hash(&claims.jti));
            if !store
                .mark_once(&marker, claims.exp.max(now + 1), now)
                .await?
            {
                return Err(TokenError::invalid_client(
                    "The client assertion was used before.",
                ));
            }
        }
    }
    Ok(client)
}

fn unverified_sub(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let bytes = crate::protocol::b64url_decode(payload)?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("sub")?.as_str().map(str::to_string)
}

/// The client's public keys (`private_key_jwt`).
async fn client_keys<F: JwksFetcher>(
    client: &OidcClient,
    fetcher: &F,
) -> Result<JwkSet, TokenError> {
    match &client.jwks {
        Some(KeySource::Inline(text)) => serde_json::from_str(text).map_err(|_| {
            TokenError::Core(CoreError::Unavailable(
                "The client's JWKS cannot be read.".into(),
            ))
        }),
        Some(KeySource::Uri(url)) => Ok(fetcher.fetch(url).await?),
        None => Err(TokenError::invalid_client("Client authentication failed.")),
    }
}

/// The claims of a client assertion, if it is signed by one of `keys` (RS256 or ES256), names
/// the client as `iss` and `sub`, the token endpoint as `aud`, and expires within
/// [`MAX_ASSERTION_LIFETIME`].
fn verify_assertion(
    assertion: &str,
    keys: &JwkSet,
    client_id: &str,
    token_endpoint: &str,
    now: UnixTime,
) -> Option<AssertionClaims> {
    let header = decode_header(assertion).ok()?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
        return None;
    }
    let candidates: Vec<_> = keys
        .keys
        .iter()
        .filter(|k| header.kid.is_none() || k.common.key_id == header.kid)
        .take(MAX_CLIENT_KEYS)
        .collect();
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[token_endpoint]);
    validation.set_issuer(&[client_id]);
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    validation.leeway = 30;
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        if let Ok(data) = decode::<AssertionClaims>(assertion, &key, &validation) {
            let c = data.claims;
            let ok =
                c.iss == client_id && c.sub == client_id && c.exp <= now + MAX_ASSERTION_LIFETIME;
            return ok.then_some(c);
        }
    }
    None
}

/// Whether `verifier` is an RFC 7636 code verifier whose S256 challenge is `challenge`.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let derived = b64url(&Sha256::digest(verifier.as_bytes()));
    well_formed && bool::from(derived.as_bytes().ct_eq(challenge.as_bytes()))
}

/// `POST /oidc/token`: the token response's JSON.
#[allow(clippy::too_many_arguments)]
pub async fn token<S, K, F>(
    store: &S,
    signer: &K,
    fetcher: &F,
    keys: &IdKeys,
    env: &Env<'_>,
    issuer: &str,
    token_endpoint: &str,
    basic: Option<(&str, &str)>,
    params: &Params,
) -> Result<Value, TokenError>
where
    S: OidcStore,
    K: ChallengeSigner,
    F: JwksFetcher,
{
    // Another region's code: decided before any read or write (the client's, its assertion's
    // `jti`, the code's), so that region's table alone decides the code's single use.
    if let Some(code) = params.get("code") {
        match env.settings.regions.home_of(code) {
            Home::Here => {}
            Home::Elsewhere {
                code: region,
                base_url: Some(base),
            } => {
                return Err(TokenError::OtherRegion {
                    region: region.to_string(),
                    base_url: base.to_string(),
                })
            }
            // A region this deployment does not know: no code of ours.
            Home::Elsewhere { base_url: None, .. } => {
                return Err(TokenError::bad(
                    "invalid_grant",
                    "The code is invalid, expired or used.",
                ))
            }
        }
    }
    let now = env.clock.now();
    let client = authenticate(store, fetcher, token_endpoint, basic, params, now).await?;
    if params.get("grant_type") != Some("authorization_code") {
        return Err(TokenError::bad(
            "unsupported_grant_type",
            "Only grant_type=authorization_code is supported.",
        ));
    }
    let code = params
        .get("code")
        .ok_or_else(|| TokenError::bad("invalid_request", "No code."))?;
    let invalid = || TokenError::bad("invalid_grant", "The code is invalid, expired or used.");
    // Taken before it is checked: a code offered with a wrong verifier or redirect is spent.
    let grant = store
        .take_grant(GrantKind::Code, &secret_hash(code), now)
        .await?
        .ok_or_else(invalid)?;
    if grant.client != client.id || params.get("redirect_uri") != Some(grant.redirect_uri.as_str())
    {
        return Err(invalid());
    }
    let verified = match (&grant.code_challenge, params.get("code_verifier")) {
        (Some(challenge), Some(verifier)) => pkce_matches(verifier, challenge),
        _ => false,
    };
    if !verified {
        return Err(invalid());
    }
    let id_token = sign_id_token(signer, keys, &client, issuer, &grant, None, now).await?;
    let access = random_alnum(env.rng, 43);
    let mut access_grant = grant.clone();
    access_grant.expires_at = now + ACCESS_TOKEN_LIFETIME;
    access_grant.code_challenge = None;
    store
        .put_grant(GrantKind::AccessToken, &secret_hash(&access), &access_grant)
        .await?;
    Ok(json!({
        "id_token": id_token,
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_LIFETIME,
    }))
}

/// `GET|POST /oidc/userinfo` with a bearer access token: the user's claims, or `None` (401
/// `invalid_token`).
pub async fn userinfo<S: OidcStore>(
    store: &S,
    now: UnixTime,
    access_token: Option<&str>,
) -> Result<Option<Value>, CoreError> {
    let Some(token) = access_token.filter(|t| !t.is_empty() && t.len() <= 256) else {
        return Ok(None);
    };
    let Some(grant) = store
        .read_grant(GrantKind::AccessToken, &secret_hash(token), now)
        .await?
    else {
        return Ok(None);
    };
    let mut body = json!({"sub": grant.sub});
    if let Some(u) = grant.preferred_username {
        body["preferred_username"] = Value::String(u);
    }
    if let Some(e) = grant.email {
        body["email"] = Value::String(e);
    }
    Ok(Some(body))
}
