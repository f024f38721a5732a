//! Posture policies with the real binary: every rule kind, its usage errors (exit 2) and
//! refusals (exit 1, one line, a CEL error with its position), versions that stages follow,
//! the dry run on a file and on stdin, and deletion refused while a stage uses a policy.

use crate::{admin, output_of, Cli};

const MAC_BAD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/facts/macos-non-compliant.json"
);

/// One rule of every kind, each a new version; answers the policy as shown.
fn add_every_kind(cli: &Cli, policy: &str) -> serde_json::Value {
    for rule in [
        &["os-family", "--allow", "mac_os,windows"][..],
        &[
            "os-version",
            "--family",
            "mac_os",
            "--min",
            "14.4",
            "--enforce",
            "grace:72h",
        ],
        &[
            "disk-encryption",
            "--scope",
            "all",
            "--title",
            "Every disk encrypted",
        ],
        &["firewall", "--enforce", "warn", "--unknown", "pass"],
        &["software", "--name", "osquery", "--min-version", "5.10"],
        &["process", "--name", "osqueryd", "--enforce", "audit"],
        &["cel", "--expr", "version_at_least(facts.os.version, '14')"],
    ] {
        let mut args = vec!["policy", "add-rule", policy];
        args.extend_from_slice(rule);
        let id = cli.ok(&args);
        assert!(
            !id.is_empty() && !id.contains(char::is_whitespace),
            "{rule:?}: {id}"
        );
    }
    let p = cli.json(&["policy", "show", policy]);
    assert_eq!(p["version"], 8);
    assert_eq!(p["max_facts_age"], 43_200);
    assert_eq!(p["rules"].as_array().unwrap().len(), 7);
    assert_eq!(p["rules"][1]["enforcement"], "grace:3d");
    assert_eq!(p["rules"][2]["title"], "Every disk encrypted");
    assert_eq!(p["rules"][3]["unknown"], "pass");
    p
}

/// Usage errors exit 2; refusals exit 1 with one line.
fn usage_errors_and_refusals(cli: &Cli, policy: &str) {
    for args in [
        &[
            "policy",
            "add-rule",
            policy,
            "os-version",
            "--family",
            "mac_os",
        ][..],
        &[
            "policy",
            "add-rule",
            policy,
            "firewall",
            "--enforce",
            "sometimes",
        ],
        &["policy", "add-rule", policy, "teleport"],
        &["policy", "create"],
    ] {
        assert_eq!(cli.run(args).status.code(), Some(2), "{args:?}");
    }
    let err = cli.fails(&[
        "policy",
        "add-rule",
        policy,
        "cel",
        "--expr",
        "facts.os.version ==",
    ]);
    assert!(err.contains("line 1, column"), "{err}");
    let err = cli.fails(&[
        "policy",
        "add-rule",
        policy,
        "os-family",
        "--allow",
        "macos",
    ]);
    assert!(err.contains("unknown OS family \"macos\""), "{err}");
}

