//! The stage end to end over real HTTP: routes, JSON and status codes of the contract (openapi.yaml).

use endpoint_agent::State;
use endpoint_core::model::{Plan, StageMode, StageSnapshot};
use endpoint_core::ports::PlanStore;
use endpoint_e2e::{denied, is_retry, now, redirect, Stack};
use serde_json::{json, Value};

#[tokio::test]
async fn the_whole_flow() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    let device = s.enrolled(&setup.connector, "E2E-FLOW-1").await;

    // Create the plan (relying party).
    let (status, created) = s
        .http
        .post(
            "/v1/plans",
            &[],
            &json!({"stage": setup.stage, "redirect": "/next"}),
        )
        .unwrap();
    assert_eq!(status, 201);
    let plan = created["plan"].as_str().unwrap().to_string();
    assert_eq!(created["executor"], format!("/v1/plans/{plan}/executor"));
    // The hosted page's absolute URL (PUBLIC_BASE_URL locally).
    assert_eq!(created["page"], format!("{}/v1/plans/{plan}/page", s.api));
    assert!(created["expires_at"].as_i64().unwrap() > now());
    assert!(plan.len() >= 22);
    let read = s.plan(&plan);
    assert_eq!(read["status"], "pending");
    assert_eq!(read["device"], Value::Null);

    // The browser GETs the challenge; it verifies against the public JWKS route.
    let (status, body) = s.get_executor(&plan);
    assert_eq!(status, 200);
    assert_eq!(body["challenge_idle_timeout"], 5);
    let challenge = body["challenge"].as_str().unwrap();
    let (status, jwks) = s
        .http
        .get(
            &format!("/v1/connectors/{}/jwks.json", setup.connector),
            &[],
        )
        .unwrap();
    assert_eq!(status, 200);
    let jwks: endpoint_core::protocol::jwk::Jwks = serde_json::from_value(jwks).unwrap();
    let claims = endpoint_agent::verify_challenge(challenge, &jwks, now()).unwrap();
    assert_eq!(claims.iss, setup.stage);

    // The agent answers; the browser POSTs; the stage passes with the device.
    let response = endpoint_agent::respond(&device, challenge, now()).unwrap();
    let (status, outcome) = s.post_executor(&plan, Some(&response));
    assert_eq!((status, outcome), (200, redirect()));
    let read = s.plan(&plan);
    assert_eq!(read["status"], "passed");
    assert_eq!(
        read["device"],
        json!({"identifier": "E2E-FLOW-1", "name": "host-E2E-FLOW-1"})
    );

    // A second POST of the used response answers the final outcome; nothing changes.
    assert_eq!(s.post_executor(&plan, Some(&response)), (200, redirect()));
    assert_eq!(s.get_executor(&plan), (200, redirect()));
}

/// Response invalid: optional passes without device, required answers a NEW challenge (minted
/// by the challenge function through Lambda Invoke) with response_errors; then a valid one.
fn invalid_then_valid(s: &Stack, stage: &str, device: &State, mode: StageMode) {
    let required = mode == StageMode::Required;
    let plan = s.create_plan(stage);
    let first = s.challenge(&plan);
    let (status, out) = s.post_executor(&plan, Some("not.a.jws"));
    assert_eq!(status, 200);
    if required {
        assert!(is_retry(&out), "{out}");
        assert_ne!(out["challenge"].as_str().unwrap(), first);
        // The new challenge is the pending one: answering it passes.
        let response =
            endpoint_agent::respond(device, out["challenge"].as_str().unwrap(), now()).unwrap();
        assert_eq!(s.post_executor(&plan, Some(&response)).1, redirect());
        assert_eq!(
            s.plan(&plan)["device"]["identifier"],
            device.serial.as_str()
        );
    } else {
        assert_eq!(out, redirect());
        assert_eq!(s.plan(&plan)["device"], Value::Null);
    }

    // Response valid.
    let plan = s.create_plan(stage);
    let ch = s.challenge(&plan);
    let response = endpoint_agent::respond(device, &ch, now()).unwrap();
    assert_eq!(s.post_executor(&plan, Some(&response)).1, redirect());
    assert_eq!(s.plan(&plan)["status"], "passed");
}

/// A disabled connector, and one without a challenge key: optional passes, required denies.
async fn unusable_connectors(s: &Stack, mode: StageMode) {
    let expected = if mode == StageMode::Required {
        denied("Invalid stage configuration")
    } else {
        redirect()
    };
    // (with a key, enabled): disabled, then without a challenge key.
    for (with_key, enabled) in [(true, false), (false, true)] {
        let setup = s.setup(mode, with_key, enabled).await;
        let plan = s.create_plan(&setup.stage);
        assert_eq!(s.get_executor(&plan).1, expected, "{with_key} {enabled}");
    }
}

#[tokio::test]
async fn the_decision_table_in_both_modes() {
    let s = Stack::connect().await;
    for mode in [StageMode::Optional, StageMode::Required] {
        let setup = s.setup(mode, true, true).await;
        let device = s
            .enrolled(&setup.connector, &format!("E2E-TABLE-{}", mode.as_str()))
            .await;
        let required = mode == StageMode::Required;

        // Response null.
        let plan = s.create_plan(&setup.stage);
        s.challenge(&plan);
        let (_, out) = s.post_executor(&plan, None);
        assert_eq!(
            out,
            if required {
                denied("Invalid challenge response")
            } else {
                redirect()
            },
            "{mode:?} null"
        );

        // Response absent (body without the field) and empty.
        let plan = s.create_plan(&setup.stage);
        s.challenge(&plan);
        let (_, out) = s
            .http
            .post(
                &format!("/v1/plans/{plan}/executor"),
                &[],
                &json!({"component": "ak-stage-endpoint-agent"}),
            )
            .unwrap();
        assert_eq!(
            out,
            if required {
                denied("Invalid challenge response")
            } else {
                redirect()
            },
            "{mode:?} absent"
        );

        invalid_then_valid(&s, &setup.stage, &device, mode);
        unusable_connectors(&s, mode).await;
    }
}

