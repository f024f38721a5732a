//! Enrollment you can trust, over HTTP and the real `endpoint-admin` against moto: the
//! re-enrollment approval (no identity takeover, also racing it), the enrollment token
//! lifecycle, the audit
//! trail, sealed device keys (a raw read of the table shows none), the `auth_ia/` limit with
//! `Retry-After`, and plans that only their creating IAM principal may read.

use std::process::Command;

use endpoint_core::adapters::lambda::LambdaInvoker;
use endpoint_core::edge::routes;
use endpoint_core::model::StageMode;
use endpoint_e2e::{now, Stack};
use serde_json::{json, Value};

/// The stack's `endpoint-admin` on the stack's table, `--json`.
fn admin(args: &[&str]) -> Value {
    let bin = std::env::var("STACK_ADMIN").expect("run through make test (scripts/stack-lib.sh)");
    let out = Command::new(bin).args(args).arg("--json").output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn codes(events: &Value) -> Vec<String> {
    let mut codes: Vec<String> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap().to_string())
        .collect();
    codes.reverse();
    codes
}

/// The takeover race on `victim` (enrolled with `victim_key`); answers the attacker's token id.
fn takeover_race(s: &Stack, c: &str, victim: &str, victim_key: &str) -> String {
    // The takeover race: the attacker, holding a valid token of the connector, polls enroll/
    // while the operator approves the reinstall and the reinstalled device enrolls with the
    // approval. The device wins; the attacker never does (refused, then limited).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attacker_token = admin(&["enrollment-token", "create", "--connector", c]);
    let attacker_key = attacker_token["key"].as_str().unwrap().to_string();
    let attacker_id = attacker_token["id"].as_str().unwrap().to_string();
    let attacker = {
        let (stop, key, victim) = (stop.clone(), attacker_key.clone(), victim.to_string());
        let http = endpoint_agent::Http::new(&s.api);
        std::thread::spawn(move || {
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && statuses.len() < 200 {
                let (status, _) = http
                    .post(
                        routes::ENROLL.template,
                        &[("authorization", &format!("Bearer {key}"))],
                        &json!({"device_serial": victim, "device_name": "attacker"}),
                    )
                    .unwrap();
                statuses.push(status);
            }
            statuses
        })
    };
    let approval = admin(&[
        "device",
        "allow-reenroll",
        victim,
        "--connector",
        c,
        "--for",
        "10m",
    ]);
    let approval_key = approval["key"].as_str().unwrap().to_string();
    assert!((approval["expires_at"].as_i64().unwrap() - now() - 600).abs() < 60);
    let (status, body) = s.enroll(&approval_key, victim);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses = attacker.join().unwrap();
    assert_eq!(status, 200, "the reinstalled device enrolls: {body}");
    let reinstalled = body["token"].as_str().unwrap().to_string();
    assert!(
        !statuses.is_empty() && statuses.iter().all(|s| *s == 403 || *s == 429),
        "the attacker never enrolls: {statuses:?}"
    );
    assert_eq!(
        s.agent_config(victim_key).0,
        403,
        "the old token is replaced"
    );
    assert_eq!(s.agent_config(&reinstalled).0, 200);
    assert_eq!(s.enroll(&approval_key, victim).0, 403, "single use");

    attacker_id
}

/// A token bound to a serial enrolls only that serial, and not once revoked; never-expiring
/// only when asked.
fn bound_tokens(s: &Stack, c: &str) {
    let bound = admin(&[
        "enrollment-token",
        "create",
        "--connector",
        c,
        "--serial",
        "BOUND-1",
        "--expires",
        "never",
    ]);
    assert_eq!(bound["expires_at"], Value::Null);
    let bound_key = bound["key"].as_str().unwrap();
    assert_eq!(s.enroll(bound_key, "NOT-BOUND").0, 403);
    admin(&["enrollment-token", "revoke", bound["id"].as_str().unwrap()]);
    assert_eq!(s.enroll(bound_key, "BOUND-1").0, 403, "revoked");
}

