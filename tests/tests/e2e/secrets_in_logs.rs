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
    // Not even a recognisable piece of a JWT (its base64url header) of ours.
    assert!(!log.contains(response.split('.').nth(1).unwrap()));

    request_lines_are_metrics(&log);
}
