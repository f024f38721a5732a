//! Issue 32 in the domain: the OpenID provider's rules over the in-memory store and the local
//! signer (the same flow against DynamoDB and KMS on moto: `tests/aws`, `oidc_store`; with real
//! clients over HTTP: `tests/oidc`).

use endpoint_core::model::{ClientAuth, IdTokenAlg, Profile, StageMode};
use endpoint_core::oidc::authorize::{authorize, Next};
use endpoint_core::oidc::clients::{create_client, NewClient};
use endpoint_core::oidc::id_token::IdKeys;
use endpoint_core::oidc::params::Params;
use endpoint_core::oidc::resume::{resume, Resumed};
use endpoint_core::oidc::token::{token, userinfo, TokenError};
use endpoint_core::oidc::{Answer, Failure, CODE_LIFETIME, OIDC_PLAN_OWNER};
use endpoint_core::ports::{ChallengeSigner, Clock, JwksFetcher};
use endpoint_core::protocol::b64url;
use endpoint_core::protocol::keys::KeySpec;
use endpoint_core::CoreError;
use jsonwebtoken::jwk::JwkSet;
use sha2::{Digest, Sha256};

use crate::common::{add_key, Fx, KEY};

pub(crate) const ISSUER: &str = "https://idp.example";
pub(crate) const CALLBACK: &str = "https://rp.example/callback";
pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// No URL is registered in these tests: a fetch is a test failure.
pub(crate) struct NoFetch;

impl JwksFetcher for NoFetch {
    async fn fetch(&self, _url: &str) -> Result<JwkSet, CoreError> {
        Err(CoreError::Unavailable(
            "no fetches in the domain tests".into(),
        ))
    }
}

pub(crate) fn keys() -> IdKeys {
    IdKeys {
        rsa: Some("oidc-rsa".into()),
        ec: Some("oidc-ec".into()),
    }
}

pub(crate) async fn world() -> (Fx, String, String, String) {
    let mut fx = Fx::new();
    add_key(&mut fx.signer, "oidc-rsa", KeySpec::Rsa2048);
    fx.signer.generate("oidc-ec", KeySpec::EccNistP256).unwrap();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let (client, secret) = create_client(
        &fx.store,
        &fx.clock,
        &fx.rng,
        NewClient {
            name: "okta".into(),
            profile: Profile::Code,
            stage: s.id.clone(),
            redirect_uris: vec![CALLBACK.into()],
            auth: ClientAuth::ClientSecretPost,
            jwks: None,
            alg: IdTokenAlg::RS256,
            match_owner: None,
            entra: None,
        },
    )
    .await
    .unwrap();
    (fx, c.id, client.id, secret.unwrap().expose().to_string())
}

fn challenge_of(verifier: &str) -> String {
    b64url(&Sha256::digest(verifier.as_bytes()))
}

fn authorize_params(client: &str, redirect: &str) -> Params {
    Params::parse(&format!(
        "client_id={client}&redirect_uri={}&response_type=code&scope=openid%20profile&state=st&nonce=nn&code_challenge={}&code_challenge_method=S256",
        urlencode(redirect),
        challenge_of(VERIFIER)
    ))
    .unwrap()
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn resume_url(plan: &str) -> String {
    format!("{ISSUER}/oidc/plans/{plan}/resume")
}

/// Authorizes, passes the plan with the enrolled device, resumes: the code.
pub(crate) async fn code(fx: &Fx, connector: &str, client: &str) -> String {
    let plan = passed_plan(fx, connector, client).await;
    let back = resume(&fx.store, &fx.signer, &keys(), &fx.env(), ISSUER, &plan)
        .await
        .unwrap();
    // The answer goes back once.
    assert!(matches!(
        resume(&fx.store, &fx.signer, &keys(), &fx.env(), ISSUER, &plan).await,
        Err(Failure::Page(_))
    ));
    let Resumed::Back(Answer::Redirect(url)) = back else {
        panic!("expected a redirect, got {back:?}")
    };
    let url = url::Url::parse(&url).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "st");
    q["code"].clone()
}

/// Authorizes and passes the plan with the enrolled device: the plan, not returned yet.
pub(crate) async fn passed_plan(fx: &Fx, connector: &str, client: &str) -> String {
    let key = fx.enroll(connector, "SERIAL-1").await;
    let next = authorize(
        &fx.store,
        &NoFetch,
        &fx.env(),
        &resume_url,
        &authorize_params(client, CALLBACK),
    )
    .await
    .unwrap();
    let Next::Page(plan) = next else {
        panic!("expected the hosted page, got {next:?}")
    };
    let stored = fx.plan_state(&plan);
    assert_eq!(stored.owner.as_deref(), Some(OIDC_PLAN_OWNER));
    assert_eq!(stored.redirect, resume_url(&plan));
    let jws = fx.challenge(&plan).await;
    let response = fx.respond("SERIAL-1", &key, &jws);
    fx.post(&plan, Some(&response)).await.unwrap();
    plan
}

