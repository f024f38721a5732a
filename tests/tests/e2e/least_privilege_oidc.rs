//! The oidc function's part of `least_privilege`: every route of the OpenID provider in process
//! with recording clients (discovery, keys, authorize, the return with a code, the token
//! endpoint with a secret and with a client assertion, userinfo, a client that matches owners),
//! the device part of each plan passed over HTTP by the stack's own functions.

use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::adapters::kms::KmsSigner;
use endpoint_core::edge::Base;
use endpoint_core::model::{ClientAuth, IdTokenAlg, OwnerClaim, Profile};
use endpoint_core::oidc::clients::{create_client, NewClient};
use endpoint_core::ports::{JwksFetcher, SystemClock, SystemRandom};
use endpoint_core::protocol::b64url;
use endpoint_core::CoreError;
use endpoint_e2e::{now, Setup, Stack};
use jsonwebtoken::jwk::JwkSet;
use lambda_http::{Body, Request};
use sha2::{Digest, Sha256};

const CALLBACK: &str = "http://127.0.0.1:8765/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// No client of this test registers a JWKS URL.
pub struct NoFetch;

impl JwksFetcher for NoFetch {
    async fn fetch(&self, _url: &str) -> Result<JwkSet, CoreError> {
        Err(CoreError::Unavailable("no JWKS URL in this test".into()))
    }
}

fn form(method: &str, path: &str, body: Option<String>, auth: Option<&str>) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:9000")
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(a) = auth {
        builder = builder.header("authorization", a);
    }
    builder.body(body.map_or(Body::Empty, Body::Text)).unwrap()
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn header<'a>(reply: &'a endpoint_core::edge::Reply, name: &str) -> &'a str {
    let doc = reply.document.as_ref().expect("a document reply");
    doc.headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header"))
}

async fn client(
    s: &Stack,
    stage: &str,
    auth: ClientAuth,
    owner: Option<OwnerClaim>,
) -> (String, Option<String>) {
    let (c, secret) = create_client(
        &s.store,
        &SystemClock,
        &SystemRandom,
        NewClient {
            name: "least-privilege".into(),
            profile: Profile::Code,
            stage: stage.into(),
            redirect_uris: vec![CALLBACK.into()],
            auth,
            jwks: None,
            alg: IdTokenAlg::RS256,
            match_owner: owner,
            entra: None,
        },
    )
    .await
    .unwrap();
    (c.id, secret.map(|s| s.expose().to_string()))
}

/// Authorizes for `client` (with a `login_hint`), passes the plan with the device over HTTP,
/// and answers the browser's return.
async fn authorized(
    app: &fn_oidc::App<DynamoStore, KmsSigner, NoFetch>,
    s: &Stack,
    client: &str,
    (serial, device_key): (&str, &str),
) -> endpoint_core::edge::Reply {
    let challenge = b64url(&Sha256::digest(VERIFIER.as_bytes()));
    let query = format!(
        "/oidc/authorize?client_id={client}&redirect_uri={}&response_type=code&scope=openid&state=st&code_challenge={challenge}&code_challenge_method=S256&login_hint=ada",
        enc(CALLBACK)
    );
    let (reply, _) = app.handle(form("GET", &query, None, None)).await;
    assert_eq!(reply.status, 303, "{:?}", reply.document);
    let location = header(&reply, "location").to_string();
    let plan = location
        .split("/v1/plans/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_string();
    let jws = s.challenge(&plan);
    let answer = endpoint_core::protocol::response::sign_response(serial, device_key, &jws, now());
    let (status, _) = s.post_executor(&plan, Some(&answer));
    assert_eq!(status, 200);
    let (reply, _) = app
        .handle(form(
            "GET",
            &format!("/oidc/plans/{plan}/resume"),
            None,
            None,
        ))
        .await;
    assert_eq!(reply.status, 303);
    reply
}

/// The oidc function's recorded accesses.
pub async fn oidc_function(s: &Stack, setup: &Setup, device: (&str, &str)) -> Vec<String> {
    let r = crate::least_privilege::recorded().await;
    let app = fn_oidc::App::new(
        Base::from_env().unwrap(),
        r.store.clone(),
        r.signer.clone(),
        NoFetch,
    );
    for path in ["/.well-known/openid-configuration", "/oidc/jwks"] {
        let (reply, _) = app.handle(form("GET", path, None, None)).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    }
    // A code, redeemed with client_secret_basic; userinfo with its access token.
    let (id, secret) = client(s, &setup.stage, ClientAuth::ClientSecretBasic, None).await;
    let reply = authorized(&app, s, &id, device).await;
    let location = url::Url::parse(header(&reply, "location")).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{}", secret.unwrap()))
    );
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
        enc(CALLBACK)
    );
    let (reply, _) = app
        .handle(form("POST", "/oidc/token", Some(body), Some(&basic)))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.document);
    let token: serde_json::Value =
        serde_json::from_str(&reply.document.as_ref().unwrap().text).unwrap();
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    for method in ["GET", "POST"] {
        let (reply, _) = app
            .handle(form(method, "/oidc/userinfo", None, Some(&bearer)))
            .await;
        assert_eq!(reply.status, 200);
    }
    // A client that matches owners reads the device's partition.
    let (owners, _) = client(
        s,
        &setup.stage,
        ClientAuth::ClientSecretPost,
        Some(OwnerClaim::PreferredUsername),
    )
    .await;
    let reply = authorized(&app, s, &owners, device).await;
    assert!(header(&reply, "location").contains("error=access_denied"));
    crate::least_privilege::accesses(&r)
}
