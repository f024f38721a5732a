//! Device compliance in the core, over the in-memory store and a fixed clock: every rule kind on
//! the shipped facts fixtures, every enforcement, unknown handling, grace clocks, facts age,
//! policy versions, CEL errors and cost bounds, and the stage's decision with its denial,
//! audit records and plan. The same rules over DynamoDB and HTTP: tests/tests/e2e/compliance.rs.

use std::sync::Arc;

use crate::common::{Fx, T0};
use endpoint_core::agent;
use endpoint_core::audit::{AuditKind, AuditQuery};
use endpoint_core::compliance::admin::{
    add_rule, create_policy, reevaluate, remove_rule, set_stage_policy, test_document,
};
use endpoint_core::compliance::assess::{admits, assess, MSG_NON_COMPLIANT};
use endpoint_core::compliance::cel;
use endpoint_core::compliance::evaluate::evaluate;
use endpoint_core::compliance::rules::NewRule;
use endpoint_core::facts::{self, Facts};
use endpoint_core::model::{
    ComplianceStatus, DiskScope, Enforcement, Policy, PolicyRef, RuleKind, StageMode, UnknownAs,
    Verdict, WhenUnknown,
};
use endpoint_core::ports::{AuditLog, DeviceStore, Directory};
use endpoint_core::stage::Outcome;
use serde_json::{json, Value};

pub(crate) const MAC_OK: &str = include_str!("../../../examples/facts/macos-compliant.json");
pub(crate) const MAC_BAD: &str = include_str!("../../../examples/facts/macos-non-compliant.json");
const WIN_OK: &str = include_str!("../../../examples/facts/windows-compliant.json");
const WIN_BAD: &str = include_str!("../../../examples/facts/windows-non-compliant.json");
const LINUX_OK: &str = include_str!("../../../examples/facts/linux-compliant.json");
const LINUX_BAD: &str = include_str!("../../../examples/facts/linux-non-compliant.json");

fn doc(text: &str) -> Arc<Facts> {
    Arc::new(facts::parse(text.as_bytes()).expect("fixtures are facts"))
}

fn rule(kind: RuleKind) -> NewRule {
    NewRule {
        kind,
        title: None,
        remediation: None,
        enforce: Enforcement::Block,
        unknown: UnknownAs::Fail,
    }
}

/// A policy (stored nowhere) with these rules.
fn policy_of(rules: Vec<NewRule>) -> Policy {
    Policy {
        id: "pol".into(),
        name: "test".into(),
        version: 1,
        max_facts_age: 86_400,
        when_unknown: WhenUnknown::Deny,
        rules: rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                endpoint_core::compliance::rules::build(format!("r{i}"), r).expect("valid rule")
            })
            .collect(),
        created_at: T0,
    }
}

/// The desktop baseline every fixture is judged by: one rule per kind.
fn baseline() -> Vec<NewRule> {
    vec![
        rule(RuleKind::OsFamily {
            allow: vec!["mac_os".into(), "windows".into(), "linux".into()],
        }),
        rule(RuleKind::OsVersion {
            family: "mac_os".into(),
            min: "14.4".into(),
        }),
        rule(RuleKind::OsVersion {
            family: "windows".into(),
            min: "10.0.22631".into(),
        }),
        rule(RuleKind::OsVersion {
            family: "linux".into(),
            min: "24.04".into(),
        }),
        rule(RuleKind::DiskEncryption {
            scope: DiskScope::System,
        }),
        rule(RuleKind::Firewall),
        rule(RuleKind::Software {
            name: "osquery".into(),
            min_version: Some("5.10".into()),
        }),
        rule(RuleKind::Process {
            name: "osqueryd".into(),
        }),
        rule(RuleKind::Cel {
            expr: "facts.os.family != 'windows' || process_running('MsMpEng')".into(),
        }),
    ]
}

