//! `abuse-bench [RUNS]` (`make bench-abuse`, part a): the CPU time of the costliest check-in an
//! attacker can craft within the limits, against the typical 1.5 MiB desktop document.
//!
//! A check-in's work on one thread, as `check_in/` does it after the device's authentication
//! and counter: the parse (`facts::parse`), the evaluation of every policy of the connector
//! with one shared conversion and budget (`evaluate_in`), the snapshot (`facts::store`,
//! compression and, if needed, the reduction). Each document of the corpus (nested lists, wide
//! maps, deep nesting, incompressible strings, long package lists, each just under 2 MiB) is
//! checked in under each of the costliest policies `policy add-rule` admits (50 rules of the
//! costliest admitted expression of one shape, several shapes, three such policies on the
//! connector), and under the typical policy. Prints one line per case (median and max of RUNS
//! runs, and the median of each part) and the worst.
//!
//! Times are the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not the wall clock: the machine
//! is shared, and time spent waiting for a core is not the check-in's cost.

use std::sync::Arc;

use endpoint_core::compliance::cel::{self, CelFacts};
use endpoint_core::compliance::evaluate::evaluate_in;
use endpoint_core::compliance::rules::{build, NewRule};
use endpoint_core::facts::{self, MAX_FACTS_BODY};
use endpoint_core::model::{DiskScope, Enforcement, Policy, RuleKind, UnknownAs, WhenUnknown};
use serde_json::{json, Value};

/// Deterministic text that deflate cannot shrink much.
fn noise(seed: u64, len: usize) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'!' + (x % 90) as u8)
        })
        .filter(|c| *c != '"' && *c != '\\')
        .collect()
}

/// Entries from `make` while the list stays under `limit` bytes.
fn fill(limit: usize, mut make: impl FnMut(usize) -> Value) -> Vec<Value> {
    let (mut out, mut size) = (Vec::new(), 0);
    for i in 0.. {
        let v = make(i);
        size += v.to_string().len() + 1;
        if size > limit {
            break;
        }
        out.push(v);
    }
    out
}

/// The typical desktop document of `docs/PERFORMANCE.md` (about 1.5 MiB).
fn desktop() -> Value {
    let processes: Vec<Value> = (0..5600)
        .map(|i| json!({"id": i, "name": format!("/Applications/App{i}.app/Contents/MacOS/App{i} --type=renderer --field-trial-handle={i:016x} --lang=en-US --num-raster-threads=4"), "user": "alice"}))
        .collect();
    let software: Vec<Value> = (0..6000)
        .map(|i| json!({"name": format!("package-{i}"), "version": format!("{}.{}.{}", i % 17, i % 5, i % 3), "source": "pkg", "path": format!("/usr/local/Cellar/package-{i}")}))
        .chain([json!({"name": "osquery", "version": "5.14.1", "source": "pkg"})])
        .collect();
    json!({
        "os": {"family": "mac_os", "name": "macOS", "version": "15.1.1", "arch": "arm64"},
        "disks": [{"name": "disk3s1s1", "mountpoint": "/", "encryption_enabled": true}],
        "network": {"hostname": "mac", "firewall_enabled": true, "interfaces": []},
        "hardware": {"serial": "C02XK1JHJGH5", "manufacturer": "Apple Inc."},
        "software": software,
        "processes": processes,
    })
}

/// The corpus: each document just under 2 MiB, its lists under the names the policies read.
fn corpus() -> Vec<(&'static str, Value)> {
    let room = MAX_FACTS_BODY - 8192;
    // Nested 120 deep (serde_json reads at most 128), as many times as fit.
    let deep = (0..60).fold(json!("bottom"), |v, i| json!({"a": [v], "i": i}));
    let wide: serde_json::Map<String, Value> = fill(room / 2, |i| json!([format!("k{i}"), i]))
        .into_iter()
        .map(|kv| (kv[0].as_str().unwrap_or("").to_string(), kv[1].clone()))
        .collect();
    vec![
        (
            "nested lists",
            json!({"l": fill(room, |i| json!([[i], [[i, i]], [format!("x{i}")]]))}),
        ),
        (
            "wide map",
            json!({"m": wide, "l": fill(room / 2, |i| json!(format!("k{i}")))}),
        ),
        (
            "deep nesting",
            json!({"l": fill(room, |_| deep.clone()), "s": "x"}),
        ),
        (
            "incompressible strings",
            json!({"l": fill(room, |i| json!(noise(i as u64, 5000)))}),
        ),
        (
            "long package list",
            json!({"software": fill(room / 2, |i| json!({"name": format!("p{i}"), "version": "1"})), "processes": fill(room / 2, |i| json!({"name": format!("/bin/p{i} {}", noise(i as u64, 20))}))}),
        ),
        (
            "many tiny values",
            json!({"l": fill(room, |i| json!(i % 10))}),
        ),
        ("typical desktop", desktop()),
    ]
}

