//! Devices and their tokens, the table, P-521, rotation, migration and re-enrollment.

use endpoint_core::adapters::aws::load_config;
use endpoint_core::adapters::kms::KmsSigner;
use endpoint_core::ports::{Clock, SystemClock, SystemRandom};
use endpoint_core::protocol::response::sign_response;
use endpoint_core::settings::{Env, Settings};
use endpoint_core::stage::{self, Outcome};
use serde_json::{json, Value};

use crate::{admin, require_emulator, Cli};

/// Enrollment tokens print their 60-character key (JSON: with the id).
fn enrollment_tokens(cli: &Cli, conn: &str) {
    let enrollment = cli.json(&[
        "enrollment-token",
        "create",
        "--connector",
        conn,
        "--name",
        "fleet",
        "--expires",
        "24h",
    ]);
    assert_eq!(enrollment["key"].as_str().unwrap().len(), 60);
    assert!(enrollment["id"].is_string());
    assert_eq!(
        cli.ok(&["enrollment-token", "create", "--connector", conn])
            .len(),
        60
    );
}

/// `SER-1` enrolled, then enrolled again (its first key replaced); no key shown; answers the
/// old key and the new.
fn enroll_twice(cli: &Cli, conn: &str) -> (String, String) {
    let old = cli.ok(&[
        "device",
        "enroll",
        "--connector",
        conn,
        "--serial",
        "SER-1",
        "--name",
        "laptop-1",
    ]);
    assert_eq!(old.len(), 128);
    let new = cli.json(&[
        "device",
        "enroll",
        "--connector",
        conn,
        "--serial",
        "SER-1",
        "--name",
        "laptop-1",
    ]);
    assert_eq!(new["identifier"], "SER-1");
    let new = new["token"].as_str().unwrap().to_string();
    assert_ne!(old, new);

    let shown = cli.ok(&["device", "show", "SER-1"]);
    assert!(
        !shown.contains(&new) && !shown.contains(&old),
        "no secret in show"
    );
    let shown = cli.json(&["device", "show", "SER-1"]);
    assert_eq!(
        shown["tokens"].as_array().unwrap().len(),
        1,
        "re-enrollment left one token"
    );
    assert_eq!(
        cli.json(&["device", "list"])["devices"][0]["name"],
        "laptop-1"
    );
    assert_eq!(cli.ok(&["device", "list"]), "SER-1\tlaptop-1");
    (old, new)
}

/// What the core answers, over the CLI's table and a real KMS key, to a response made with the
/// device key `token` of `SER-1` for a new plan of `stage`.
async fn core_answer(cli: &Cli, stage: &str, token: &str) -> Outcome {
    let config = load_config().await;
    let store = cli.store().await;
    let signer = KmsSigner::from_config(&config);
    let settings = Settings::default();
    let env = Env {
        clock: &SystemClock,
        rng: &SystemRandom,
        settings: &settings,
        caller: &endpoint_core::audit::Caller::UNKNOWN,
    };
    let plan = stage::create_plan(&store, &env, stage, None, None)
        .await
        .unwrap()
        .id;
    let Outcome::Challenge { jws, .. } = stage::executor_get(&store, &signer, &env, &plan, None)
        .await
        .unwrap()
    else {
        panic!("no challenge")
    };
    let response = sign_response("SER-1", token, &jws, SystemClock.now());
    let minter = endpoint_core::minter::SigningMinter {
        store: &store,
        signer: &signer,
        env: &env,
    };
    stage::executor_post(&store, &minter, &env, &plan, Some(&response))
        .await
        .unwrap()
}