#[test]
fn the_fixtures_are_judged_rule_by_rule() {
    let p = policy_of(baseline());
    for (name, text, failing) in [
        ("macos-compliant", MAC_OK, vec![]),
        ("macos-non-compliant", MAC_BAD, vec!["r1", "r4", "r5"]),
        ("windows-compliant", WIN_OK, vec![]),
        (
            "windows-non-compliant",
            WIN_BAD,
            vec!["r2", "r4", "r5", "r8"],
        ),
        ("linux-compliant", LINUX_OK, vec![]),
        ("linux-non-compliant", LINUX_BAD, vec!["r3", "r4", "r5"]),
    ] {
        let e = evaluate(&p, &doc(text), false, T0, T0, None);
        let failed: Vec<&str> = e
            .rules
            .iter()
            .filter(|r| r.verdict != Verdict::Pass)
            .map(|r| r.rule.as_str())
            .collect();
        assert_eq!(failed, failing, "{name}: {:#?}", e.rules);
        let want = if failing.is_empty() {
            ComplianceStatus::Compliant
        } else {
            ComplianceStatus::NonCompliant
        };
        assert_eq!(e.status, want, "{name}");
    }
    // What was seen is shown: the macOS version that is too old.
    let e = evaluate(&p, &doc(MAC_BAD), false, T0, T0, None);
    assert_eq!(e.rules[1].seen.as_deref(), Some("13.6.9"));
}

fn reference(p: &Policy) -> PolicyRef {
    PolicyRef {
        id: p.id.clone(),
        version: p.version,
        when_unknown: p.when_unknown,
    }
}

#[test]
fn every_enforcement_shows_or_fails_as_it_says_with_grace_by_the_clock() {
    let firewall = |enforce| NewRule {
        enforce,
        ..rule(RuleKind::Firewall)
    };
    let off = doc(MAC_BAD);
    for (enforce, status, failed, warnings) in [
        (Enforcement::Block, ComplianceStatus::NonCompliant, 1, 0),
        (Enforcement::Warn, ComplianceStatus::Compliant, 0, 1),
        (Enforcement::Audit, ComplianceStatus::Compliant, 0, 0),
        (Enforcement::Grace(3600), ComplianceStatus::Compliant, 0, 1),
    ] {
        let p = policy_of(vec![firewall(enforce)]);
        let e = evaluate(&p, &off, false, T0, T0, None);
        let view = assess(&reference(&p), &[e], T0 + 10);
        assert_eq!(
            (view.status, view.failed.len(), view.warnings.len()),
            (status, failed, warnings),
            "{enforce:?}"
        );
    }
    // Grace: a warning with its deadline until it runs out, then a block without a check-in.
    let p = policy_of(vec![firewall(Enforcement::Grace(3600))]);
    let e = evaluate(&p, &off, false, T0, T0, None);
    let view = assess(&reference(&p), std::slice::from_ref(&e), T0 + 3599);
    assert_eq!(view.warnings[0].deadline, Some(T0 + 3600));
    assert_eq!(view.warnings[0].rule.enforcement, "grace:1h");
    let view = assess(&reference(&p), std::slice::from_ref(&e), T0 + 3600);
    assert_eq!(view.status, ComplianceStatus::NonCompliant);
    assert_eq!(view.failed[0].title, "Firewall turned on");
    // The clock runs from the first failure: a later failing evaluation keeps it, a pass resets it.
    let later = evaluate(&p, &off, false, T0 + 100, T0 + 100, Some(&e));
    assert_eq!(later.rules[0].failing_since, Some(T0));
    let fixed = evaluate(&p, &doc(MAC_OK), false, T0 + 200, T0 + 200, Some(&later));
    assert_eq!(fixed.rules[0].failing_since, None);
    let again = evaluate(&p, &off, false, T0 + 300, T0 + 300, Some(&fixed));
    assert_eq!(again.rules[0].failing_since, Some(T0 + 300));
}

