//! Usage, exit codes, keys, connectors and stages.

use std::time::{Duration, Instant};

use crate::{admin, require_emulator, Cli};

#[test]
fn init_is_idempotent() {
    let cli = Cli::new();
    assert_eq!(cli.ok(&["init"]), format!("{}\texists", cli.table));
    assert_eq!(cli.json(&["init"])["created"], false);
}

#[test]
fn keys_connectors_and_stages() {
    let cli = Cli::new();
    let key = cli.ok(&["key", "create"]);
    assert!(!key.is_empty() && !key.contains('\n'));
    let rsa = cli.json(&["key", "create", "--spec", "RSA_2048"]);
    let rsa = rsa["key_id"].as_str().unwrap().to_string();

    let id = cli.ok(&[
        "connector",
        "create",
        "--name",
        "laptops",
        "--challenge-key",
        &key,
        "--idle-timeout",
        "7s",
        "--trigger-check-in",
    ]);
    let shown = cli.json(&["connector", "show", &id]);
    assert_eq!(shown["name"], "laptops");
    assert_eq!(shown["challenge_key"], key.as_str());
    assert_eq!(shown["challenge_idle_timeout"], 7);
    assert_eq!(shown["challenge_trigger_check_in"], true);
    assert_eq!(shown["enabled"], true);

    assert_eq!(cli.json(&["connector", "disable", &id])["enabled"], false);
    assert_eq!(
        cli.json(&["--json", "connector", "enable", &id])["enabled"],
        true
    );
    let rotated = cli.json(&["connector", "set-key", &id, &rsa]);
    assert_eq!(rotated["challenge_key"], rsa.as_str());
    assert_eq!(
        rotated["retired_keys"][0]["key"],
        key.as_str(),
        "old key stays published for the overlap"
    );

    let bare = cli.json(&["connector", "create", "--name", "no key"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let list = cli.json(&["connector", "list"]);
    let mut ids: Vec<&str> = list["connectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut want = vec![id.as_str(), bare.as_str()];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(cli.ok(&["connector", "list"]).lines().count(), 2);

    let stage = cli.ok(&["stage", "create", "--connector", &id, "--mode", "required"]);
    assert!(!stage.is_empty());
    assert_eq!(
        cli.json(&["stage", "create", "--connector", &bare])["id"]
            .as_str()
            .map(str::len),
        Some(17)
    );
    let refused = cli.fails(&[
        "stage",
        "create",
        "--connector",
        &bare,
        "--mode",
        "required",
    ]);
    assert!(refused.contains("no challenge key"), "{refused}");
    assert_eq!(
        cli.json(&["connector", "set-interactive-stage", &id, &stage])["interactive_stage"],
        stage.as_str()
    );
}

#[test]
fn a_key_that_cannot_sign_is_refused() {
    let cli = Cli::new();
    let err = cli.fails(&[
        "connector",
        "create",
        "--name",
        "x",
        "--challenge-key",
        "alias/nope",
    ]);
    assert!(err.contains("cannot use \"alias/nope\""), "{err}");
}

#[test]
fn unknown_ids_exit_1_with_one_line() {
    let cli = Cli::new();
    for args in [
        &["connector", "show", "nope"][..],
        &["connector", "disable", "nope"],
        &["stage", "create", "--connector", "nope"],
        &["enrollment-token", "create", "--connector", "nope"],
        &[
            "device",
            "enroll",
            "--connector",
            "nope",
            "--serial",
            "S",
            "--name",
            "n",
        ],
        &["device", "show", "nope"],
        &["device", "delete", "nope"],
        &["device", "revoke-tokens", "nope", "--connector", "c"],
    ] {
        let err = cli.fails(args);
        assert!(err.contains("not found"), "{args:?}: {err}");
    }
}

#[test]
fn bad_usage_exits_2() {
    require_emulator();
    for args in [
        &["connector"][..],
        &["connector", "create"],
        &["stage", "create", "--connector", "c", "--mode", "sometimes"],
        &["key", "create", "--spec", "DSA"],
        &["key", "create", "--replicate-to", "EU_WEST_1"],
        &["bogus"],
    ] {
        let out = admin().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            (err.starts_with("error:") || err.contains("Usage:")),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn an_unreachable_emulator_exits_1_quickly() {
    require_emulator();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let out = admin()
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .args(["connector", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unavailable (connection failed)"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn missing_credentials_exit_1_with_a_clear_line() {
    require_emulator();
    let out = admin()
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("HOME", "/nonexistent")
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        .args(["connector", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no usable AWS credentials"));
}

#[test]
fn stage_audiences_are_registered_shown_replaced_and_checked() {
    let cli = Cli::new();
    let connector = cli.ok(&["connector", "create", "--name", "audiences"]);
    let stage = cli.ok(&[
        "stage",
        "create",
        "--connector",
        &connector,
        "--audience",
        "https://rp.example/app",
        "--audience",
        "https://rp.example/app",
    ]);
    assert_eq!(
        cli.json(&["stage", "show", &stage])["audiences"],
        serde_json::json!(["https://rp.example/app"]),
        "unique"
    );
    let set = cli.json(&["stage", "set-audiences", &stage, "urn:a", "urn:b"]);
    assert_eq!(set["audiences"], serde_json::json!(["urn:a", "urn:b"]));
    assert_eq!(
        cli.json(&["stage", "set-audiences", &stage])["audiences"],
        serde_json::json!([]),
        "none: the stage id only"
    );
    // A refused audience creates no stage.
    let before = cli.json(&["stage", "list"])["stages"]
        .as_array()
        .unwrap()
        .len();
    let long = "a".repeat(257);
    cli.fails(&[
        "stage",
        "create",
        "--connector",
        &connector,
        "--audience",
        &long,
    ]);
    let after = cli.json(&["stage", "list"])["stages"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after);
}

/// Keys are multi-Region keys, and `--replicate-to` gives other regions the same key: one key
/// id, one key material, so one `kid` (issue 31.3). Against moto's KMS, which keeps keys per
/// region and implements `ReplicateKey`.
#[test]
fn keys_are_multi_region_and_replicate_to_other_regions() {
    use endpoint_core::adapters::aws::load_config;
    use endpoint_core::adapters::kms::KmsSigner;
    use endpoint_core::ports::ChallengeSigner;
    let cli = Cli::new();
    let key = cli.ok(&[
        "key",
        "create",
        "--replicate-to",
        "eu-west-1,ap-southeast-2",
    ]);
    assert!(key.starts_with("mrk-"), "a multi-Region key id: {key}");
    let lonely = cli.ok(&["key", "create"]);
    assert!(
        lonely.starts_with("mrk-"),
        "every key is multi-Region: {lonely}"
    );
    let sealing = cli.ok(&["key", "create-sealing", "--replicate-to", "eu-west-1"]);
    assert!(sealing.starts_with("mrk-"), "{sealing}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let here = load_config().await;
        let in_region = |r: &'static str| {
            here.clone()
                .into_builder()
                .region(aws_config::Region::new(r))
                .build()
        };
        let home = KmsSigner::from_config(&here).describe(&key).await.unwrap();
        for region in ["eu-west-1", "ap-southeast-2"] {
            let replica = KmsSigner::from_config(&in_region(region))
                .describe(&key)
                .await
                .unwrap();
            assert_eq!(replica.kid, home.kid, "{region}: the same key material");
        }
        assert!(
            KmsSigner::from_config(&in_region("eu-west-1"))
                .describe(&lonely)
                .await
                .is_err(),
            "a key not replicated is not in the other region"
        );
    });
    // One region named twice is refused before anything is made (exit 1, one line).
    for cmd in ["create", "create-sealing"] {
        let out = cli.run(&["key", cmd, "--replicate-to", "eu-west-1,eu-west-1"]);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("twice"),
            "{cmd}"
        );
    }
}