fn rule(i: usize, kind: RuleKind) -> endpoint_core::model::Rule {
    let new = NewRule {
        kind,
        title: None,
        remediation: None,
        enforce: Enforcement::Block,
        unknown: UnknownAs::Fail,
    };
    match build(format!("r{i}"), new) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("a rule was refused: {e}");
            std::process::exit(1);
        }
    }
}

fn policy(id: &str, rules: Vec<endpoint_core::model::Rule>) -> Policy {
    Policy {
        id: id.into(),
        name: id.into(),
        version: 1,
        max_facts_age: 86_400,
        when_unknown: WhenUnknown::Deny,
        rules,
        created_at: 0,
    }
}

/// The costliest admitted expression of a shape: grown until the next step is refused.
fn grow(shape: &dyn Fn(usize) -> String) -> String {
    // Admission is monotone in n: doubling, then bisection.
    let ok = |n: usize| cel::compile(&shape(n)).is_ok();
    if !ok(1) {
        eprintln!("not admitted: {}", shape(1));
        std::process::exit(1);
    }
    let mut high = 2;
    while high < 4096 && ok(high) {
        high *= 2;
    }
    let mut low = high / 2;
    while low + 1 < high {
        let mid = (low + high) / 2;
        if ok(mid) {
            low = mid;
        } else {
            high = mid;
        }
    }
    shape(low)
}

fn or_chain(n: usize, term: &dyn Fn(usize) -> String) -> String {
    (0..n).map(term).collect::<Vec<_>>().join(" || ")
}

/// The costliest policies: 50 rules of one admitted shape each, and one of 50 built-in rules.
fn costly_policies() -> Vec<Policy> {
    let shapes = [
        grow(&|n| {
            format!(
                "facts.l.exists(x, {})",
                or_chain(n, &|i| format!("x == 'v{i}'"))
            )
        }),
        grow(&|n| {
            format!(
                "facts.l.exists(x, x in [{}])",
                (0..n)
                    .map(|i| format!("'v{i}'"))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        }),
        grow(&|n| {
            format!(
                "facts.l.map(x, x).exists(y, {})",
                or_chain(n, &|i| format!("y == 'w{i}'"))
            )
        }),
        grow(&|n| {
            format!(
                "facts.m.exists(k, {})",
                or_chain(n, &|i| format!("k.startsWith('k{i}')"))
            )
        }),
        grow(&|n| {
            format!(
                "facts.software.exists(s, {})",
                or_chain(n, &|i| format!(
                    "s.name == 'p{i}' && version_at_least(s.version, '{i}')"
                ))
            )
        }),
        grow(&|n| {
            or_chain(n, &|i| {
                format!("software_installed('p{i}') || process_running('q{i}')")
            })
        }),
        grow(&|n| or_chain(n, &|i| format!("size(facts) == {i} || facts == facts"))),
    ];
    let mut out: Vec<Policy> = shapes
        .iter()
        .enumerate()
        .map(|(p, expr)| {
            let rules = (0..50)
                .map(|i| rule(i, RuleKind::Cel { expr: expr.clone() }))
                .collect();
            policy(&format!("cel{p}"), rules)
        })
        .collect();
    let builtin = (0..50)
        .map(|i| match i % 3 {
            0 => rule(
                i,
                RuleKind::Software {
                    name: format!("p{i}"),
                    min_version: Some("2".into()),
                },
            ),
            1 => rule(
                i,
                RuleKind::Process {
                    name: format!("q{i}"),
                },
            ),
            _ => rule(
                i,
                RuleKind::DiskEncryption {
                    scope: DiskScope::All,
                },
            ),
        })
        .collect();
    out.push(policy("builtin", builtin));
    out
}

/// The benchmark's typical policy (`shared/benches/compliance.rs`): ten rules.
fn typical_policy() -> Policy {
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
    policy(
        "typical",
        kinds
            .into_iter()
            .enumerate()
            .map(|(i, k)| rule(i, k))
            .collect(),
    )
}

/// This thread's CPU time so far, in milliseconds.
fn cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        eprintln!("clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed: no CPU time to measure with");
        std::process::exit(1);
    }
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

