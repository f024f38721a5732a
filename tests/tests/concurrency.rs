//! Concurrency over real HTTP. This binary holds a single test, and `make test` runs it on a local
//! stack of its own (scripts/test.sh), so that, while it runs, no other test writes to the
//! functions' log: it counts the log's `challenge_consumed` events.

use std::sync::Arc;

use endpoint_core::edge::routes;
use endpoint_core::model::StageMode;
use endpoint_core::ports::DeviceStore;
use endpoint_e2e::{is_retry, now, redirect, Stack};
use serde_json::Value;

fn consumed_events(log: &str, from: usize) -> usize {
    log[from..]
        .lines()
        .filter(|l| l.contains("\"event\":\"challenge_consumed\""))
        .count()
}

/// A valid and an invalid response racing in required mode: one consistent final state.
fn valid_and_invalid_race(s: &Arc<Stack>, stage: &str, device: &endpoint_agent::State) {
    for _ in 0..5 {
        let plan = s.create_plan(stage);
        let ch = s.challenge(&plan);
        let good = endpoint_agent::respond(device, &ch, now()).unwrap();
        let (a, b) = {
            let (s1, p1) = (s.clone(), plan.clone());
            let (s2, p2) = (s.clone(), plan.clone());
            let t1 = std::thread::spawn(move || s1.post_executor(&p1, Some(&good)));
            let t2 =
                std::thread::spawn(move || s2.post_executor(&p2, Some("invalid.response.jws")));
            (t1.join().unwrap(), t2.join().unwrap())
        };
        assert!(a.0 < 500 && b.0 < 500);
        let state = s.plan(&plan);
        match state["status"].as_str() {
            // The valid one consumed the challenge: the invalid one saw a final plan or got a
            // new challenge that is now pending... but the plan is passed, so only the former.
            Some("passed") => {
                assert_eq!(state["device"]["identifier"], device.serial.as_str());
                assert_eq!(a.1, redirect());
            }
            // The invalid one replaced the challenge first: the valid answer to the old
            // challenge is then stale, and the plan still waits for an answer.
            Some("pending") => {
                assert!(is_retry(&a.1) || a.1 == redirect(), "{}", a.1);
                assert!(is_retry(&b.1), "{}", b.1);
            }
            other => panic!("unexpected final state {other:?}: {state}"),
        }
    }
}

/// Parallel re-enrollments of one device leave exactly one valid token.
async fn parallel_reenrollments(s: &Arc<Stack>, connector: &str) {
    let enrollment = s.enrollment_token(connector, None).await;
    let serial = format!("E2E-REENROLL-{}", now());
    // The raw enroll/ call (endpoint-agent's enroll also fetches agent_config/, which a
    // concurrent re-enrollment may already have invalidated).
    let tokens: Vec<String> = (0..8)
        .map(|_| {
            let (api, key, serial) = (s.api.clone(), enrollment.clone(), serial.clone());
            std::thread::spawn(move || {
                let body = serde_json::json!({"device_serial": serial, "device_name": "host"});
                let (status, answer) = endpoint_agent::Http::new(&api)
                    .post(
                        routes::ENROLL.template,
                        &[("authorization", &format!("Bearer {key}"))],
                        &body,
                    )
                    .unwrap();
                assert_eq!(status, 200, "{answer}");
                answer["token"].as_str().unwrap().to_string()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let valid: Vec<&String> = tokens
        .iter()
        .filter(|t| {
            let (status, _): (u16, Value) = s
                .http
                .get(
                    routes::AGENT_CONFIG.template,
                    &[("authorization", &format!("Bearer+agent {t}"))],
                )
                .unwrap();
            status == 200
        })
        .collect();
    assert_eq!(
        valid.len(),
        1,
        "exactly one of the 8 enrollments' tokens is valid"
    );
    assert_eq!(
        s.store
            .device_with_tokens(&serial, now())
            .await
            .unwrap()
            .unwrap()
            .tokens
            .len(),
        1
    );
}

#[tokio::test]
async fn races_end_in_one_consistent_state() {
    let s = Arc::new(Stack::connect().await);
    let log_path = std::env::var("STACK_WATCH_LOG").expect("run through make test");
    let setup = s.setup(StageMode::Required, true, true).await;
    let device = s
        .enrolled(&setup.connector, &format!("E2E-RACE-{}", now()))
        .await;

    // 50 parallel submissions of one valid response.
    let plan = s.create_plan(&setup.stage);
    let ch = s.challenge(&plan);
    let response = endpoint_agent::respond(&device, &ch, now()).unwrap();
    let log_start = std::fs::metadata(&log_path).unwrap().len() as usize;
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let (s, plan, response) = (s.clone(), plan.clone(), response.clone());
            std::thread::spawn(move || s.post_executor(&plan, Some(&response)))
        })
        .collect();
    for h in handles {
        let (status, body) = h.join().unwrap();
        assert_eq!(
            (status, body),
            (200, redirect()),
            "every answer is the plan's final outcome"
        );
    }
    let state = s.plan(&plan);
    assert_eq!(state["status"], "passed");
    assert_eq!(state["device"]["identifier"], device.serial.as_str());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(
        consumed_events(&log, log_start),
        1,
        "the challenge was consumed exactly once"
    );

    valid_and_invalid_race(&s, &setup.stage, &device);
    parallel_reenrollments(&s, &setup.connector).await;
}