/// The dry run, on a file and on stdin: every rule's result with the value seen; nothing is
/// stored.
fn dry_runs(cli: &Cli, policy: &str) {
    let tested = cli.json(&["policy", "test", policy, "--facts", MAC_BAD]);
    let results: Vec<&str> = tested["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(
        results,
        ["pass", "fail", "fail", "fail", "pass", "pass", "fail"]
    );
    assert_eq!(tested["rules"][1]["seen"], "13.6.9");
    assert_eq!(tested["status"], "non_compliant");
    let piped = output_of(
        admin().args([
            "--table", &cli.table, "policy", "test", policy, "--facts", "-", "--json",
        ]),
        Some(std::fs::read(MAC_BAD).unwrap()),
    );
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    let piped: serde_json::Value = serde_json::from_slice(&piped.stdout).unwrap();
    // The same verdicts and values seen (`failing_since` is each run's own clock).
    let verdicts = |t: &serde_json::Value| -> Vec<(String, String)> {
        t["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["result"].to_string(), r["seen"].to_string()))
            .collect()
    };
    assert_eq!(verdicts(&piped), verdicts(&tested));
    // Nothing was stored by the dry run.
    assert_eq!(
        cli.json(&["device", "list", "--non-compliant"])["devices"],
        serde_json::json!([])
    );
}

#[test]
fn policies_rules_versions_stages_and_the_dry_run() {
    let cli = Cli::new();
    let key = cli.ok(&["key", "create"]);
    let connector = cli.ok(&[
        "connector",
        "create",
        "--name",
        "c",
        "--challenge-key",
        &key,
    ]);
    let policy = cli.ok(&[
        "policy",
        "create",
        "--name",
        "desktops",
        "--max-facts-age",
        "12h",
    ]);
    let stage = cli.ok(&[
        "stage",
        "create",
        "--connector",
        &connector,
        "--mode",
        "required",
        "--policy",
        &policy,
    ]);
    let shown = cli.json(&["stage", "show", &stage]);
    assert_eq!(shown["policy"]["id"], policy.as_str());
    assert_eq!(shown["policy"]["version"], 1);

    let p = add_every_kind(&cli, &policy);
    // Every stage using the policy follows its version.
    assert_eq!(cli.json(&["stage", "show", &stage])["policy"]["version"], 8);
    assert!(cli.json(&["policy", "list"])["policies"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"] == policy.as_str()));

    usage_errors_and_refusals(&cli, &policy);
    dry_runs(&cli, &policy);

    // Removing a rule is a new version; deleting is refused while a stage uses the policy.
    let rule = p["rules"][6]["id"].as_str().unwrap().to_string();
    assert_eq!(
        cli.json(&["policy", "remove-rule", &policy, &rule])["version"],
        9
    );
    cli.fails(&["policy", "remove-rule", &policy, &rule]);
    let err = cli.fails(&["policy", "delete", &policy]);
    assert!(err.contains(&stage), "{err}");
    let unset = cli.json(&["stage", "set-policy", &stage, "none"]);
    assert!(unset["policy"].is_null());
    cli.ok(&["policy", "delete", &policy]);
    cli.fails(&["policy", "show", &policy]);
}

/// `policy test --facts -` with `doc` on stdin.
fn test_on_stdin(cli: &Cli, policy: &str, doc: &serde_json::Value) -> serde_json::Value {
    let out = output_of(
        admin().args([
            "--table", &cli.table, "policy", "test", policy, "--facts", "-", "--json",
        ]),
        Some(doc.to_string().into_bytes()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn screen_lock_rules_come_from_the_kind_alone_and_read_the_vendor_namespaces() {
    let cli = Cli::new();
    // The subcommand exists because the kind does (nothing in the CLI names it).
    let help = cli.ok(&["policy", "add-rule", "--help"]);
    assert!(help.contains("screen-lock"), "{help}");
    assert!(help.contains("screen_lock_enabled()"), "{help}");
    let policy = cli.ok(&["policy", "create", "--name", "phones"]);
    cli.ok(&[
        "policy",
        "add-rule",
        &policy,
        "screen-lock",
        "--enforce",
        "warn",
    ]);
    cli.ok(&[
        "policy",
        "add-rule",
        &policy,
        "cel",
        "--expr",
        "screen_lock_enabled()",
    ]);
    let bad = [
        "policy",
        "add-rule",
        &policy,
        "screen-lock",
        "--scope",
        "all",
    ];
    assert_eq!(cli.run(&bad).status.code(), Some(2));
    let p = cli.json(&["policy", "show", &policy]);
    assert_eq!(p["rules"][0]["kind"], "screen-lock");
    assert_eq!(p["rules"][0]["title"], "Screen lock turned on");
    assert_eq!(p["rules"][0]["enforcement"], "warn");

    let off = serde_json::json!({
        "os": {"family": "mac_os", "version": "14.4"},
        "vendor": {
            "goauthentik.io/platform": {"agent_version": "0.8.0"},
            "fleetdm.com": {"screen_lock_enabled": false}
        }
    });
    let tested = test_on_stdin(&cli, &policy, &off);
    assert_eq!(tested["rules"][0]["result"], "fail");
    assert_eq!(tested["rules"][0]["seen"], "off (fleetdm.com)");
    assert_eq!(tested["rules"][1]["result"], "fail");
    let mut on = off.clone();
    on["vendor"]["fleetdm.com"]["screen_lock_enabled"] = true.into();
    let tested = test_on_stdin(&cli, &policy, &on);
    assert_eq!(tested["rules"][0]["result"], "pass");
    assert_eq!(tested["rules"][1]["result"], "pass");
    assert_eq!(tested["status"], "compliant");
}