/// The audit trail of the victim's serial, newest first, through the CLI (from the device's own
/// key): enrolled, refusals (the attacker's, anonymous or by token, the serial unverified),
/// approved by an operator, re-enrolled.
fn audit_trail(victim: &str, token_ids: &[&str]) {
    let events = admin(&[
        "audit", "list", "--device", victim, "--since", "1h", "--limit", "500",
    ]);
    let seen = codes(&events);
    assert_eq!(
        seen.iter().filter(|c| *c == "ES001I").count(),
        2,
        "{events}"
    );
    assert_eq!(
        seen.iter().filter(|c| *c == "ES003I").count(),
        1,
        "{events}"
    );
    let list = events["events"].as_array().unwrap();
    let refusals: Vec<&Value> = list.iter().filter(|e| e["code"] == "ES002W").collect();
    assert!(refusals.len() >= 2, "{events}");
    for refused in &refusals {
        assert_eq!(refused["unverified_device"], victim, "{refused}");
        assert!(
            refused.get("device").is_none(),
            "never as proven: {refused}"
        );
        let actor = refused["actor"].as_str().unwrap();
        assert!(
            actor == "anonymous"
                || token_ids
                    .iter()
                    .any(|id| actor == format!("enrollment_token:{id}")),
            "{actor}"
        );
        assert!(refused["source_ip"].is_string(), "{refused}");
    }
    assert!(refusals
        .iter()
        .any(|r| r["reason"] == "reenrollment_needs_approval"));
    let allowed = list.iter().find(|e| e["code"] == "ES003I").unwrap();
    assert!(allowed["actor"]
        .as_str()
        .unwrap()
        .starts_with("operator:arn:aws:"));
}

/// A raw read of the table (no sealing key): no device key anywhere, only sealed blobs.
async fn only_sealed_keys(victim: &str, victim_key: &str) {
    let config = endpoint_core::adapters::aws::load_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let table = std::env::var("TABLE_NAME").unwrap_or_else(|_| "endpoint-stage".into());
    let items = ddb
        .query()
        .table_name(&table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("DEVICE#{victim}")),
        )
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let tokens: Vec<_> = items
        .iter()
        .filter(|i| i["sk"].as_s().is_ok_and(|sk| sk.starts_with("TOKEN#")))
        .collect();
    assert_eq!(tokens.len(), 1);
    assert!(!tokens[0].contains_key("key"), "no plain key attribute");
    let sealed = tokens[0]["key_sealed"].as_b().unwrap().as_ref().to_vec();
    let dump = format!("{items:?}");
    assert!(!dump.contains(victim_key));
    assert!(sealed.len() > 128, "nonce, ciphertext and tag");
}

#[tokio::test]
async fn no_takeover_token_lifecycle_audit_and_sealed_keys() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    let c = setup.connector.as_str();
    admin(&["connector", "set-reenroll", c, "approve"]);
    let victim = format!("TRUST-{}", now());

    // A token for two enrollments; the victim enrolls.
    let created = admin(&[
        "enrollment-token",
        "create",
        "--connector",
        c,
        "--max-uses",
        "2",
    ]);
    let (token_id, key) = (
        created["id"].as_str().unwrap().to_string(),
        created["key"].as_str().unwrap().to_string(),
    );
    let expires = created["expires_at"].as_i64().unwrap();
    assert!(
        (expires - now() - 7 * 86_400).abs() < 60,
        "7 days by default"
    );
    let (status, body) = s.enroll(&key, &victim);
    assert_eq!(status, 200, "{body}");
    let victim_key = body["token"].as_str().unwrap().to_string();

    // The attacker, holding the same token, enrolls the victim's serial: refused, with a
    // sentence that does not say whether the serial exists.
    let (status, body) = s.enroll(&key, &victim);
    assert_eq!(status, 403, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("allow-reenroll") && !message.contains("already"),
        "{body}"
    );
    assert_eq!(
        s.agent_config(&victim_key).0,
        200,
        "the victim's token still works"
    );

    // The general token was used once; it enrolls one new serial, then it is used up.
    let (status, body) = s.enroll(&key, &format!("{victim}-other"));
    assert_eq!(status, 200, "{body}");
    let (status, body) = s.enroll(&key, &format!("{victim}-third"));
    assert_eq!(status, 403);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("used as many times"),
        "{body}"
    );
    let shown = admin(&["enrollment-token", "show", &token_id]);
    assert_eq!(shown["uses"], 2);
    assert_eq!(shown["state"], "used_up");
    assert!(!shown.to_string().contains(&key), "never the key");
    let listed = admin(&["enrollment-token", "list", "--connector", c]);
    assert!(listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["id"] == token_id.as_str()));

    let attacker_id = takeover_race(&s, c, &victim, &victim_key);
    bound_tokens(&s, c);
    audit_trail(&victim, &[&token_id, &attacker_id]);
    only_sealed_keys(&victim, &victim_key).await;
}