#[tokio::test]
async fn devices_tokens_and_the_core_agree() {
    let cli = Cli::new();
    let key = cli.ok(&["key", "create"]);
    let conn = cli.ok(&[
        "connector",
        "create",
        "--name",
        "c",
        "--challenge-key",
        &key,
    ]);
    let stage = cli.ok(&[
        "stage",
        "create",
        "--connector",
        &conn,
        "--mode",
        "required",
    ]);

    enrollment_tokens(&cli, &conn);

    let (old, new) = enroll_twice(&cli, &conn);

    // The core, over the same table and a real KMS key: the old token fails, the new passes.
    let answer = |token: String| {
        let (cli, stage) = (&cli, stage.clone());
        async move { core_answer(cli, &stage, &token).await }
    };
    assert!(matches!(
        answer(old.clone()).await,
        Outcome::Challenge {
            invalid_response: true,
            ..
        }
    ));
    assert_eq!(
        answer(new.clone()).await,
        Outcome::Redirect {
            to: "/".into(),
            compliance: None,
        }
    );

    // revoke-tokens: later responses fail in the core.
    assert_eq!(
        cli.json(&["device", "revoke-tokens", "SER-1", "--connector", &conn])["revoked"],
        1
    );
    assert!(matches!(
        answer(new.clone()).await,
        Outcome::Challenge {
            invalid_response: true,
            ..
        }
    ));

    assert_eq!(cli.ok(&["device", "delete", "SER-1"]), "SER-1");
    cli.fails(&["device", "show", "SER-1"]);
}

fn key_pair(k: &aws_sdk_dynamodb::types::KeySchemaElement) -> (String, String) {
    (
        k.attribute_name().to_string(),
        k.key_type().as_str().to_string(),
    )
}

/// `init` and template.yaml declare the same table: both are checked against the one schema
/// definition in the core (endpoint_core::adapters::dynamodb::schema).
#[tokio::test]
async fn init_creates_the_table_template_yaml_declares() {
    use endpoint_core::adapters::dynamodb::schema;
    let cli = Cli::new();
    let client = aws_sdk_dynamodb::Client::new(&load_config().await);
    let table = client
        .describe_table()
        .table_name(&cli.table)
        .send()
        .await
        .unwrap();
    let table = table.table().unwrap();
    let keys: Vec<(String, String)> = table.key_schema().iter().map(key_pair).collect();
    assert_eq!(
        keys,
        [
            (schema::PK.into(), "HASH".into()),
            (schema::SK.into(), "RANGE".into())
        ]
    );
    let gsi = &table.global_secondary_indexes()[0];
    assert_eq!(gsi.index_name(), Some(schema::KIND_INDEX));
    let gsi_keys: Vec<(String, String)> = gsi.key_schema().iter().map(key_pair).collect();
    assert_eq!(
        gsi_keys,
        [
            (schema::KIND.into(), "HASH".into()),
            (schema::PK.into(), "RANGE".into())
        ]
    );
    assert_eq!(
        cli.store().await.ttl_attribute().await.unwrap().as_deref(),
        Some(schema::TTL_ATTRIBUTE)
    );

    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"))
            .unwrap();
    let table_section = &template
        [template.find("  Table:\n").unwrap()..template.find("  ChallengeKey:\n").unwrap()];
    for line in [
        format!("- {{ AttributeName: {}, KeyType: HASH }}", schema::PK),
        format!("- {{ AttributeName: {}, KeyType: RANGE }}", schema::SK),
        format!("IndexName: {}", schema::KIND_INDEX),
        format!("- {{ AttributeName: {}, KeyType: HASH }}", schema::KIND),
        format!("- {{ AttributeName: {}, KeyType: RANGE }}", schema::PK),
        format!(
            "AttributeName: {}\n        Enabled: true",
            schema::TTL_ATTRIBUTE
        ),
        "BillingMode: PAY_PER_REQUEST".to_string(),
    ] {
        assert!(
            table_section.contains(&line),
            "template.yaml's table lacks {line:?}"
        );
    }
}