#[tokio::test]
async fn a_response_made_for_another_plan_is_invalid() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    let device = s.enrolled(&setup.connector, "E2E-OTHER").await;
    let a = s.create_plan(&setup.stage);
    let b = s.create_plan(&setup.stage);
    s.challenge(&a);
    let ch_b = s.challenge(&b);
    let for_b = endpoint_agent::respond(&device, &ch_b, now()).unwrap();
    let (_, out) = s.post_executor(&a, Some(&for_b));
    assert!(is_retry(&out), "{out}");
    assert_eq!(s.post_executor(&b, Some(&for_b)).1, redirect());
}

#[tokio::test]
async fn the_attempt_limit_denies_the_plan() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    let plan = s.create_plan(&setup.stage);
    for _ in 0..10 {
        s.challenge(&plan);
    }
    assert_eq!(s.get_executor(&plan), (200, denied("Too many attempts")));
    assert_eq!(s.plan(&plan)["status"], "denied");
}

#[tokio::test]
async fn an_expired_plan_whose_item_still_exists_is_not_found() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    let id = format!("expired-{}", now());
    let plan = Plan::pending(
        id.clone(),
        setup.stage.clone(),
        StageSnapshot {
            policy: None,
            mode: StageMode::Required,
            connector: setup.connector.clone(),
            enabled: true,
            challenge_key: setup.key.clone(),
            challenge_idle_timeout: 5,
            challenge_trigger_check_in: false,
            help: None,
        },
        "/next",
        now() - 1000,
        now() - 10,
    );
    s.store.create_plan(&plan).await.unwrap();
    for (status, body) in [
        s.get_executor(&id),
        s.post_executor(&id, None),
        s.http.get(&format!("/v1/plans/{id}"), &[]).unwrap(),
    ] {
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"], "not_found");
    }
}

/// A request by curl (any method, a raw body): the status and the JSON body (null if none).
fn raw(api: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-X",
            method,
            "-H",
            "content-type: application/json",
            "--data-binary",
            "@-",
            "-w",
            "\n%{http_code}",
        ])
        .arg(format!("{api}{path}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(body.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// Unknown routes are 404, known ones with another method 405, in the contract's shape.
fn unknown_routes_and_methods(api: &str, executor: &str) {
    let raw = |method: &str, path: &str, body: &str| raw(api, method, path, body);
    for (method, path) in [("GET", "/v1/nothing"), ("GET", "/"), ("POST", "/v2/plans")] {
        let (status, body) = raw(method, path, "");
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("not_found")),
            "{method} {path}"
        );
    }
    for (method, path) in [
        ("PUT", executor),
        ("DELETE", executor),
        ("GET", "/v1/plans"),
        ("POST", "/v1/connectors/x/jwks.json"),
    ] {
        let (status, body) = raw(method, path, "");
        assert_eq!(
            (status, body["error"].as_str()),
            (405, Some("method_not_allowed")),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn malformed_oversized_unknown_and_wrong_methods() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    let plan = s.create_plan(&setup.stage);
    let raw = |method: &str, path: &str, body: &str| raw(&s.api, method, path, body);
    let executor = format!("/v1/plans/{plan}/executor");
    let (status, body) = raw("POST", &executor, "{not json");
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    let (status, body) = raw("POST", &executor, r#"{"response": 42}"#);
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    let (status, body) = raw("POST", "/v1/plans", r#"{"redirect": "/x"}"#);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("bad_request")),
        "missing stage"
    );
    // Redirects the page could be abused with are refused at plan creation.
    for redirect in [
        "javascript:alert(document.cookie)",
        "data:text/html,x",
        "//evil.example.com/",
        "http://evil.example.com/",
    ] {
        let body = serde_json::json!({"stage": "any", "redirect": redirect}).to_string();
        let (status, out) = raw("POST", "/v1/plans", &body);
        assert_eq!(
            (status, out["error"].as_str()),
            (400, Some("bad_request")),
            "{redirect}: {out}"
        );
        assert!(out["message"].as_str().unwrap_or("").contains("https:"));
    }
    let big = format!(r#"{{"response":"{}"}}"#, "a".repeat(70 * 1024));
    let (status, body) = raw("POST", &executor, &big);
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large"))
    );
    unknown_routes_and_methods(&s.api, &executor);
    // Every error body is the contract's shape: no stack trace, no AWS text.
    let (status, body) = raw("GET", "/v1/plans/unknown-plan", "");
    assert_eq!(status, 404);
    assert_eq!(body.as_object().unwrap().len(), 2);
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| !m.contains("Exception")));
}

#[tokio::test]
async fn the_jwks_route_serves_the_kid_of_the_challenges() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    let plan = s.create_plan(&setup.stage);
    let ch = s.challenge(&plan);
    let header: Value = serde_json::from_slice(
        &endpoint_core::protocol::b64url_decode(ch.split('.').next().unwrap()).unwrap(),
    )
    .unwrap();
    let (status, jwks) = s
        .http
        .get(
            &format!("/v1/connectors/{}/jwks.json", setup.connector),
            &[],
        )
        .unwrap();
    assert_eq!(status, 200);
    let key = &jwks["keys"][0];
    assert_eq!(key["kid"], header["kid"]);
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str(),
            key["use"].as_str()
        ),
        (Some("EC"), Some("P-256"), Some("ES256"), Some("sig"))
    );
    let (status, body) = s.http.get("/v1/connectors/nope/jwks.json", &[]).unwrap();
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
}
