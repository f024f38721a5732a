//! Faults. The emulator stopped mid-run (SIGSTOP: connections hang, as with a network fault):
//! every route answers 503 `unavailable` within 5 seconds (`/health` with the checks that failed,
//! as Route 53 sees a region whose table and KMS do not answer), and serves normally again once
//! it is resumed, without restarting the functions (`/health` within its report's window). A single test in this binary, run by `make test`
//! on a local stack of its own (scripts/test.sh), so no other test runs while its emulator is
//! stopped.

use std::time::{Duration, Instant};

use endpoint_core::edge::routes;
use endpoint_core::model::StageMode;
use endpoint_e2e::{now, Stack};
use serde_json::{json, Value};

fn signal(sig: &str, pid: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, pid])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// Resumes the emulator even if an assertion fails.
struct Resume(String);
impl Drop for Resume {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0])
            .status();
    }
}

/// A request: method, path, body, headers.
type Req = (&'static str, String, Option<Value>, Vec<(String, String)>);

/// One list per function: a function serves one request at a time, so its routes are asked one
/// after the other (each timed on its own), the functions in parallel.
fn per_function(
    plan: &str,
    (stage, connector, serial): (&str, &str, &str),
    agent_auth: &str,
    enroll_auth: &str,
) -> Vec<Vec<Req>> {
    let p = routes::READ_PLAN.path(&[plan]);
    vec![
        vec![
            (
                "POST",
                routes::CREATE_PLAN.template.into(),
                Some(json!({"stage": stage})),
                vec![],
            ),
            ("GET", p.clone(), None, vec![]),
        ],
        vec![("GET", format!("{p}/executor"), None, vec![])],
        vec![(
            "POST",
            format!("{p}/executor"),
            Some(json!({"response": null})),
            vec![],
        )],
        vec![
            ("GET", routes::JWKS.path(&[connector]), None, vec![]),
            ("GET", routes::HEALTH.template.into(), None, vec![]),
        ],
        vec![
            (
                "GET",
                routes::AGENT_CONFIG.template.into(),
                None,
                vec![("authorization".into(), agent_auth.to_string())],
            ),
            (
                "POST",
                routes::CHECK_IN.template.into(),
                Some(json!({"hardware": {"serial": serial}})),
                vec![("authorization".into(), agent_auth.to_string())],
            ),
            (
                "POST",
                routes::AUTH_IA.template.into(),
                Some(json!({})),
                vec![("authorization".into(), agent_auth.to_string())],
            ),
            (
                "POST",
                routes::ENROLL.template.into(),
                Some(json!({"device_serial": "X", "device_name": "Y"})),
                vec![("authorization".into(), enroll_auth.to_string())],
            ),
        ],
    ]
}

/// Asks `reqs` in order on a thread of its own; answers each with its status, body and time.
fn run(
    reqs: Vec<Req>,
    api: String,
) -> std::thread::JoinHandle<Vec<(String, u16, Value, Duration)>> {
    std::thread::spawn(move || {
        let http = endpoint_agent::Http::new(&api);
        reqs.into_iter()
            .map(|(method, path, body, headers)| {
                let h: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let started = Instant::now();
                let (status, answer) = match method {
                    "GET" => http.get(&path, &h).unwrap(),
                    _ => http.post(&path, &h, &body.unwrap_or(Value::Null)).unwrap(),
                };
                (
                    format!("{method} {path}"),
                    status,
                    answer,
                    started.elapsed(),
                )
            })
            .collect::<Vec<_>>()
    })
}

#[tokio::test]
async fn a_stopped_emulator_means_503_then_recovery() {
    let s = Stack::connect().await;
    let moto = std::env::var("MOTO_PID")
        .expect("run through make test (scripts/stack-lib.sh exports MOTO_PID)");
    let setup = s.setup(StageMode::Required, true, true).await;
    let device = s
        .enrolled(&setup.connector, &format!("E2E-FAULT-{}", now()))
        .await;
    let enrollment = s.enrollment_token(&setup.connector, None).await;
    let plan = s.create_plan(&setup.stage);
    s.challenge(&plan); // warm: the key description is cached in the challenge function
    let agent_auth = format!("Bearer+agent {}", device.token);
    let enroll_auth = format!("Bearer {enrollment}");

    let per_function = per_function(
        &plan,
        (&setup.stage, &setup.connector, &device.serial),
        &agent_auth,
        &enroll_auth,
    );
    signal("-STOP", &moto);
    let resume = Resume(moto.clone());
    let results: Vec<_> = per_function
        .clone()
        .into_iter()
        .map(|r| run(r, s.api.clone()))
        .collect();
    for handle in results {
        for (what, status, answer, took) in handle.join().unwrap() {
            if what.ends_with(routes::HEALTH.template) {
                // Which checks failed, in generic terms: no service text, no key id.
                assert_eq!(status, 503, "{what}: {answer}");
                assert_eq!(
                    answer,
                    json!({"status": "unavailable", "region": answer["region"],
                           "checks": {"table": "unavailable", "challenge_key": "unavailable"}}),
                    "{what}"
                );
                assert!(answer["region"].is_string(), "{answer}");
                assert!(took < Duration::from_secs(5), "{what} took {took:?}");
                continue;
            }
            assert_eq!(
                (status, answer["error"].as_str()),
                (503, Some("unavailable")),
                "{what}: {answer}"
            );
            assert!(took < Duration::from_secs(5), "{what} took {took:?}");
            assert!(!answer.to_string().contains("Exception"), "{answer}");
        }
    }
    drop(resume);
    signal("-CONT", &moto);

    // Back to normal, the same function processes.
    let plan2 = s.create_plan(&setup.stage);
    s.challenge(&plan2);
    assert_eq!(s.plan(&plan)["status"], "pending");
    let (status, _) = s
        .http
        .get(&routes::JWKS.path(&[&setup.connector]), &[])
        .unwrap();
    assert_eq!(status, 200);
    let (status, _) = s
        .http
        .get(
            routes::AGENT_CONFIG.template,
            &[("authorization", &agent_auth)],
        )
        .unwrap();
    assert_eq!(status, 200);
    // /health: its failed report is kept for its window (HEALTH_CACHE_SECONDS, 10 s), then
    // checked again and ok. Asked every second for up to 60 s (a loaded machine's first calls
    // may be slow; the window is what makes the first ones still 503).
    let mut last = (0, Value::Null);
    for _ in 0..60 {
        last = s.http.get(routes::HEALTH.template, &[]).unwrap();
        if last.0 == 200 {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(last.0, 200, "{}", last.1);
    assert_eq!(last.1["status"], "ok");
}
