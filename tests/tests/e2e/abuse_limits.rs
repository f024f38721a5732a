//! The contract's "Capacity and abuse limits" over HTTP: one device's `check_in/` is limited
//! (20 a minute, then 429 `throttled` with `Retry-After`), and the refusals of `check_in/` and
//! `auth_ia/` write at most one audit record a minute (read back with `endpoint-admin audit`).

use endpoint_core::edge::routes;
use endpoint_core::model::StageMode;
use endpoint_e2e::{now, Stack};
use serde_json::Value;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// How many audit records of `code` the device has in the last hour.
fn audited(s: &Stack, serial: &str, code: &str) -> usize {
    let events = s.admin_json(&["audit", "list", "--device", serial, "--since", "1h"]);
    events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["code"] == code)
        .count()
}

/// Calls `url` with the device's token until a 429 (at most `most` calls): the statuses.
fn until_refused(url: &str, token: &str, body: Option<&str>, most: usize) -> Vec<u16> {
    let agent = agent();
    let auth = format!("Bearer+agent {token}");
    let mut statuses = Vec::new();
    for _ in 0..most {
        let req = agent.post(url).header("authorization", &auth);
        let r = match body {
            Some(b) => req.header("content-type", "application/json").send(b),
            None => req.send_empty(),
        }
        .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            break;
        }
    }
    statuses
}

#[tokio::test]
async fn check_in_answers_429_past_twenty_a_minute_and_audits_its_refusals_once_a_minute() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    let serial = format!("CI-RATE-{}", now());
    let device = s.enrolled(&setup.connector, &serial).await;
    let url = format!("{}{}", s.api, routes::CHECK_IN.template);
    let facts = r#"{"os": {"family": "linux"}}"#;
    // Twenty a minute: within 41 calls a refusal must come, even if a minute turns once.
    let statuses = until_refused(&url, &device.token, Some(facts), 41);
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(
        statuses[..statuses.len() - 1].iter().all(|s| *s == 204),
        "{statuses:?}"
    );
    assert!(
        statuses.len() > 20,
        "at least twenty accepted first: {statuses:?}"
    );

    // The refusal: throttled with Retry-After, before the body is read (not JSON: still 429).
    let mut r = agent()
        .post(&url)
        .header("authorization", &format!("Bearer+agent {}", device.token))
        .header("content-type", "application/json")
        .send("not json")
        .unwrap();
    if r.status() == 429 {
        let retry: u32 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        let body: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(body["error"], "throttled");
    } else {
        // The minute turned just now: the body was read, and refused as not JSON.
        assert_eq!(r.status(), 400);
    }
    // More refusals in the same minute write no more audit records: at most one a minute
    // (two if a minute turned during the test).
    for _ in 0..10 {
        until_refused(&url, &device.token, Some(facts), 1);
    }
    let refused = audited(&s, &serial, "ES011W");
    assert!((1..=2).contains(&refused), "{refused} refusal records");
    assert!(
        audited(&s, &serial, "ES004I") >= 20,
        "each accepted check-in is recorded"
    );
}

#[tokio::test]
async fn auth_ia_refusals_write_at_most_one_audit_record_a_minute() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    s.set_interactive_stage(&setup.connector, &setup.stage)
        .await;
    let serial = format!("IA-AUDIT-{}", now());
    let device = s.enrolled(&setup.connector, &serial).await;
    let url = format!("{}{}", s.api, routes::AUTH_IA.template);
    let statuses = until_refused(&url, &device.token, None, 21);
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    for _ in 0..15 {
        until_refused(&url, &device.token, None, 1);
    }
    let refused = audited(&s, &serial, "ES104W");
    assert!((1..=2).contains(&refused), "{refused} refusal records");
}
