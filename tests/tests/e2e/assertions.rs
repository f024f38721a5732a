//! Issue 29 (3-5) over HTTP against moto with the real `endpoint-admin`: audiences registered
//! per stage, `auth_ia/` plans closed to the relying-party routes, one device assertion per
//! plan, a lock holding on both stage paths at once, and every denial of an identified device
//! in `audit list --device`.

use endpoint_core::compliance::admin::{add_rule, create_policy, set_stage_policy};
use endpoint_core::compliance::rules::NewRule;
use endpoint_core::edge::routes;
use endpoint_core::model::{
    Enforcement, RuleKind, StageMode, UnknownAs, WhenUnknown, MSG_DEVICE_LOCKED,
};
use endpoint_core::ports::SystemRandom;
use endpoint_core::protocol::device_token_hash;
use endpoint_e2e::{denied, now, Setup, Stack};
use serde_json::{json, Value};

const AGENT: &str = "/api/v3/endpoints/agents/connectors/";
const MSG_NON_COMPLIANT: &str = "This device does not meet the requirements to sign in.";

/// `POST /v1/plans` of `stage` asking for `audience`: the status and the answer.
fn plan_for(s: &Stack, stage: &str, audience: Option<&str>) -> (u16, Value) {
    let mut body = json!({"stage": stage});
    if let Some(a) = audience {
        body["audience"] = json!(a);
    }
    s.http
        .post(routes::CREATE_PLAN.template, &[], &body)
        .unwrap()
}

#[tokio::test]
async fn audiences_are_registered_per_stage_and_others_are_refused() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Optional, true, true).await;
    let created = s.admin_json(&[
        "stage",
        "create",
        "--connector",
        &setup.connector,
        "--audience",
        "https://rp.example/login",
        "--audience",
        "urn:rp:second",
    ]);
    let stage = created["id"].as_str().unwrap().to_string();
    let shown = s.admin_json(&["stage", "show", &stage]);
    assert_eq!(
        shown["audiences"],
        json!(["https://rp.example/login", "urn:rp:second"])
    );
    for allowed in [None, Some(stage.as_str()), Some("urn:rp:second")] {
        let (status, body) = plan_for(&s, &stage, allowed);
        assert_eq!(status, 201, "{allowed:?}: {body}");
    }
    let (status, body) = plan_for(&s, &stage, Some("https://evil.example"));
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    // Replaced: the next plans may ask only for the new one (and the stage id).
    let set = s.admin_json(&["stage", "set-audiences", &stage, "urn:rp:third"]);
    assert_eq!(set["audiences"], json!(["urn:rp:third"]));
    assert_eq!(plan_for(&s, &stage, Some("urn:rp:third")).0, 201);
    assert_eq!(plan_for(&s, &stage, Some("urn:rp:second")).0, 400);
    // A stage without registered audiences: its own id only.
    assert_eq!(plan_for(&s, &setup.stage, Some("urn:rp:third")).0, 400);
    assert_eq!(plan_for(&s, &setup.stage, Some(&setup.stage)).0, 201);
}

/// A plan of `setup`'s stage passed by a newly enrolled device: (plan, serial).
async fn passed_plan(s: &Stack, setup: &Setup, tag: &str) -> (String, String) {
    let serial = format!("{tag}-{}", now());
    let device = s.enrolled(&setup.connector, &serial).await;
    let plan = s.create_plan(&setup.stage);
    let challenge = s.challenge(&plan);
    let response = endpoint_agent::respond(&device, &challenge, now()).unwrap();
    assert_eq!(s.post_executor(&plan, Some(&response)).0, 200);
    (plan, serial)
}

#[tokio::test]
async fn a_passed_plan_answers_one_assertion_signed_once() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    let (plan, serial) = passed_plan(&s, &setup, "ONCE").await;
    // Concurrent first reads, then more reads: one string for all of them.
    let reads: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4).map(|_| scope.spawn(|| s.plan(&plan))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let first = reads[0]["assertion"]
        .as_str()
        .expect("an assertion")
        .to_string();
    for read in &reads {
        assert_eq!(read["assertion"], first.as_str(), "one assertion per plan");
    }
    assert_eq!(s.plan(&plan)["assertion"], first.as_str());
    use endpoint_core::ports::PlanStore;
    let kept = s.store.get_plan(&plan, now()).await.unwrap().unwrap();
    assert_eq!(
        kept.assertion.as_deref(),
        Some(first.as_str()),
        "kept with the plan"
    );
    // Locked afterwards: no fresh assertion is signed; the kept one stays what it was, valid
    // until auth_time + 300 at most.
    s.admin_json(&["device", "lock", &serial]);
    assert_eq!(s.plan(&plan)["assertion"], first.as_str());
    let payload = first.split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&endpoint_core::protocol::b64url_decode(payload).unwrap()).unwrap();
    let auth_time = claims["auth_time"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap(), auth_time + 300);
}

#[tokio::test]
async fn interactive_auth_plans_are_not_readable_through_the_plans_routes() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    s.set_interactive_stage(&setup.connector, &setup.stage)
        .await;
    let device = s
        .enrolled(&setup.connector, &format!("IA-RP-{}", now()))
        .await;
    let path = interactive_plan(&s, &device.token);
    let plan = path.split('/').nth(3).unwrap();
    assert!(plan.starts_with("ia_"), "{plan}");
    let (status, body) = s.http.get(&routes::READ_PLAN.path(&[plan]), &[]).unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    // Its executor still serves it: the plan id is the capability there.
    assert_eq!(s.http.get(&path, &[]).unwrap().0, 200);
}

