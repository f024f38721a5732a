//! A key rotation cannot lock out running agents, over HTTP against moto with the real
//! `endpoint-admin`: agents learn challenge keys only from `agent_config/` (the simulator, like
//! the real agents, verifies a challenge against the keys of its last fetch), `agent_config/`
//! records which devices have the connector's next key, and `connector rotate` refuses while a
//! live device has not fetched it (naming it), unless `--force`; `connector show` counts them.

use endpoint_core::model::StageMode;
use endpoint_e2e::{now, redirect, Stack};
use serde_json::Value;

/// `endpoint-admin ARGS --json`: its exit code, JSON answer (if any) and stderr.
fn admin(args: &[&str]) -> (i32, Value, String) {
    let bin = std::env::var("STACK_ADMIN").expect("run through make test (scripts/stack-lib.sh)");
    let out = std::process::Command::new(bin)
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn rotate_waits_for_every_device_to_fetch_the_next_key_and_force_locks_out_the_others() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    let conn = setup.connector.as_str();
    let tag = now();
    let (serial_a, serial_b) = (format!("ROLL-A-{tag}"), format!("ROLL-B-{tag}"));
    let mut a = s.enrolled(conn, &serial_a).await;
    let mut b = s.enrolled(conn, &serial_b).await;
    let login = |device: &endpoint_agent::State| {
        let plan = s.create_plan(&setup.stage);
        let challenge = s.challenge(&plan);
        let response = endpoint_agent::respond(device, &challenge, now())?;
        Ok::<_, String>(s.post_executor(&plan, Some(&response)))
    };
    assert_eq!(login(&a), Ok((200, redirect())));
    // No rotation under way: nothing to show.
    assert_eq!(
        s.admin_json(&["connector", "show", conn])["rollout"],
        Value::Null
    );

    let next = s.admin_json(s.key_create_args())["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    s.admin_json(&["connector", "add-next-key", conn, &next]);
    let shown = s.admin_json(&["connector", "show", conn]);
    assert_eq!(
        (&shown["rollout"]["devices"], &shown["rollout"]["fetched"]),
        (&Value::from(2), &Value::from(0)),
        "{shown}"
    );

    // A restarts (fetches its configuration); B does not.
    endpoint_agent::refresh_config(&mut a, &s.api).unwrap();
    endpoint_agent::refresh_config(&mut a, &s.api).unwrap();
    let rollout = &s.admin_json(&["connector", "show", conn])["rollout"];
    assert_eq!(rollout["fetched"], 1, "{rollout}");
    assert_eq!(rollout["not_fetched"], serde_json::json!([serial_b]));
    let plain = std::process::Command::new(std::env::var("STACK_ADMIN").unwrap())
        .args(["connector", "show", conn])
        .output()
        .unwrap();
    let plain = String::from_utf8_lossy(&plain.stdout).into_owned();
    assert!(
        plain.contains("fetched 1 of 2 devices")
            && plain.contains(&format!("not fetched\t{serial_b}")),
        "{plain}"
    );
    let (code, _, err) = admin(&["connector", "rotate", conn]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("1 of 2 devices") && err.contains(&serial_b) && err.contains("--force"),
        "{err}"
    );
    assert!(!err.contains(&serial_a), "{err}");
    // Still signing with the old key: both pass.
    assert_eq!(login(&b), Ok((200, redirect())));

    // B fetches too: the rotation goes ahead, and both verify the new key's challenges.
    endpoint_agent::refresh_config(&mut b, &s.api).unwrap();
    let rotated = s.admin_json(&["connector", "rotate", conn]);
    assert_eq!(rotated["challenge_key"], next.as_str());
    assert_eq!(
        (
            &rotated["rollout"]["fetched"],
            &rotated["rollout"]["devices"]
        ),
        (&Value::from(2), &Value::from(2))
    );
    assert_eq!(login(&a), Ok((200, redirect())));
    assert_eq!(login(&b), Ok((200, redirect())));

    // A forced rotation before anyone fetched: the agents refuse the new key's challenge
    // (what the refusal protects against) until they fetch their configuration again.
    let third = s.admin_json(s.key_create_args())["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    s.admin_json(&["connector", "add-next-key", conn, &third]);
    let (code, _, err) = admin(&["connector", "rotate", conn]);
    assert!(code == 1 && err.contains("2 of 2 devices"), "{err}");
    let forced = s.admin_json(&["connector", "rotate", conn, "--force"]);
    assert_eq!(forced["challenge_key"], third.as_str());
    assert_eq!(forced["rollout"]["fetched"], 0);
    assert!(
        login(&a).is_err(),
        "a running agent cannot verify the new key"
    );
    endpoint_agent::refresh_config(&mut a, &s.api).unwrap();
    assert_eq!(login(&a), Ok((200, redirect())));
}