#[test]
fn unknown_facts_fail_or_pass_as_the_rule_says_and_old_facts_or_versions_are_unknown() {
    let nothing = Arc::new(Facts::from(json!({})));
    for (unknown, status) in [
        (UnknownAs::Fail, ComplianceStatus::NonCompliant),
        (UnknownAs::Pass, ComplianceStatus::Compliant),
    ] {
        let p = policy_of(vec![NewRule {
            unknown,
            ..rule(RuleKind::Firewall)
        }]);
        let e = evaluate(&p, &nothing, false, T0, T0, None);
        assert_eq!(e.rules[0].verdict, Verdict::Unknown);
        assert_eq!(assess(&reference(&p), &[e], T0).status, status);
    }
    let p = policy_of(vec![rule(RuleKind::Firewall)]);
    let e = evaluate(&p, &doc(MAC_OK), false, T0, T0, None);
    let now_ok = assess(&reference(&p), std::slice::from_ref(&e), T0 + 86_399);
    assert_eq!(now_ok.status, ComplianceStatus::Compliant);
    // Facts older than the maximum age count as no facts.
    let stale = assess(&reference(&p), std::slice::from_ref(&e), T0 + 86_400);
    assert_eq!(stale.status, ComplianceStatus::Unknown);
    assert_eq!(stale.facts_at, Some(T0));
    // An evaluation of another version of the policy is no evaluation of this one.
    let newer = PolicyRef {
        version: 2,
        ..reference(&p)
    };
    assert_eq!(assess(&newer, &[e], T0).status, ComplianceStatus::Unknown);
    assert_eq!(assess(&newer, &[], T0).evaluated_at, None);
    // A required stage admits unknown only with --when-unknown allow.
    let unknown = assess(&newer, &[], T0);
    assert!(!admits(&unknown, WhenUnknown::Deny));
    assert!(admits(&unknown, WhenUnknown::Allow));
}

#[test]
fn a_truncated_snapshot_makes_failing_list_rules_unknown_not_failing() {
    let p = policy_of(vec![
        rule(RuleKind::Software {
            name: "Tailscale".into(),
            min_version: None,
        }),
        rule(RuleKind::Firewall),
    ]);
    let e = evaluate(&p, &doc(MAC_BAD), true, T0, T0, None);
    assert_eq!(e.rules[0].verdict, Verdict::Unknown, "a list sent in part");
    assert_eq!(e.rules[1].verdict, Verdict::Fail, "not a list");
}

