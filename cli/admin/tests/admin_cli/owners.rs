//! `device set-owners` and `enrollment-token create --owner` against moto: shown by `device
//! show`/`list`, bounded, audited; an agent enrolling with an owner's token gets that owner.

use endpoint_core::agent;
use endpoint_core::ports::{Clock, DeviceStore, SystemClock, SystemRandom};
use endpoint_core::settings::{Env, Settings};
use serde_json::{json, Value};

use crate::Cli;

#[tokio::test]
async fn owners_are_set_shown_bounded_audited_and_given_by_enrollment_tokens() {
    let cli = Cli::new();
    let conn = cli.ok(&["connector", "create", "--name", "c"]);
    cli.ok(&[
        "device",
        "enroll",
        "--connector",
        &conn,
        "--serial",
        "OWN-1",
        "--name",
        "laptop",
    ]);
    assert_eq!(cli.json(&["device", "show", "OWN-1"])["owners"], json!([]));

    let set = cli.json(&[
        "device",
        "set-owners",
        "OWN-1",
        "alice@example.com",
        "bob",
        "alice@example.com",
    ]);
    assert_eq!(
        set,
        json!({"identifier": "OWN-1", "owners": ["alice@example.com", "bob"]})
    );
    assert_eq!(
        cli.json(&["device", "show", "OWN-1"])["owners"],
        json!(["alice@example.com", "bob"])
    );
    assert_eq!(
        cli.json(&["device", "list"])["devices"][0]["owners"],
        json!(["alice@example.com", "bob"])
    );
    assert_eq!(
        cli.ok(&["device", "list"]),
        "OWN-1\tlaptop\talice@example.com,bob"
    );

    // Bounds and unknown devices: exit 1, one line, nothing changed.
    let seventeen: Vec<String> = (0..17).map(|i| format!("u{i}")).collect();
    let mut args = vec!["device", "set-owners", "OWN-1"];
    args.extend(seventeen.iter().map(String::as_str));
    assert!(cli.fails(&args).contains("at most 16"));
    assert!(cli
        .fails(&["device", "set-owners", "OWN-1", "two words"])
        .contains("owner"));
    let long = "x".repeat(257);
    cli.fails(&["device", "set-owners", "OWN-1", &long]);
    assert!(cli
        .fails(&["device", "set-owners", "NOBODY", "a"])
        .contains("not found"));
    assert_eq!(
        cli.json(&["device", "show", "OWN-1"])["owners"],
        json!(["alice@example.com", "bob"])
    );

    // No user: cleared.
    assert_eq!(cli.ok(&["device", "set-owners", "OWN-1"]), "");
    assert_eq!(cli.json(&["device", "show", "OWN-1"])["owners"], json!([]));
    assert_eq!(cli.ok(&["device", "list"]), "OWN-1\tlaptop");

    let events = cli.json(&["audit", "list", "--device", "OWN-1"]);
    let mut reasons: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["code"] == "ES012I")
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        ["owners cleared", "owners: alice@example.com, bob"],
        "{events}"
    );

    // An enrollment token with an owner: shown (never its key), and the device it enrolls
    // belongs to that person.
    let created = cli.json(&[
        "enrollment-token",
        "create",
        "--connector",
        &conn,
        "--owner",
        "carol@example.com",
    ]);
    assert_eq!(created["owner"], "carol@example.com");
    let id = created["id"].as_str().unwrap();
    let shown = cli.json(&["enrollment-token", "show", id]);
    assert_eq!(shown["owner"], "carol@example.com");
    assert!(!shown.to_string().contains(created["key"].as_str().unwrap()));
    cli.fails(&[
        "enrollment-token",
        "create",
        "--connector",
        &conn,
        "--owner",
        "not an owner",
    ]);

    let store = cli.store().await;
    let settings = Settings::default();
    let env = Env {
        clock: &SystemClock,
        rng: &SystemRandom,
        settings: &settings,
        caller: &endpoint_core::audit::Caller::UNKNOWN,
    };
    let request = agent::EnrollRequest {
        device_serial: "OWN-2".into(),
        device_name: "carols-laptop".into(),
    };
    let key = created["key"].as_str().unwrap();
    agent::enroll(&store, &env, Some(&format!("Bearer {key}")), Ok(request))
        .await
        .unwrap();
    let device = store
        .get_device("OWN-2", SystemClock.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(device.owners, ["carol@example.com"]);
    let shown: Value = cli.json(&["device", "show", "OWN-2"]);
    assert_eq!(shown["owners"], json!(["carol@example.com"]));
}