/// `auth_ia/` of the device with `token`: the executor path of its new plan.
fn interactive_plan(s: &Stack, token: &str) -> String {
    let auth = format!("Bearer+agent {token}");
    let (status, body) = s
        .http
        .post(
            &format!("{AGENT}auth_ia/"),
            &[("authorization", auth.as_str())],
            &json!({}),
        )
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let url = body["url"].as_str().unwrap();
    url.trim_start_matches(&s.api).to_string()
}

/// The reasons of the `stage_denied` records `audit list --device SERIAL` shows.
fn denials_listed(s: &Stack, serial: &str) -> Vec<String> {
    let events = s.admin_json(&["audit", "list", "--device", serial, "--since", "1h"]);
    let mut reasons: Vec<String> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "stage_denied")
        .map(|e| e["reason"].as_str().unwrap_or("").to_string())
        .collect();
    reasons.sort();
    reasons
}

/// Non-compliance denials of `device` by both stage paths: the DTH header of a plan
/// `auth_ia/` made, and a valid response to a challenge.
fn deny_on_both_paths(s: &Stack, setup: &Setup, device: &endpoint_agent::State, ia_path: &str) {
    let dth = device_token_hash(&device.token);
    let (_, out) = s
        .http
        .get(ia_path, &[("X-Authentik-Platform-Auth-DTH", &dth)])
        .unwrap();
    assert_eq!(
        out["component"], "ak-stage-access-denied",
        "DTH path: {out}"
    );
    assert_eq!(out["error_message"], MSG_NON_COMPLIANT);
    let plan = s.create_plan(&setup.stage);
    let challenge = s.challenge(&plan);
    let response = endpoint_agent::respond(device, &challenge, now()).unwrap();
    let (_, out) = s.post_executor(&plan, Some(&response));
    assert_eq!(
        out["component"], "ak-stage-access-denied",
        "response path: {out}"
    );
    assert_eq!(out["error_message"], MSG_NON_COMPLIANT);
}

#[tokio::test]
async fn a_lock_holds_on_both_stage_paths_at_once_and_each_denial_is_in_the_device_history() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    s.set_interactive_stage(&setup.connector, &setup.stage)
        .await;
    let serial = format!("LOCK-BOTH-{}", now());
    let device = s.enrolled(&setup.connector, &serial).await;
    // auth_ia/ before the lock: the plan links the device token for minutes.
    let ia_path = interactive_plan(&s, &device.token);
    s.admin_json(&["device", "lock", &serial, "--reason", "stolen"]);
    let dth = device_token_hash(&device.token);
    let (_, out) = s
        .http
        .get(&ia_path, &[("X-Authentik-Platform-Auth-DTH", &dth)])
        .unwrap();
    assert_eq!(
        out,
        denied(MSG_DEVICE_LOCKED),
        "the DTH path sees the lock at once"
    );
    // The response path too.
    let plan = s.create_plan(&setup.stage);
    let challenge = s.challenge(&plan);
    let response = endpoint_agent::respond(&device, &challenge, now()).unwrap();
    assert_eq!(
        s.post_executor(&plan, Some(&response)).1,
        denied(MSG_DEVICE_LOCKED)
    );
    assert_eq!(
        denials_listed(&s, &serial),
        ["device_locked", "device_locked"]
    );
}

#[tokio::test]
async fn a_non_compliant_device_is_denied_on_both_paths_with_its_serial_in_its_history() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    let policy = create_policy(
        &s.store,
        &SystemRandom,
        now(),
        "denials",
        None,
        WhenUnknown::Deny,
    )
    .await
    .unwrap();
    let rule = NewRule {
        kind: RuleKind::Firewall,
        title: None,
        remediation: None,
        enforce: Enforcement::Block,
        unknown: UnknownAs::Fail,
    };
    add_rule(&s.store, &SystemRandom, &policy.id, rule)
        .await
        .unwrap();
    set_stage_policy(&s.store, &setup.stage, Some(&policy.id))
        .await
        .unwrap();
    s.set_interactive_stage(&setup.connector, &setup.stage)
        .await;
    let serial = format!("NONCOMP-{}", now());
    let device = s.enrolled(&setup.connector, &serial).await;
    // The firewall is off: the device does not meet the stage's policy.
    let (status, body) = s
        .http
        .post(
            &format!("{AGENT}check_in/"),
            &[("authorization", &format!("Bearer+agent {}", device.token))],
            &json!({"network": {"firewall_enabled": false}}),
        )
        .unwrap();
    assert_eq!(status, 204, "{body}");
    let ia_path = interactive_plan(&s, &device.token);
    deny_on_both_paths(&s, &setup, &device, &ia_path);
    let (_, out) = s.post_executor(&s.create_plan(&setup.stage), None);
    assert_eq!(
        out,
        denied("Invalid challenge response"),
        "no device: not in its history"
    );
    assert_eq!(
        denials_listed(&s, &serial),
        ["non_compliant", "non_compliant"]
    );
}
