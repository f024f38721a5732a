//! Device compliance over the local stack: policies made with the real `endpoint-admin`, facts
//! sent through `check_in/` as the simulator sends them, logins over HTTP denied with the
//! contract's `compliance` object and passed once the device is fixed; a policy change makes the
//! device unknown until `policy reevaluate` (paged, with a page size of one) evaluates its stored
//! facts again.

use std::process::Command;

use endpoint_agent::State;
use endpoint_core::model::StageMode;
use endpoint_e2e::{now, Stack};
use serde_json::Value;

const MAC_OK: &str = include_str!("../../../examples/facts/macos-compliant.json");
const MAC_BAD: &str = include_str!("../../../examples/facts/macos-non-compliant.json");
const MSG_NON_COMPLIANT: &str = "This device does not meet the requirements to sign in.";

/// The stack's `endpoint-admin`: its exit code, stdout and stderr.
fn admin_raw(args: &[&str]) -> (i32, String, String) {
    let bin = std::env::var("STACK_ADMIN").expect("run through make test (scripts/stack-lib.sh)");
    let out = Command::new(bin).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A policy of five rules (a CEL syntax error refused, with its position); answers its id.
fn five_rule_policy(s: &Stack) -> String {
    let policy = s.admin_json(&["policy", "create", "--name", "e2e desktops"]);
    let policy = policy["id"].as_str().unwrap().to_string();
    for rule in [
        &["os-version", "--family", "mac_os", "--min", "14.4"][..],
        &["disk-encryption"],
        &["firewall", "--enforce", "grace:72h"],
        &["software", "--name", "osquery", "--min-version", "5.10"],
        &[
            "cel",
            "--expr",
            "process_running('osqueryd') && facts.hardware.manufacturer == 'Apple Inc.'",
        ],
    ] {
        let mut args = vec!["policy", "add-rule", &policy];
        args.extend_from_slice(rule);
        assert!(s.admin_json(&args)["id"].is_string());
    }
    // A CEL syntax error is refused at add-rule, with its position.
    let (code, _, stderr) = admin_raw(&[
        "policy",
        "add-rule",
        &policy,
        "cel",
        "--expr",
        "facts.os.version ==",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("line 1, column"), "{stderr}");
    policy
}

/// Non-compliant facts: the login is denied with each failing rule and its remediation; the
/// firewall rule is in its grace period, a warning with a deadline. The relying party reads the
/// same object from the plan.
fn denied_with_remediation(s: &Stack, stage: &str, device: &State, policy: &str) {
    endpoint_agent::check_in(device, &s.api, MAC_BAD.as_bytes()).unwrap();
    let (plan, body) = s.login(stage, device);
    assert_eq!(body["component"], "ak-stage-access-denied", "{body}");
    assert_eq!(body["error_message"], MSG_NON_COMPLIANT);
    let compliance = &body["compliance"];
    assert_eq!(compliance["status"], "non_compliant");
    assert_eq!(compliance["policy"], policy);
    let failed: Vec<&str> = compliance["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed,
        ["macOS 14.4 or later", "Disk encryption on the system disk"]
    );
    assert!(compliance["failed"][0]["remediation"]
        .as_str()
        .unwrap()
        .contains("Update macOS"));
    let warning = &compliance["warnings"][0];
    assert_eq!(warning["title"], "Firewall turned on");
    assert_eq!(warning["enforcement"], "grace:3d");
    assert!(warning["deadline"].as_i64().unwrap() > now() + 71 * 3600);
    // The relying party reads the same object from the plan.
    let read = s.plan(&plan);
    assert_eq!(read["status"], "denied");
    assert_eq!(read["compliance"], *compliance);
}

/// The operator sees the device non-compliant, and the dry run on its stored facts.
fn the_operator_sees_it(s: &Stack, serial: &str, policy: &str) {
    let listed = s.admin_json(&["device", "list", "--non-compliant", "--policy", policy]);
    assert!(listed["devices"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["identifier"] == serial));
    let shown = s.admin_json(&["device", "show", serial]);
    assert_eq!(shown["compliance"][0]["status"], "non_compliant");
    let tested = s.admin_json(&["policy", "test", policy, "--device", serial]);
    let results: Vec<&str> = tested["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["fail", "fail", "fail", "pass", "pass"]);
    assert_eq!(tested["rules"][0]["seen"], "13.6.9");
}

/// The policy changes: unknown (denied) until the stored facts are evaluated again, paged.
fn policy_change_and_reevaluation(s: &Stack, stage: &str, device: &State, policy: &str) {
    let bumped = s.admin_json(&[
        "policy", "add-rule", policy, "process", "--name", "ak-agent",
    ]);
    assert!(bumped["id"].is_string());
    let (_, body) = s.login(stage, device);
    assert_eq!(body["compliance"]["status"], "unknown", "{body}");
    let (code, stdout, stderr) =
        admin_raw(&["policy", "reevaluate", policy, "--page-size", "1", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    // One progress line per page of one device: every device of the table was looked at.
    let answer: Value = serde_json::from_str(&stdout).unwrap();
    let pages = stderr
        .lines()
        .filter(|l| l.contains("devices looked at"))
        .count();
    assert_eq!(
        pages,
        answer["devices"].as_u64().unwrap() as usize,
        "{stderr}"
    );
    assert!(pages >= 2, "paged: {stderr}");
    let (_, body) = s.login(stage, device);
    assert_eq!(body["component"], "xak-flow-redirect", "{body}");
}

#[tokio::test]
async fn check_in_deny_with_remediation_fix_pass_then_policy_change_and_reevaluation() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    let serial = format!("E2E-COMPLIANCE-{}", now());
    let device = s.enrolled(&setup.connector, &serial).await;

    let policy = five_rule_policy(&s);
    let stage = s.admin_json(&["stage", "set-policy", &setup.stage, &policy]);
    assert_eq!(stage["policy"]["version"], 6);

    denied_with_remediation(&s, &setup.stage, &device, &policy);
    the_operator_sees_it(&s, &serial, &policy);

    // Fixed: the next check-in lets the same login pass.
    endpoint_agent::check_in(&device, &s.api, MAC_OK.as_bytes()).unwrap();
    let (plan, body) = s.login(&setup.stage, &device);
    assert_eq!(body["component"], "xak-flow-redirect", "{body}");
    assert_eq!(s.plan(&plan)["compliance"]["status"], "compliant");

    policy_change_and_reevaluation(&s, &setup.stage, &device, &policy);
}
