//! Device compliance: the check-in's evaluation of a 10-rule policy on a 1.5 MiB desktop
//! document (with the parse the check-in already does), the login's decision from the stored
//! result, and the costliest CEL expression the bounds admit over lists of the largest size.
//! Medians in docs/PERFORMANCE.md (`make bench`).

mod support;

use support::{black_box, Harness};

use std::sync::Arc;

use endpoint_core::compliance::assess::assess;
use endpoint_core::compliance::cel;
use endpoint_core::compliance::evaluate::evaluate;
use endpoint_core::compliance::rules::{build, NewRule};
use endpoint_core::facts::{self, Facts};
use endpoint_core::model::{
    DiskScope, Enforcement, Policy, PolicyRef, RuleKind, UnknownAs, WhenUnknown,
};
use serde_json::{json, Value};

const T0: i64 = 1_800_000_000;

/// A desktop's facts of about 1.5 MiB: thousands of processes with their command lines and of
/// installed packages, as real agents send them.
fn desktop() -> Vec<u8> {
    let processes: Vec<Value> = (0..5600)
        .map(|i| json!({"id": i, "name": format!("/Applications/App{i}.app/Contents/MacOS/App{i} --type=renderer --field-trial-handle={i:016x} --lang=en-US --num-raster-threads=4"), "user": "alice"}))
        .collect();
    let software: Vec<Value> = (0..6000)
        .map(|i| json!({"name": format!("package-{i}"), "version": format!("{}.{}.{}", i % 17, i % 5, i % 3), "source": "pkg", "path": format!("/usr/local/Cellar/package-{i}")}))
        .chain([json!({"name": "osquery", "version": "5.14.1", "source": "pkg"})])
        .collect();
    let doc = json!({
        "os": {"family": "mac_os", "name": "macOS", "version": "15.1.1", "arch": "arm64"},
        "disks": [{"name": "disk3s1s1", "mountpoint": "/", "encryption_enabled": true}],
        "network": {"hostname": "mac", "firewall_enabled": true, "interfaces": []},
        "hardware": {"serial": "C02XK1JHJGH5", "manufacturer": "Apple Inc."},
        "software": software,
        "processes": processes,
    });
    serde_json::to_vec(&doc).expect("a JSON document")
}

/// Ten rules: eight of the built-in kinds, one CEL rule without a comprehension
/// (`facts.hardware.manufacturer == ...`), one more process rule.
fn builtin_policy() -> Policy {
    let mut p = policy();
    p.rules.truncate(9);
    p.rules.push(
        build(
            "r9".into(),
            NewRule {
                kind: RuleKind::Process {
                    name: "falcond".into(),
                },
                title: None,
                remediation: None,
                enforce: Enforcement::Block,
                unknown: UnknownAs::Fail,
            },
        )
        .expect("a valid rule"),
    );
    p
}

fn policy() -> Policy {
    let rule = |kind| NewRule {
        kind,
        title: None,
        remediation: None,
        enforce: Enforcement::Grace(3 * 86_400),
        unknown: UnknownAs::Fail,
    };
    let kinds = vec![
        RuleKind::OsFamily { allow: vec!["mac_os".into(), "windows".into(), "linux".into()] },
        RuleKind::OsVersion { family: "mac_os".into(), min: "14.4".into() },
        RuleKind::OsVersion { family: "windows".into(), min: "10.0.22631".into() },
        RuleKind::DiskEncryption { scope: DiskScope::System },
        RuleKind::Firewall,
        RuleKind::Software { name: "osquery".into(), min_version: Some("5.10".into()) },
        RuleKind::Software { name: "Tailscale".into(), min_version: None },
        RuleKind::Process { name: "osqueryd".into() },
        RuleKind::Cel { expr: "facts.hardware.manufacturer == 'Apple Inc.'".into() },
        RuleKind::Cel { expr: "facts.software.exists(s, s.name == 'osquery' && version_at_least(s.version, '5.10'))".into() },
    ];
    Policy {
        id: "bench".into(),
        name: "bench".into(),
        version: 1,
        max_facts_age: 86_400,
        when_unknown: WhenUnknown::Deny,
        rules: kinds
            .into_iter()
            .enumerate()
            .map(|(i, k)| build(format!("r{i}"), rule(k)).expect("a valid rule"))
            .collect(),
        created_at: T0,
    }
}

fn bench_check_in(c: &mut Harness) {
    let body = desktop();
    assert!(body.len() >= 1_500_000, "{} bytes", body.len());
    let parse = || Arc::new(facts::parse(&body).expect("valid facts"));
    // What a check-in does: parse, then every rule (a document reads each field once, so each
    // iteration starts from a fresh parse).
    let builtin = builtin_policy();
    c.bench_function("check_in_parse_and_evaluate_10_rules_1_5_mib", |b| {
        b.iter(|| {
            let document = Arc::new(facts::parse(black_box(&body)).expect("valid facts"));
            black_box(evaluate(&builtin, &document, false, T0, T0, None))
        })
    });
    c.bench_function("check_in_parse_only_1_5_mib", |b| {
        b.iter(|| black_box(facts::parse(black_box(&body)).expect("valid facts")))
    });
    c.bench_function("check_in_evaluate_10_rules_after_parse", |b| {
        b.iter_batched(parse, |document| {
            black_box(evaluate(&builtin, &document, false, T0, T0, None))
        })
    });
    let p = policy();
    c.bench_function("check_in_parse_and_evaluate_with_cel_comprehension", |b| {
        b.iter(|| {
            let document = Arc::new(facts::parse(black_box(&body)).expect("valid facts"));
            black_box(evaluate(&p, &document, false, T0, T0, None))
        })
    });
}

fn bench_login(c: &mut Harness) {
    let p = policy();
    let document = Arc::new(facts::parse(&desktop()).expect("valid facts"));
    let stored = vec![evaluate(&p, &document, false, T0, T0, None)];
    let reference = PolicyRef {
        id: p.id.clone(),
        version: p.version,
        when_unknown: p.when_unknown,
    };
    c.bench_function("login_assess_stored_evaluation_10_rules", |b| {
        b.iter(|| black_box(assess(black_box(&reference), black_box(&stored), T0 + 60)))
    });
}

fn bench_cel_worst_case(c: &mut Harness) {
    // The longest comprehension body the cost bound admits, over a list of the most elements
    // an expression sees: every element is visited, no element matches.
    let mut body = Vec::new();
    let mut expr = String::new();
    for i in 0.. {
        body.push(format!("p.name == 'not-running-{i}'"));
        let candidate = format!("facts.processes.exists(p, {})", body.join(" || "));
        if cel::compile(&candidate).is_err() {
            break;
        }
        expr = candidate;
    }
    let program = cel::compile(&expr).expect("admitted");
    let processes: Vec<Value> = (0..cel::MAX_ITEMS)
        .map(|i| json!({"id": i, "name": format!("/usr/bin/p{i} --flag")}))
        .collect();
    let facts = Arc::new(Facts::from(json!({"processes": processes})));
    c.bench_function("cel_worst_case_admitted_expression_10000_elements", |b| {
        b.iter(|| black_box(cel::evaluate(&program, black_box(&facts))))
    });
}

fn main() {
    let mut c = Harness::from_args();
    bench_check_in(&mut c);
    bench_login(&mut c);
    bench_cel_worst_case(&mut c);
}
