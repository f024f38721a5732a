//! `GET /health` over HTTP against the local stack: 200 with the table and the stack's challenge
//! key (`CHALLENGE_KEY_ID`, as template.yaml gives the JWKS function) checked, in the shape
//! Route 53 and openapi.yaml expect, unauthenticated, GET only, and naming no key. Its 503 when
//! the emulator stops: `tests/tests/faults.rs`; its AWS calls per window: `aws_calls.rs`.

use endpoint_core::edge::routes;
use endpoint_e2e::Stack;
use serde_json::json;

#[tokio::test]
async fn health_answers_ok_with_each_check_and_no_key_id() {
    let s = Stack::connect().await;
    let (status, body) = s.http.get(routes::HEALTH.template, &[]).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(
        body["checks"],
        json!({"table": "ok", "challenge_key": "ok"}),
        "{body}"
    );
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    assert_eq!(body["region"], region.as_str());
    let key =
        std::env::var("CHALLENGE_KEY_ID").expect("scripts/stack-lib.sh exports CHALLENGE_KEY_ID");
    assert!(!body.to_string().contains(&key), "{body}");

    // GET only (the route table's 405 for another method).
    let (status, body) = s
        .http
        .post(routes::HEALTH.template, &[], &json!({}))
        .unwrap();
    assert_eq!(status, 405, "{body}");
}
