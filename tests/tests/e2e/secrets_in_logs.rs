//! No secret reaches the logs: after a full enroll / check-in / login / interactive-auth run,
//! the functions' log (every JSON line `cargo lambda watch` captured) contains no enrollment
//! token key, device token key, DTH value, challenge or response JWT of that run.

use endpoint_core::edge::routes;
use endpoint_core::model::StageMode;
use endpoint_core::protocol::device_token_hash;
use endpoint_e2e::{now, redirect, Stack};
use serde_json::json;

/// Interactive authentication with the device token's hash (DTH); answers the DTH value.
fn interactive_auth(s: &Stack, auth: &str, device_token: &str) -> String {
    let (_, ia) = s
        .http
        .post(
            routes::AUTH_IA.template,
            &[("authorization", auth)],
            &json!({}),
        )
        .unwrap();
    let path = ia["url"]
        .as_str()
        .unwrap()
        .trim_start_matches(&s.api)
        .to_string();
    let dth = device_token_hash(device_token);
    let (_, out) = s
        .http
        .get(&path, &[("X-Authentik-Platform-Auth-DTH", &dth)])
        .unwrap();
    assert_eq!(out["component"], "xak-flow-redirect");

    dth
}

/// A sign-in through the OpenID provider over HTTP (authorize, the device step, the return with
/// a code, the token endpoint, userinfo); answers what must never be logged.
async fn oidc_sign_in(
    s: &Stack,
    stage: &str,
    device: &endpoint_agent::State,
) -> Vec<(&'static str, String)> {
    use endpoint_core::model::{ClientAuth, IdTokenAlg, Profile};
    use endpoint_core::oidc::clients::{create_client, NewClient};
    use endpoint_core::ports::{SystemClock, SystemRandom};
    use sha2::Digest;
    let callback = "http://127.0.0.1:8765/callback";
    let (client, secret) = create_client(
        &s.store,
        &SystemClock,
        &SystemRandom,
        NewClient {
            name: "secrets".into(),
            profile: Profile::Code,
            stage: stage.into(),
            redirect_uris: vec![callback.into()],
            auth: ClientAuth::ClientSecretPost,
            jwks: None,
            alg: IdTokenAlg::RS256,
            match_owner: None,
            entra: None,
        },
    )
    .await
    .unwrap();
    let secret = secret.unwrap().expose().to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into();
    let verifier = "secret-verifier-0123456789-0123456789-0123456789";
    let challenge = endpoint_core::protocol::b64url(&sha2::Sha256::digest(verifier.as_bytes()));
    let state = "state-that-must-not-be-logged";
    let url = format!(
        "{}/oidc/authorize?client_id={}&redirect_uri={}&response_type=code&scope=openid&state={state}&nonce=nonce-not-logged&code_challenge={challenge}&code_challenge_method=S256",
        s.api, client.id, "http%3A%2F%2F127.0.0.1%3A8765%2Fcallback"
    );
    let r = agent.get(&url).call().unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let plan = location
        .split("/v1/plans/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let jws = s.challenge(&plan);
    let response = endpoint_agent::respond(device, &jws, now()).unwrap();
    assert_eq!(s.post_executor(&plan, Some(&response)).0, 200);
    let r = agent
        .get(&format!("{}/oidc/plans/{plan}/resume", s.api))
        .call()
        .unwrap();
    let back = r.headers()["location"].to_str().unwrap().to_string();
    let code = back
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    let mut r = agent
        .post(&format!("{}/oidc/token", s.api))
        .send_form([
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", callback),
            ("code_verifier", verifier),
            ("client_id", client.id.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let tokens: serde_json::Value =
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let r = agent
        .get(&format!("{}/oidc/userinfo", s.api))
        .header("authorization", &format!("Bearer {access}"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    vec![
        ("client secret", secret),
        ("plan id", plan),
        ("code", code),
        ("state", state.to_string()),
        ("code verifier", verifier.to_string()),
        ("ID token", tokens["id_token"].as_str().unwrap().to_string()),
        ("access token", access),
    ]
}

/// Every request line is also a CloudWatch embedded-metric record (the stack's metrics).
fn request_lines_are_metrics(log: &str) {
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.contains("\"message\":\"request\""))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(lines.len() >= 6, "{}", lines.len());
    for line in &lines {
        assert_eq!(line["Requests"], 1, "{line}");
        assert!(line["outcome"].is_string() && line["route"].is_string());
        assert!(line["_aws"]["CloudWatchMetrics"][0]["Metrics"].is_array());
    }
    for outcome in ["challenge", "invalid_response", "passed"] {
        assert!(
            lines.iter().any(|l| l["outcome"] == outcome),
            "no {outcome} outcome among the request lines"
        );
    }
}

#[tokio::test]
async fn no_secret_in_any_log_line() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    s.set_interactive_stage(&setup.connector, &setup.stage)
        .await;

    let enrollment = s.enrollment_token(&setup.connector, None).await;
    let serial = format!("E2E-SECRETS-{}", now());
    let device = endpoint_agent::enroll(&s.api, &enrollment, &serial, "host").unwrap();
    let auth = format!("Bearer+agent {}", device.token);
    let (status, _) = s
        .http
        .post(
            routes::CHECK_IN.template,
            &[("authorization", &auth)],
            &json!({"hardware": {"serial": serial}}),
        )
        .unwrap();
    assert_eq!(status, 204);

    let plan = s.create_plan(&setup.stage);
    let challenge = s.challenge(&plan);
    let response = endpoint_agent::respond(&device, &challenge, now()).unwrap();
    let (_, bad) = s.post_executor(&plan, Some(&format!("{response}x")));
    let retry = bad["challenge"].as_str().unwrap().to_string();
    let response2 = endpoint_agent::respond(&device, &retry, now()).unwrap();
    assert_eq!(s.post_executor(&plan, Some(&response2)).1, redirect());

    let dth = interactive_auth(&s, &auth, &device.token);
    let oidc_secrets = oidc_sign_in(&s, &setup.stage, &device).await;

    std::thread::sleep(std::time::Duration::from_millis(300));
    let log =
        std::fs::read_to_string(std::env::var("STACK_WATCH_LOG").expect("run through make test"))
            .unwrap();
    assert!(
        log.contains("\"message\":\"request\""),
        "the log holds the request lines"
    );
    let secrets = [
        ("enrollment token key", enrollment.as_str()),
        ("device token key", device.token.as_str()),
        ("DTH value", dth.as_str()),
        ("challenge", challenge.as_str()),
        ("retry challenge", retry.as_str()),
        ("response JWT", response.as_str()),
        ("second response JWT", response2.as_str()),
        ("plan id", plan.as_str()),
    ];
    for (what, secret) in secrets {
        assert!(
            !log.contains(secret),
            "the {what} appears in the function log"
        );
    }
    for (what, secret) in &oidc_secrets {
        assert!(
            !log.contains(secret.as_str()),
            "the OpenID provider's {what} appears in the function log"
        );
    }
    // Not even a recognisable piece of a JWT (its base64url header) of ours.
    assert!(!log.contains(response.split('.').nth(1).unwrap()));

    request_lines_are_metrics(&log);
}