#[tokio::test]
async fn auth_ia_answers_429_with_retry_after_past_its_limit() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    s.set_interactive_stage(&setup.connector, &setup.stage)
        .await;
    let device = s
        .enrolled(&setup.connector, &format!("RATE-{}", now()))
        .await;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}{}", s.api, routes::AUTH_IA.template);
    let auth = format!("Bearer+agent {}", device.token);
    // Ten a minute: within 21 calls a refusal must come, even if a minute turns once.
    let mut refused = None;
    for _ in 0..21 {
        let r = agent
            .post(&url)
            .header("authorization", &auth)
            .send_empty()
            .unwrap();
        if r.status() == 429 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status(), 200);
    }
    let mut r = refused.expect("the limit refused a request");
    let retry: u32 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body["error"], "throttled");
}

/// Invokes the plans function as API Gateway does, with an IAM principal in the request
/// context (locally there is no IAM authorizer: the test drives the principal through the
/// event, exactly where API Gateway puts it). Answers (status, body).
async fn as_principal(
    lambda: &LambdaInvoker,
    principal: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u64, Value) {
    let route = if method == "POST" {
        routes::CREATE_PLAN.api_gateway_key()
    } else {
        routes::READ_PLAN.api_gateway_key()
    };
    let mut context = json!({
        "routeKey": route,
        "stage": "$default",
        "requestId": "ownership-test",
        "domainName": "127.0.0.1",
        "timeEpoch": 0,
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.7", "userAgent": "ownership-test"},
    });
    if let Some(arn) = principal {
        context["authorizer"] =
            json!({"iam": {"userArn": arn, "accountId": "111122223333", "callerId": "AIDA"}});
    }
    let event = json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "127.0.0.1", "content-type": "application/json"},
        "requestContext": context,
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false,
    });
    let out = lambda
        .invoke("plans", event.to_string().into_bytes())
        .await
        .unwrap();
    assert!(!out.function_error, "the plans function failed");
    let response: Value = serde_json::from_slice(&out.payload).unwrap();
    let body: Value =
        serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
    (response["statusCode"].as_u64().unwrap(), body)
}

#[tokio::test]
async fn a_plan_is_readable_only_by_the_principal_that_created_it() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Optional, true, true).await;
    let lambda = LambdaInvoker::from_config(&endpoint_core::adapters::aws::load_config().await);
    let alice = "arn:aws:sts::111122223333:assumed-role/relying-party-a/session";
    let bob = "arn:aws:sts::111122223333:assumed-role/relying-party-b/session";
    let (status, created) = as_principal(
        &lambda,
        Some(alice),
        "POST",
        routes::CREATE_PLAN.template,
        Some(json!({"stage": setup.stage})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let path = routes::READ_PLAN.path(&[created["plan"].as_str().unwrap()]);
    let (status, plan) = as_principal(&lambda, Some(alice), "GET", &path, None).await;
    assert_eq!((status, plan["status"].as_str()), (200, Some("pending")));
    // The same role under another session name (another instance of the relying party).
    let alice_elsewhere = "arn:aws:sts::111122223333:assumed-role/relying-party-a/other-session";
    let (status, _) = as_principal(&lambda, Some(alice_elsewhere), "GET", &path, None).await;
    assert_eq!(status, 200, "one role, whatever the session");
    let (status, other) = as_principal(&lambda, Some(bob), "GET", &path, None).await;
    assert_eq!(status, 404, "another principal: {other}");
    assert_eq!(other["error"], "not_found");
    let (status, _) = as_principal(&lambda, None, "GET", &path, None).await;
    assert_eq!(status, 404, "no principal at all");
    // A plan created without a principal (local runs) is unbound.
    let local = s.create_plan(&setup.stage);
    let (status, _) = as_principal(
        &lambda,
        Some(bob),
        "GET",
        &routes::READ_PLAN.path(&[&local]),
        None,
    )
    .await;
    assert_eq!(status, 200);
}