pub(crate) fn token_params(client: &str, secret: &str, code: &str, verifier: &str) -> Params {
    Params::parse(&format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={verifier}&client_id={client}&client_secret={secret}",
        urlencode(CALLBACK)
    ))
    .unwrap()
}

pub(crate) async fn redeem(fx: &Fx, params: &Params) -> Result<serde_json::Value, TokenError> {
    token(
        &fx.store,
        &fx.signer,
        &NoFetch,
        &keys(),
        &fx.env(),
        ISSUER,
        &format!("{ISSUER}/oidc/token"),
        None,
        params,
    )
    .await
}

pub(crate) fn grant_error(r: Result<serde_json::Value, TokenError>) -> &'static str {
    match r {
        Err(TokenError::OAuth { error, .. }) => error,
        other => panic!("expected an OAuth error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_code_flow_signs_an_id_token_of_the_device_and_its_code_is_single_use() {
    let (fx, connector, client, secret) = world().await;
    let code = code(&fx, &connector, &client).await;
    let params = token_params(&client, &secret, &code, VERIFIER);
    let body = redeem(&fx, &params).await.unwrap();
    let id_token = body["id_token"].as_str().unwrap();
    // Verified with jsonwebtoken against the RSA key's public JWK.
    let ours = fx.signer.describe("oidc-rsa").await.unwrap().jwk;
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(serde_json::to_value(ours).unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[&client]);
    v.set_issuer(&[ISSUER]);
    v.validate_exp = false;
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        id_token,
        &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["nonce"], "nn");
    assert_eq!(claims["amr"], serde_json::json!(["hwk"]));
    assert_eq!(claims["acr"], "urn:endpoint-stage:device");
    assert_eq!(claims["device"]["serial"], "SERIAL-1");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    // userinfo with the access token, for five minutes.
    let access = body["access_token"].as_str().unwrap();
    let now = fx.clock.now();
    let info = userinfo(&fx.store, now, Some(access))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info["sub"], claims["sub"]);
    assert_eq!(
        userinfo(&fx.store, now + 300, Some(access)).await.unwrap(),
        None
    );
    // The code again: refused.
    assert_eq!(grant_error(redeem(&fx, &params).await), "invalid_grant");
}

#[tokio::test]
async fn a_code_older_than_a_minute_is_refused() {
    let (fx, connector, client, secret) = world().await;
    let old = code(&fx, &connector, &client).await;
    fx.clock.advance(CODE_LIFETIME);
    let params = token_params(&client, &secret, &old, VERIFIER);
    assert_eq!(grant_error(redeem(&fx, &params).await), "invalid_grant");
}

#[tokio::test]
async fn a_wrong_verifier_or_secret_is_refused() {
    let (fx, connector, client, secret) = world().await;
    let code = code(&fx, &connector, &client).await;
    let wrong_secret = token_params(&client, &"x".repeat(43), &code, VERIFIER);
    assert_eq!(
        grant_error(redeem(&fx, &wrong_secret).await),
        "invalid_client"
    );
    let wrong_verifier = token_params(&client, &secret, &code, &"a".repeat(43));
    assert_eq!(
        grant_error(redeem(&fx, &wrong_verifier).await),
        "invalid_grant"
    );
    // The wrong verifier spent the code.
    let right = token_params(&client, &secret, &code, VERIFIER);
    assert_eq!(grant_error(redeem(&fx, &right).await), "invalid_grant");
}

#[tokio::test]
async fn an_unregistered_redirect_uri_or_client_is_an_error_page() {
    let (fx, _, client, _) = world().await;
    for (c, r) in [
        (client.as_str(), "https://rp.example/callback/"),
        (client.as_str(), "https://evil.example/callback"),
        ("unknown", CALLBACK),
    ] {
        let got = authorize(
            &fx.store,
            &NoFetch,
            &fx.env(),
            &resume_url,
            &authorize_params(c, r),
        )
        .await;
        assert!(matches!(got, Err(Failure::Page(_))), "{c} {r}: {got:?}");
    }
    assert_eq!(fx.store.plan_count(), 0);
}

#[tokio::test]
async fn a_denied_plan_goes_back_as_access_denied_with_its_sentence() {
    let (fx, _, client, _) = world().await;
    let Next::Page(plan) = authorize(
        &fx.store,
        &NoFetch,
        &fx.env(),
        &resume_url,
        &authorize_params(&client, CALLBACK),
    )
    .await
    .unwrap() else {
        panic!("expected the page")
    };
    let _ = fx.challenge(&plan).await;
    fx.post(&plan, None).await.unwrap();
    let back = resume(&fx.store, &fx.signer, &keys(), &fx.env(), ISSUER, &plan)
        .await
        .unwrap();
    let Resumed::Back(Answer::Redirect(url)) = back else {
        panic!("{back:?}")
    };
    let url = url::Url::parse(&url).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["error_description"], "Invalid challenge response");
    assert_eq!(q["state"], "st");
}