/// One check-in's CPU time: its parts (parse, every policy with one conversion and budget, the
/// snapshot), in milliseconds, and whether the snapshot was reduced.
struct Timed {
    parse: f64,
    policies: f64,
    store: f64,
    truncated: bool,
}

impl Timed {
    fn total(&self) -> f64 {
        self.parse + self.policies + self.store
    }
}

/// One check-in's CPU work: parse, every policy with one conversion and budget, the snapshot.
fn check_in(body: &[u8], policies: &[Policy]) -> Timed {
    let started = cpu_ms();
    let Ok(facts) = facts::parse(body) else {
        eprintln!("a corpus document was refused");
        std::process::exit(1);
    };
    let facts = Arc::new(facts);
    let parsed = cpu_ms();
    let mut converted = CelFacts::new(&facts);
    for p in policies {
        std::hint::black_box(evaluate_in(p, &mut converted, false, 0, 0, None));
    }
    drop(converted);
    let evaluated = cpu_ms();
    let stored = std::hint::black_box(facts::store(&facts));
    let done = cpu_ms();
    Timed {
        parse: parsed - started,
        policies: evaluated - parsed,
        store: done - evaluated,
        truncated: stored.truncated,
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `ABUSE_DETAIL=1`: each costliest policy alone on each document (CPU time of its evaluation,
/// the conversion included), to see where the time goes.
fn detail(costly: &[Policy]) {
    println!();
    println!("| document | policy | CPU (ms) | budget spent |");
    println!("|---|---|---|---|");
    for (name, doc) in corpus() {
        let body = doc.to_string().into_bytes();
        for p in costly {
            let Ok(facts) = facts::parse(&body) else {
                continue;
            };
            let facts = Arc::new(facts);
            let mut converted = CelFacts::new(&facts);
            let started = cpu_ms();
            std::hint::black_box(evaluate_in(p, &mut converted, false, 0, 0, None));
            let ms = cpu_ms() - started;
            let spent = cel::CHECK_IN_BUDGET - converted.budget_left();
            println!("| {name} | {} | {ms:.1} | {spent} |", p.id);
        }
    }
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let costly = costly_policies();
    let typical = vec![typical_policy()];
    let mut worst = (0.0_f64, String::new());
    let mut typical_ms = 0.0;
    println!("load average at the start: {}", load());
    println!("CPU time of the benchmark's thread, medians of {runs} runs (max: the slowest run)");
    println!();
    println!("| document | bytes | policies | median | max | parse | policies (CEL) | snapshot | snapshot is |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, doc) in corpus() {
        let body = doc.to_string().into_bytes();
        assert!(body.len() <= MAX_FACTS_BODY, "{name}: {} bytes", body.len());
        for (label, policies) in [
            ("typical policy", &typical),
            ("costliest policies", &costly),
        ] {
            let timed: Vec<Timed> = (0..runs).map(|_| check_in(&body, policies)).collect();
            let truncated = timed.iter().any(|t| t.truncated);
            let part = |f: fn(&Timed) -> f64| median(timed.iter().map(f).collect());
            let median = part(Timed::total);
            let max = timed.iter().map(Timed::total).fold(0.0, f64::max);
            println!(
                "| {name} | {} | {label} | {median:.1} ms | {max:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {} |",
                body.len(),
                part(|t| t.parse),
                part(|t| t.policies),
                part(|t| t.store),
                if truncated { "reduced" } else { "whole" }
            );
            if name == "typical desktop" && label == "typical policy" {
                typical_ms = median;
            }
            if median > worst.0 {
                worst = (median, format!("{name}, {label}"));
            }
        }
    }
    if std::env::var_os("ABUSE_DETAIL").is_some() {
        detail(&costly);
    }
    println!();
    println!("typical_ms={typical_ms:.1}");
    println!("worst_ms={:.1} ({})", worst.0, worst.1);
    println!("load average at the end: {}", load());
}