#[test]
fn cel_expressions_use_the_same_checks_and_errors_are_unknown() {
    let facts = doc(MAC_OK);
    let eval = |expr: &str| {
        let program = cel::compile(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        cel::evaluate(&program, &facts).pass
    };
    assert_eq!(
        eval("version_at_least(facts.os.version, '15.1')"),
        Some(true)
    );
    assert_eq!(eval("os_version_at_least('mac_os', '16')"), Some(false));
    assert_eq!(
        eval("disk_encrypted('system') && firewall_enabled()"),
        Some(true)
    );
    assert_eq!(
        eval("software_at_least('Google Chrome', '131')"),
        Some(true)
    );
    assert_eq!(eval("software_installed('Tailscale')"), Some(false));
    assert_eq!(eval("process_running('osqueryd')"), Some(true));
    assert_eq!(
        eval("facts.software.exists(s, s.name == 'Slack' && version_at_least(s.version, '4.40'))"),
        Some(true)
    );
    assert_eq!(
        eval("facts.hardware.manufacturer == 'Apple Inc.'"),
        Some(true)
    );
    // A field the device did not report, a wrong type, a function that cannot decide: unknown.
    assert_eq!(eval("facts.os.build == '24B91'"), None);
    assert_eq!(eval("facts.os.version"), None);
    // A non-boolean answer is unknown, and what is stored of it is short whatever it was.
    let whole = cel::evaluate(&cel::compile("facts.software").unwrap(), &facts);
    assert_eq!(whole.pass, None);
    assert!(whole.seen.len() < 100, "{}", whole.seen);
    assert_eq!(eval("version_at_least('Sonoma', '14')"), None);
    assert_eq!(eval("disk_encrypted('usb')"), None);
}

#[test]
fn cel_refuses_syntax_errors_with_their_position_and_costly_expressions() {
    let err = |expr: &str| match cel::compile(expr) {
        Ok(_) => panic!("{expr} was admitted"),
        Err(e) => e,
    };
    let e = err("facts.os.version ==");
    assert!(e.position.is_some(), "{e}");
    assert!(e.to_string().contains("line 1, column"), "{e}");
    let e = err("facts.os.family == 'mac_os' &&\n  (facts.disks.size() > ");
    assert_eq!(e.position.map(|p| p.0), Some(2), "{e}");
    // A comprehension inside another over a list of the document.
    let e = err("facts.software.all(s, facts.processes.exists(p, p.name == s.name))");
    assert!(e.message.contains("inside another"), "{e}");
    assert!(err(&"x".repeat(cel::MAX_EXPR_CHARS + 1))
        .message
        .contains("longer"));
    assert!(err("request.user == 'x'")
        .message
        .contains("only variable is facts"));
    let bulky = format!(
        "facts.software.exists(s, {})",
        (0..60)
            .map(|i| format!("s.name == 'p{i}'"))
            .collect::<Vec<_>>()
            .join(" || ")
    );
    assert!(err(&bulky).message.contains("estimated cost"), "bulky");
    assert!(err("   ").message.contains("empty"));
}

#[test]
fn a_list_longer_than_cel_sees_makes_false_unknown() {
    let mut processes: Vec<Value> = (0..cel::MAX_ITEMS + 5)
        .map(|i| json!({"id": i, "name": format!("/bin/p{i}")}))
        .collect();
    processes.push(json!({"id": 1, "name": "/usr/bin/late"}));
    let facts = Arc::new(Facts::from(json!({"processes": processes})));
    let program = cel::compile("facts.processes.exists(p, p.name == '/usr/bin/late')").unwrap();
    assert_eq!(cel::evaluate(&program, &facts).pass, None);
    let program = cel::compile("facts.processes.exists(p, p.name == '/bin/p1')").unwrap();
    assert_eq!(cel::evaluate(&program, &facts).pass, Some(true));
}

#[tokio::test]
async fn rules_are_validated_titled_and_versioned_with_every_stage_following() {
    let fx = Fx::new();
    let (_, stage) = fx
        .setup(StageMode::Required, Some(crate::common::KEY), true)
        .await;
    let p = create_policy(&fx.store, &fx.rng, T0, "desktops", None, WhenUnknown::Deny)
        .await
        .unwrap();
    set_stage_policy(&fx.store, &stage.id, Some(&p.id))
        .await
        .unwrap();
    for bad in [
        RuleKind::OsFamily { allow: vec![] },
        RuleKind::OsFamily {
            allow: vec!["macos".into()],
        },
        RuleKind::OsVersion {
            family: "mac_os".into(),
            min: "latest".into(),
        },
        RuleKind::Software {
            name: " ".into(),
            min_version: None,
        },
        RuleKind::Cel {
            expr: "facts.os ==".into(),
        },
    ] {
        let refused = add_rule(&fx.store, &fx.rng, &p.id, rule(bad.clone())).await;
        assert!(refused.is_err(), "{bad:?}");
    }
    let (p2, r) = add_rule(
        &fx.store,
        &fx.rng,
        &p.id,
        rule(RuleKind::OsVersion {
            family: "mac_os".into(),
            min: "14.4".into(),
        }),
    )
    .await
    .unwrap();
    assert_eq!(p2.version, 2);
    assert_eq!(r.title, "macOS 14.4 or later");
    assert!(r.remediation.contains("Update macOS to version 14.4"));
    let s = fx.store.get_stage(&stage.id).await.unwrap().unwrap();
    assert_eq!(s.policy.map(|p| p.version), Some(2));
    let p3 = remove_rule(&fx.store, &p.id, &r.id).await.unwrap();
    assert_eq!(p3.version, 3);
    assert!(remove_rule(&fx.store, &p.id, &r.id).await.is_err());
    // The dry run on a document stores nothing.
    let e = test_document(&p3, MAC_OK.as_bytes(), T0).unwrap();
    assert_eq!(e.status, ComplianceStatus::Compliant);
    assert!(fx.store.non_compliant(None).await.unwrap().is_empty());
}

/// A required stage with the baseline policy, its connector knowing the policy, and a device.
pub(crate) async fn required_stage_with_policy(
    fx: &Fx,
) -> (String, String, endpoint_core::secret::Secret) {
    let (connector, stage) = fx
        .setup(StageMode::Required, Some(crate::common::KEY), true)
        .await;
    let p = create_policy(&fx.store, &fx.rng, T0, "desktops", None, WhenUnknown::Deny)
        .await
        .unwrap();
    for r in baseline() {
        add_rule(&fx.store, &fx.rng, &p.id, r).await.unwrap();
    }
    set_stage_policy(&fx.store, &stage.id, Some(&p.id))
        .await
        .unwrap();
    let key = fx.enroll(&connector.id, "C02XK1JHJGH5").await;
    (stage.id, p.id, key)
}

pub(crate) async fn check_in(fx: &Fx, key: &endpoint_core::secret::Secret, facts: &str) {
    let auth = format!("Bearer+agent {}", key.expose());
    agent::check_in(&fx.store, &fx.env(), Some(&auth), facts.as_bytes())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_required_stage_denies_a_non_compliant_device_and_passes_it_once_fixed() {
    let fx = Fx::new();
    let (stage, policy, key) = required_stage_with_policy(&fx).await;
    // Never checked in: unknown, and a required stage denies unknown by default.
    let (_, outcome) = fx.login(&stage, "C02XK1JHJGH5", &key).await;
    let Outcome::Denied {
        message,
        compliance: Some(view),
        reason: Some(endpoint_core::model::DenialReason::NonCompliant),
    } = outcome
    else {
        panic!("expected a denial with compliance, got {outcome:?}");
    };
    assert_eq!(message, MSG_NON_COMPLIANT);
    assert_eq!(view.status, ComplianceStatus::Unknown);

    check_in(&fx, &key, MAC_BAD).await;
    let (plan, outcome) = fx.login(&stage, "C02XK1JHJGH5", &key).await;
    let Outcome::Denied {
        compliance: Some(view),
        ..
    } = &outcome
    else {
        panic!("expected a denial with compliance, got {outcome:?}");
    };
    assert_eq!(view.status, ComplianceStatus::NonCompliant);
    let titles: Vec<&str> = view.failed.iter().map(|f| f.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "macOS 14.4 or later",
            "Disk encryption on the system disk",
            "Firewall turned on"
        ]
    );
    assert!(view.failed.iter().all(|f| !f.remediation.is_empty()));
    // The plan keeps its compliance, and the denial answers again with it.
    assert_eq!(fx.plan_state(&plan).compliance.as_ref(), Some(view));
    assert_eq!(fx.get(&plan, None).await.unwrap(), outcome);
    let events = fx
        .store
        .audit_events(
            &AuditQuery {
                since: 0,
                device: None,
                connector: None,
                plan: None,
                limit: 1000,
                before: None,
            },
            T0 + 10,
        )
        .await
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.event == AuditKind::StageDenied
                && e.reason.as_deref() == Some("non_compliant"))
    );
    let changed: Vec<_> = events
        .iter()
        .filter(|e| e.event == AuditKind::DeviceComplianceChanged)
        .collect();
    assert_eq!(changed.len(), 1);
    assert!(changed[0]
        .reason
        .as_deref()
        .is_some_and(|r| r.contains("unknown -> non_compliant") && r.contains(&policy)));
    assert_eq!(
        fx.store.non_compliant(Some(&policy)).await.unwrap().len(),
        1
    );

    check_in(&fx, &key, MAC_OK).await;
    let (plan, outcome) = fx.login(&stage, "C02XK1JHJGH5", &key).await;
    assert_eq!(outcome, crate::common::passed());
    let kept = fx.plan_state(&plan).compliance.unwrap();
    assert_eq!(kept.status, ComplianceStatus::Compliant);
    assert!(fx.store.non_compliant(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_optional_stage_never_denies_for_compliance_and_unknown_may_be_allowed() {
    let fx = Fx::new();
    let (stage, policy, key) = required_stage_with_policy(&fx).await;
    check_in(&fx, &key, MAC_BAD).await;
    let mut s = fx.store.get_stage(&stage).await.unwrap().unwrap();
    s.mode = StageMode::Optional;
    fx.store.put_stage(&s).await.unwrap();
    let (plan, outcome) = fx.login(&stage, "C02XK1JHJGH5", &key).await;
    assert_eq!(outcome, crate::common::passed());
    let view = fx.plan_state(&plan).compliance.unwrap();
    assert_eq!(view.status, ComplianceStatus::NonCompliant);

    // Required again, the policy changed: unknown until a check-in or a re-evaluation...
    s.mode = StageMode::Required;
    fx.store.put_stage(&s).await.unwrap();
    remove_rule(&fx.store, &policy, "does-not-exist")
        .await
        .unwrap_err();
    let p = fx.store.get_policy(&policy).await.unwrap().unwrap();
    let firewall = p
        .rules
        .iter()
        .find(|r| r.kind == RuleKind::Firewall)
        .unwrap();
    remove_rule(&fx.store, &policy, &firewall.id).await.unwrap();
    let (_, outcome) = fx.login(&stage, "C02XK1JHJGH5", &key).await;
    assert!(
        matches!(outcome, Outcome::Denied { compliance: Some(ref v), .. } if v.status == ComplianceStatus::Unknown),
        "{outcome:?}"
    );
    // ... and with --when-unknown allow, unknown passes.
    let mut p = fx.store.get_policy(&policy).await.unwrap().unwrap();
    p.when_unknown = WhenUnknown::Allow;
    fx.store.put_policy(&p).await.unwrap();
    set_stage_policy(&fx.store, &stage, Some(&policy))
        .await
        .unwrap();
    let (_, outcome) = fx.login(&stage, "C02XK1JHJGH5", &key).await;
    assert_eq!(outcome, crate::common::passed());
}

/// Five devices of `connector` checked in, every other one compliant (DEV-0, 2, 4).
async fn five_devices(fx: &Fx, connector: &str) {
    for i in 0..5 {
        let serial = format!("DEV-{i}");
        let key = fx.enroll(connector, &serial).await;
        let auth = format!("Bearer+agent {}", key.expose());
        let facts = if i % 2 == 0 { MAC_OK } else { MAC_BAD };
        agent::check_in(&fx.store, &fx.env(), Some(&auth), facts.as_bytes())
            .await
            .unwrap();
    }
}

/// A change every device fails: the three compliant ones change status, each recorded once
/// with its evaluation; the two non-compliant ones do not change.
async fn a_change_every_device_fails(fx: &Fx, policy: &str) {
    assert_eq!(changes(fx).await, 0, "no status changed above");
    let never = rule(RuleKind::Process {
        name: "never-running".into(),
    });
    add_rule(&fx.store, &fx.rng, policy, never).await.unwrap();
    reevaluate(&fx.store, &fx.clock, &fx.rng, policy, 10, None, |_| {})
        .await
        .unwrap();
    assert_eq!(
        changes(fx).await,
        3,
        "DEV-0, DEV-2 and DEV-4 became non-compliant"
    );
}

#[tokio::test]
async fn reevaluation_pages_through_every_device_and_goes_on_after_an_interruption() {
    let fx = Fx::new();
    let (stage, policy, _) = required_stage_with_policy(&fx).await;
    let connector = fx.store.get_stage(&stage).await.unwrap().unwrap().connector;
    five_devices(&fx, &connector).await;
    // The policy changes: every stored evaluation is of an older version now.
    let p = fx.store.get_policy(&policy).await.unwrap().unwrap();
    remove_rule(&fx.store, &policy, &p.rules[0].id)
        .await
        .unwrap();
    let current = fx
        .store
        .get_stage(&stage)
        .await
        .unwrap()
        .unwrap()
        .policy
        .unwrap();
    let (_, stored) = fx.store.device_profile("DEV-1", T0).await.unwrap().unwrap();
    assert_eq!(
        assess(&current, &stored, T0).status,
        ComplianceStatus::Unknown
    );

    // An interrupted run (stopped after its first page of two)...
    let mut pages = Vec::new();
    let first = reevaluate(&fx.store, &fx.clock, &fx.rng, &policy, 2, None, |p| {
        pages.push(p.clone())
    })
    .await
    .unwrap();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert_eq!(first.devices, 6);
    assert_eq!(
        first.evaluated, 5,
        "the device without facts has nothing to evaluate"
    );
    // ... and a run that goes on after a serial does only the rest.
    let rest = reevaluate(
        &fx.store,
        &fx.clock,
        &fx.rng,
        &policy,
        1,
        Some("DEV-2".into()),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(rest.devices, 2, "DEV-3 and DEV-4");
    for (serial, want) in [
        ("DEV-0", ComplianceStatus::Compliant),
        ("DEV-1", ComplianceStatus::NonCompliant),
    ] {
        let (_, stored) = fx.store.device_profile(serial, T0).await.unwrap().unwrap();
        assert_eq!(assess(&current, &stored, T0).status, want, "{serial}");
    }
    a_change_every_device_fails(&fx, &policy).await;
}

/// How many status changes `policy reevaluate` recorded.
async fn changes(fx: &Fx) -> usize {
    let query = AuditQuery {
        since: 0,
        device: None,
        connector: None,
        plan: None,
        limit: 1000,
        before: None,
    };
    fx.store
        .audit_events(&query, T0 + 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| {
            e.event == AuditKind::DeviceComplianceChanged
                && e.reason
                    .as_deref()
                    .is_some_and(|r| r.ends_with("(re-evaluated)"))
        })
        .count()
}