#[tokio::test]
async fn p521_keys_are_refused_for_challenges_with_the_reason() {
    let cli = Cli::new();
    // `key create` refuses the spec at parse time (exit 2) and says why.
    let out = admin()
        .args(["key", "create", "--spec", "ECC_NIST_P521"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ES512"), "{err}");
    // A P-521 key made elsewhere cannot be given to a connector either.
    let kms = KmsSigner::from_config(&load_config().await);
    let p521 = kms
        .create_key(
            endpoint_core::protocol::keys::KeySpec::EccNistP521,
            "made elsewhere",
        )
        .await
        .unwrap();
    let err = cli.fails(&[
        "connector",
        "create",
        "--name",
        "x",
        "--challenge-key",
        &p521,
    ]);
    assert!(err.contains("ES512") && err.contains("agents"), "{err}");
    let key = cli.ok(&["key", "create"]);
    let id = cli.ok(&[
        "connector",
        "create",
        "--name",
        "x",
        "--challenge-key",
        &key,
    ]);
    for args in [
        &["connector", "set-key", &id, &p521][..],
        &["connector", "add-next-key", &id, &p521],
    ] {
        let err = cli.fails(args);
        assert!(err.contains("ES512"), "{args:?}: {err}");
    }
}

#[test]
fn rotation_publishes_the_next_key_then_signs_with_it_and_show_lists_the_roles() {
    let cli = Cli::new();
    let old = cli.ok(&["key", "create"]);
    let next = cli.ok(&["key", "create", "--spec", "ECC_NIST_P384"]);
    let id = cli.ok(&[
        "connector",
        "create",
        "--name",
        "fleet",
        "--challenge-key",
        &old,
    ]);
    let refused = cli.fails(&["connector", "rotate", &id]);
    assert!(refused.contains("add-next-key"), "{refused}");

    let shown = cli.json(&["connector", "add-next-key", &id, &next]);
    assert_eq!(shown["challenge_key"], old.as_str());
    assert_eq!(shown["next_key"]["key"], next.as_str());
    let roles: Vec<(String, String)> = shown["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["role"].as_str().unwrap().into(),
                k["key"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("signing".to_string(), old.clone()),
            ("next".into(), next.clone())
        ]
    );

    let rotated = cli.json(&["connector", "rotate", &id, "--grace", "2d"]);
    assert_eq!(rotated["challenge_key"], next.as_str());
    assert_eq!(rotated["next_key"], Value::Null);
    let retired = &rotated["retired_keys"][0];
    assert_eq!(retired["key"], old.as_str());
    let grace = retired["until"].as_i64().unwrap() - retired["retired_at"].as_i64().unwrap();
    assert_eq!(grace, 2 * 86_400);

    // The plain `show`: one line for the connector, one per key with its role and date.
    let plain = cli.ok(&["connector", "show", &id]);
    let lines: Vec<&str> = plain.lines().collect();
    assert_eq!(lines.len(), 3, "{plain}");
    assert!(
        lines[1].starts_with(&format!("key\tsigning\t{next}\tsince ")),
        "{plain}"
    );
    assert!(
        lines[2].starts_with(&format!("key\tretired\t{old}\tpublished_until ")),
        "{plain}"
    );
}

#[test]
fn a_missing_table_names_the_table_the_region_and_the_fix() {
    require_emulator();
    let out = admin()
        .args(["--table", "no-such-table", "connector", "list"])
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    for needle in [
        "\"no-such-table\"",
        "us-east-1",
        "--table",
        "TABLE_NAME",
        "TableName",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

/// Writes `item` as it is, as an older version of the code would have.
async fn put_item(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    item: Vec<(&'static str, aws_sdk_dynamodb::types::AttributeValue)>,
) {
    let mut req = ddb.put_item().table_name(table);
    for (k, v) in item {
        req = req.item(k, v);
    }
    req.send().await.unwrap();
}

/// A device token item from before sealing: its key in plain.
fn legacy_token(
    serial: &str,
    token: &str,
    key: &str,
) -> Vec<(&'static str, aws_sdk_dynamodb::types::AttributeValue)> {
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    let s = |v: &str| Av::S(v.to_string());
    vec![
        ("pk", s(&format!("DEVICE#{serial}"))),
        ("sk", s(&format!("TOKEN#c1#{token}"))),
        ("token_id", s(token)),
        ("device", s(serial)),
        ("connector", s("c1")),
        ("key", s(key)),
        ("created_at", Av::N("1".into())),
    ]
}

/// `OLD-1`'s token `t1` holds its key sealed, no longer in plain.
async fn sealed_in_place(ddb: &aws_sdk_dynamodb::Client, table: &str) {
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    let s = |v: &str| Av::S(v.to_string());
    let raw = ddb
        .get_item()
        .table_name(table)
        .key("pk", s("DEVICE#OLD-1"))
        .key("sk", s("TOKEN#c1#t1"))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(!raw.contains_key("key"), "the plain key is gone");
    assert!(raw.contains_key("key_sealed"));
    assert_eq!(
        raw["key_sha256"].as_s().unwrap(),
        &endpoint_core::secret::sha256_hex(b"plain-legacy-key")
    );
}

/// `migrate` seals device token keys stored in plain text (as before sealing existed), is
/// idempotent, and afterwards a plain key is refused even if someone writes one.
#[tokio::test]
async fn migrate_seals_plain_device_keys_and_then_refuses_them() {
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    use endpoint_core::ports::DeviceStore;
    require_emulator();
    let cli = Cli {
        table: format!(
            "mig-{}",
            endpoint_core::ports::random_alnum(&SystemRandom, 10)
        ),
    };
    // A table from before sealing: no data key.
    let out = admin()
        .env_remove("SEALING_KEY_ID")
        .args(["--table", &cli.table, "init"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let ddb = aws_sdk_dynamodb::Client::new(&load_config().await);
    let put = |item| put_item(&ddb, &cli.table, item);
    let s = |v: &str| Av::S(v.to_string());
    put(vec![
        ("pk", s("DEVICE#OLD-1")),
        ("sk", s("DEVICE")),
        ("kind", s("DEVICE")),
        ("identifier", s("OLD-1")),
        ("name", s("old")),
        ("created_at", Av::N("1".into())),
    ])
    .await;
    put(legacy_token("OLD-1", "t1", "plain-legacy-key")).await;

    let report = cli.json(&["migrate"]);
    assert_eq!(report["data_key_created"], true);
    assert_eq!(report["sealed"], 1);
    assert_eq!(cli.json(&["migrate"])["sealed"], 0, "idempotent");

    sealed_in_place(&ddb, &cli.table).await;
    // The sealed key opens to the same key.
    let store = cli.store().await;
    let now = SystemClock.now();
    let d = store
        .device_with_tokens("OLD-1", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.tokens.len(), 1);
    assert_eq!(d.tokens[0].key.expose(), "plain-legacy-key");
    // A plain key written after the migration is refused.
    put(legacy_token("OLD-1", "t2", "planted-key")).await;
    let d = cli
        .store()
        .await
        .device_with_tokens("OLD-1", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        d.tokens.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["t1"]
    );
    // The migration is in the audit trail.
    let events = cli.json(&["audit", "list"]);
    assert_eq!(events["events"][0]["code"], "ES208I");
}

/// The approval of a re-enrollment is a single-use enrollment token bound to the serial.
fn approvals(cli: &Cli, c: &str) {
    let approval = cli.json(&[
        "device",
        "allow-reenroll",
        "SER-9",
        "--connector",
        c,
        "--for",
        "15m",
    ]);
    assert!(approval["expires_at"].as_i64().unwrap() > SystemClock.now() + 800);
    assert_eq!(approval["key"].as_str().map(str::len), Some(60));
    let bound = cli.json(&["enrollment-token", "show", approval["id"].as_str().unwrap()]);
    assert_eq!(
        (&bound["serial"], &bound["max_uses"]),
        (&json!("SER-9"), &json!(1))
    );
    let plain = cli.ok(&["device", "allow-reenroll", "SER-9", "--connector", c]);
    assert_eq!(plain.len(), 60, "plain output: the key");
    assert!(cli
        .fails(&["enrollment-token", "show", "nope"])
        .contains("not found"));
}

/// Lock and unlock `SHOW-1`: shown by `device show`, audited.
fn lock_and_unlock(cli: &Cli) {
    let locked = cli.json(&[
        "device",
        "lock",
        "SHOW-1",
        "--for",
        "12h",
        "--reason",
        "lost laptop",
    ]);
    let until = locked["lock"]["until"].as_i64().unwrap();
    assert!(
        (until - SystemClock.now() - 12 * 3600).abs() < 60,
        "{locked}"
    );
    let shown = cli.json(&["device", "show", "SHOW-1"]);
    assert_eq!(shown["lock"]["reason"], "lost laptop");
    assert_eq!(shown["lock"]["held"], true);
    cli.ok(&["device", "lock", "SHOW-1"]);
    assert_eq!(
        cli.json(&["device", "show", "SHOW-1"])["lock"]["until"],
        Value::Null
    );
    assert_eq!(cli.ok(&["device", "unlock", "SHOW-1"]), "unlocked");
    assert_eq!(cli.json(&["device", "show", "SHOW-1"])["lock"], Value::Null);
    assert!(cli
        .fails(&["device", "lock", "NOBODY"])
        .contains("not found"));
    let lock_events = cli.json(&["audit", "list", "--device", "SHOW-1"]);
    let mut lock_codes: Vec<&str> = lock_events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    lock_codes.sort();
    assert_eq!(
        lock_codes,
        ["ES005I", "ES009I", "ES009I", "ES010I"],
        "{lock_events}"
    );
}

/// Connector policy and the CLI's new commands: set-reenroll, allow-reenroll, token list.
#[test]
fn reenroll_policy_and_token_commands() {
    let cli = Cli::new();
    let c = cli.ok(&["connector", "create", "--name", "p"]);
    assert_eq!(cli.json(&["connector", "show", &c])["reenroll"], "approve");
    assert_eq!(
        cli.json(&["connector", "set-reenroll", &c, "open"])["reenroll"],
        "open"
    );
    assert!(
        cli.run(&["connector", "set-reenroll", &c, "sometimes"])
            .status
            .code()
            == Some(2)
    );
    let t = cli.json(&[
        "enrollment-token",
        "create",
        "--connector",
        &c,
        "--expires",
        "1h",
        "--max-uses",
        "3",
    ]);
    assert_eq!(t["max_uses"], 3);
    let list = cli.json(&["enrollment-token", "list"]);
    assert_eq!(list["tokens"][0]["state"], "active");
    assert!(!list.to_string().contains(t["key"].as_str().unwrap()));
    approvals(&cli, &c);
    // Reading a device needs no key material: `device show` works without the sealing key.
    cli.ok(&[
        "device",
        "enroll",
        "--connector",
        &c,
        "--serial",
        "SHOW-1",
        "--name",
        "n",
    ]);
    let out = admin()
        .env_remove("SEALING_KEY_ID")
        .args(["--table", &cli.table, "device", "show", "SHOW-1", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["tokens"][0]["connector"], c.as_str());
    assert_eq!(shown["lock"], Value::Null);
    lock_and_unlock(&cli);
    // Operator changes are audited.
    let events = cli.json(&["audit", "list", "--connector", &c]);
    let mut codes: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    // Records of one second have no order among themselves.
    codes.sort();
    assert_eq!(
        codes,
        ["ES003I", "ES003I", "ES005I", "ES201I", "ES203I", "ES204I"],
        "{events}"
    );
    // The operator is the IAM principal of the credentials (STS), not a name one types.
    for e in events["events"].as_array().unwrap() {
        let actor = e["actor"].as_str().unwrap();
        assert!(actor.starts_with("operator:arn:aws:"), "{actor}");
    }
}

/// An operator with the table's name alone (no `SEALING_KEY_ID`): enrolling uses the existing
/// data key, and `sealing rotate` makes the next one under the KMS key the current one names,
/// re-seals every device key (progress on stderr) and retires the old key.
#[test]
fn the_table_name_alone_enrolls_and_rotates_the_data_key() {
    let cli = Cli::new();
    let c = cli.ok(&["connector", "create", "--name", "keyless"]);
    let keyless = |args: &[&str]| {
        admin()
            .env_remove("SEALING_KEY_ID")
            .args(["--table", &cli.table])
            .args(args)
            .arg("--json")
            .output()
            .unwrap()
    };
    for serial in ["KEYLESS-1", "KEYLESS-2", "KEYLESS-3"] {
        let out = keyless(&[
            "device",
            "enroll",
            "--connector",
            &c,
            "--serial",
            serial,
            "--name",
            "n",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = keyless(&["sealing", "rotate", "--page", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report,
        json!({"generation": 1, "devices": 3, "resealed": 3, "resumed": false})
    );
    let progress = String::from_utf8_lossy(&out.stderr);
    assert_eq!(progress.lines().count(), 2, "one line per page: {progress}");
    // Again: nothing left to re-seal under the next generation.
    let again: Value = serde_json::from_slice(&keyless(&["sealing", "rotate"]).stdout).unwrap();
    assert_eq!(
        (&again["generation"], &again["resealed"]),
        (&json!(2), &json!(3))
    );
    // Both rotations are audited (records of one second have no order among themselves).
    let events = cli.json(&["audit", "list"]);
    let rotations = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["code"] == "ES211I")
        .count();
    assert_eq!(rotations, 2, "{events}");
    // The devices keep their tokens (that they still open is `aws::sealing`'s test).
    let shown = cli.json(&["device", "show", "KEYLESS-2"]);
    assert_eq!(shown["tokens"].as_array().map(Vec::len), Some(1));
}
