//! A full enrollment -> login flow driven only by the `endpoint-agent` binary, against the
//! local stack (run through `make test`, which exports ENDPOINT_API).

use std::process::Command;

use endpoint_core::adapters::aws::load_config;
use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::adapters::kms::KmsSigner;
use endpoint_core::admin;
use endpoint_core::model::StageMode;
use endpoint_core::ports::{SystemClock, SystemRandom};
use endpoint_core::protocol::keys::KeySpec;
use serde_json::Value;

fn agent(state: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_endpoint-agent"))
        .arg("--state")
        .arg(state)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A connector with a P-384 KMS key, its required stage and an enrollment token: (stage id,
/// enrollment token).
async fn world() -> (String, endpoint_core::secret::Secret) {
    let config = load_config().await;
    let store = DynamoStore::from_config(
        &config,
        std::env::var("TABLE_NAME").unwrap_or_else(|_| "endpoint-stage".into()),
    );
    let kms = KmsSigner::from_config(&config);
    let key = kms
        .create_key(KeySpec::EccNistP384, "agent test")
        .await
        .unwrap();
    let c = admin::create_connector(
        &store,
        &endpoint_core::ports::SystemClock,
        &SystemRandom,
        admin::NewConnector {
            name: "agent".into(),
            challenge_key: Some(key),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let stage = admin::create_stage(&store, &SystemRandom, &c.id, StageMode::Required, &[])
        .await
        .unwrap();
    let (_, enrollment) = admin::create_enrollment_token(
        &store,
        &SystemClock,
        &SystemRandom,
        admin::NewEnrollmentToken {
            connector: c.id.clone(),
            name: "t".into(),
            lifetime: Some(3600),
            max_uses: None,
            serial: None,
            owner: None,
        },
    )
    .await
    .unwrap();

    (stage.id, enrollment)
}

/// `respond` answers a challenge of `stage`, and refuses one that does not verify (tampered
/// claims).
fn respond_checks_the_challenge(api: &str, state: &std::path::Path, stage: &str) {
    let plan2 = ureq_post(
        &format!("{api}/v1/plans"),
        &format!(r#"{{"stage":"{}"}}"#, stage),
    );
    let ch = endpoint_agent::Http::new(api)
        .get(
            &format!("/v1/plans/{}/executor", plan2["plan"].as_str().unwrap()),
            &[],
        )
        .unwrap()
        .1;
    let jws = ch["challenge"].as_str().unwrap();
    let (ok, out, _) = agent(state, &["respond", "--server", api, "--challenge", jws]);
    assert!(ok && out.trim().split('.').count() == 3);
    let mut parts: Vec<String> = jws.split('.').map(str::to_string).collect();
    parts[1] = endpoint_core::protocol::b64url(br#"{"atc":"x","iss":"y","iat":1,"exp":99999999999,"goauthentik.io/device/check_in":false}"#);
    let (ok, _, err) = agent(
        state,
        &["respond", "--server", api, "--challenge", &parts.join(".")],
    );
    assert!(!ok && err.contains("does not verify"), "{err}");
}

#[tokio::test]
async fn enroll_then_login_with_the_binary_alone() {
    let api = std::env::var("ENDPOINT_API")
        .expect("run through `make test` (scripts/stack-lib.sh exports ENDPOINT_API)");
    let (stage, enrollment) = world().await;
    let dir = std::env::temp_dir().join(format!("endpoint-agent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let serial = format!("AGENT-{}", std::process::id());
    let (ok, out, err) = agent(
        &state,
        &[
            "enroll",
            "--server",
            &api,
            "--token",
            enrollment.expose(),
            "--serial",
            &serial,
            "--name",
            "laptop",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains(&serial) && !out.contains(enrollment.expose()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    let created = ureq_post(
        &format!("{api}/v1/plans"),
        &format!(r#"{{"stage":"{}","redirect":"/done"}}"#, stage),
    );
    let plan = created["plan"].as_str().unwrap();
    let (ok, out, err) = agent(&state, &["login", "--server", &api, "--plan", plan]);
    assert!(ok, "{err}");
    let outcome: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        outcome,
        serde_json::json!({"component": "xak-flow-redirect", "to": "/done"})
    );

    respond_checks_the_challenge(&api, &state, &stage);
    std::fs::remove_dir_all(&dir).ok();
}

fn ureq_post(url: &str, body: &str) -> Value {
    let (base, path) = url.split_at(url.find("/v1/").unwrap());
    let (status, v) = endpoint_agent::Http::new(base)
        .post(path, &[], &serde_json::from_str(body).unwrap())
        .unwrap();
    assert_eq!(status, 201, "{v}");
    v
}
