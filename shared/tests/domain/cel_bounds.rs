//! The CEL cost estimate is a real bound: adversarial documents (within 2 MiB) under the
//! costliest expressions `add-rule` admits do at most a fixed multiple of their estimated work,
//! measured by counting the interpreter's allocations (each step of cel-rust's interpreter that
//! makes a value allocates), never by time. And what the old estimate missed (a membership test
//! over a list of the document inside a comprehension, typed scans in a loop) is refused.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use endpoint_core::compliance::cel::{self, CelFacts};
use endpoint_core::compliance::evaluate::evaluate_in;
use endpoint_core::compliance::rules::{build, NewRule};
use endpoint_core::facts::{self, Facts, MAX_FACTS_BODY};
use endpoint_core::model::{Enforcement, Policy, RuleKind, UnknownAs, WhenUnknown};
use serde_json::{json, Value};

/// Counts the allocations of the thread that makes them.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the count is a
// thread-local `Cell` without destructor, touched with `try_with`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Allocations per unit of the estimate, at most (the interpreter's steps allocate a few
/// values each; conversions one per value).
const PER_UNIT: u64 = 4;

/// Deterministic, poorly compressible text.
fn noise(seed: u64, len: usize) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

/// Adds entries from `make` to a list until the document would pass `limit` bytes.
fn fill(limit: usize, mut make: impl FnMut(usize) -> Value) -> Vec<Value> {
    let mut out = Vec::new();
    let mut size = 0;
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

/// Documents crafted against the bounds. The shapes of the benchmark's 2 MiB corpus
/// (`make bench-abuse`), at 192 KiB: the bound is a ratio, and the debug build's interpreter is
/// slow.
fn adversarial() -> Vec<(&'static str, Value)> {
    let room = 192 * 1024;
    // 120 levels (serde_json reads at most 128), many times over.
    let deep = (0..60).fold(json!("bottom"), |v, i| json!({"a": [v], "i": i}));
    vec![
        (
            "long package list",
            json!({"software": fill(room, |i| json!({"name": format!("p{i}"), "version": "1"}))}),
        ),
        (
            "nested lists",
            json!({"l": fill(room, |i| json!([[i], [[i, i]], [format!("x{i}")]]))}),
        ),
        (
            "wide map",
            json!({"l": fill(room / 2, |i| json!(format!("k{i}"))), "m": Value::Object(fill(room / 2, |i| json!([format!("k{i}"), i])).into_iter().map(|kv| (kv[0].as_str().unwrap_or("").to_string(), kv[1].clone())).collect())}),
        ),
        (
            "deep nesting",
            json!({"l": fill(room, |_| deep.clone()), "s": "x"}),
        ),
        (
            "huge strings",
            json!({"l": fill(room, |i| json!(noise(i as u64, 40_000))), "s": noise(7, 10)}),
        ),
    ]
}

/// The costliest expressions of each shape that `add-rule` admits: each grows its shape until
/// the next step would be refused.
fn costliest() -> Vec<String> {
    // The largest n admitted (admission is monotone in n): doubling, then bisection.
    let grow = |shape: &dyn Fn(usize) -> String| {
        let ok = |n: usize| cel::compile(&shape(n)).is_ok();
        assert!(ok(1), "no {} admitted", shape(1));
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
    };
    let or_chain = |n: usize, term: &dyn Fn(usize) -> String| {
        (0..n).map(term).collect::<Vec<_>>().join(" || ")
    };
    vec![
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
                "facts.l.filter(x, x != null).exists(y, {})",
                or_chain(n, &|i| format!("y == 'f{i}'"))
            )
        }),
        grow(&|n| {
            format!(
                "facts.m.exists(k, {})",
                or_chain(n, &|i| format!("k.startsWith('k{i}')"))
            )
        }),
        grow(&|n| or_chain(n, &|i| format!("software_installed('p{i}')"))),
        grow(&|n| {
            format!(
                "facts.software.exists(s, {})",
                or_chain(n, &|i| format!(
                    "s.name == 'p{i}' && version_at_least(s.version, '{i}')"
                ))
            )
        }),
        grow(&|n| or_chain(n, &|i| format!("size(facts) == {i} || facts == facts"))),
    ]
}

#[test]
fn the_estimate_bounds_the_work_of_the_costliest_admitted_expressions_on_crafted_documents() {
    let expressions = costliest();
    for (name, doc) in adversarial() {
        let text = doc.to_string();
        assert!(text.len() <= MAX_FACTS_BODY, "{name}: {}", text.len());
        let facts = Arc::new(facts::parse(text.as_bytes()).expect("a document"));
        for expr in &expressions {
            let rule = cel::compile(expr).expect("admitted");
            let mut converted = CelFacts::new(&facts);
            // The fields are converted here (bounded in all by MAX_VALUES); the run below binds
            // them and evaluates.
            let cost = cel::cost_on(&rule, &mut converted);
            let before = allocations();
            let found = cel::evaluate_with(&rule, &mut converted);
            let used = allocations() - before;
            if cost <= cel::CHECK_IN_BUDGET {
                assert!(
                    used <= PER_UNIT * cost + 1000,
                    "{name}: {expr:.80}: {used} allocations for an estimate of {cost}"
                );
            } else {
                // Not run at all: too costly for this document.
                assert!(
                    used < 1000,
                    "{name}: {expr:.80}: {used} allocations, not run"
                );
                assert_eq!(found.pass, None);
            }
        }
    }
}

fn policy_of(exprs: &[String]) -> Policy {
    let rules = exprs
        .iter()
        .cycle()
        .take(50)
        .enumerate()
        .map(|(i, e)| {
            let rule = NewRule {
                kind: RuleKind::Cel { expr: e.clone() },
                title: None,
                remediation: None,
                enforce: Enforcement::Block,
                unknown: UnknownAs::Fail,
            };
            build(format!("r{i}"), rule).expect("admitted")
        })
        .collect();
    Policy {
        id: "adversarial".into(),
        name: "adversarial".into(),
        version: 1,
        max_facts_age: 86_400,
        when_unknown: WhenUnknown::Deny,
        rules,
        created_at: 0,
    }
}

#[test]
fn a_whole_check_in_does_at_most_its_budget_whatever_the_policies_and_the_document() {
    // Three policies of 50 of the costliest rules each, evaluated together as a check-in does:
    // the budget is shared, so the work is bounded by one budget (and the conversion's values),
    // not by the number of rules.
    let expressions = costliest();
    let policies = [
        policy_of(&expressions),
        policy_of(&expressions[3..]),
        policy_of(&expressions[6..]),
    ];
    // A budget a tenth of the check-in's: the bound scales with it.
    let budget = cel::CHECK_IN_BUDGET / 10;
    for (name, doc) in adversarial() {
        let facts = Arc::new(Facts::from(doc));
        let before = allocations();
        let mut converted = CelFacts::with_budget(&facts, budget);
        let mut not_run = 0;
        for p in &policies {
            let e = evaluate_in(p, &mut converted, false, 0, 0, None);
            not_run += e
                .rules
                .iter()
                .filter(|r| {
                    r.seen
                        .as_deref()
                        .is_some_and(|s| s.starts_with("not evaluated"))
                })
                .count();
        }
        let used = allocations() - before;
        // The conversion (one per value, bounded per check-in) and the budget's work.
        let bound = PER_UNIT * budget + 4 * cel::MAX_VALUES as u64 + 50_000;
        assert!(used <= bound, "{name}: {used} allocations (bound {bound})");
        assert!(
            not_run > 0,
            "{name}: 150 costly rules must overrun a budget of {budget}"
        );
    }
}

#[test]
fn membership_and_typed_scans_inside_a_comprehension_are_counted_and_refused() {
    for expr in [
        // The attack: an inner loop the old estimate did not count.
        "facts.software.exists(s, s.name in facts.allowed)",
        "facts.l.all(x, x in facts.l)",
        "facts.l.exists(x, facts.m.exists(k, k == x))",
        "facts.l.exists(x, software_installed(x))",
        "facts.l.map(x, facts.l).exists(y, y == [])",
    ] {
        match cel::compile(expr) {
            Ok(_) => panic!("{expr} was admitted"),
            Err(e) => assert!(
                e.message.contains("estimated cost") || e.message.contains("inside another"),
                "{expr}: {e}"
            ),
        }
    }
    // The same tests over literal lists, or outside a loop, are cheap and admitted.
    for expr in [
        "facts.software.exists(s, s.name in ['osquery', 'falcon'])",
        "'osquery' in facts.allowed",
        "['a', 'b'].all(n, software_installed(n))",
        "facts.processes.exists(p, p.name.contains('osqueryd'))",
        // Each element compared with the whole list: the comparison stops within the element,
        // so over the loop it walks at most the list once.
        "facts.l.exists(x, x == facts.l)",
    ] {
        assert!(cel::compile(expr).is_ok(), "{expr}");
    }
}

#[test]
fn lists_maps_and_strings_are_cut_at_every_depth_and_a_false_over_them_is_unknown() {
    let many: Vec<Value> = (0..cel::MAX_ITEMS + 1).map(|i| json!(i)).collect();
    let wide: serde_json::Map<String, Value> = (0..cel::MAX_ITEMS + 1)
        .map(|i| (format!("k{i}"), json!(i)))
        .collect();
    let deep = (0..cel::MAX_DEPTH + 2).fold(json!("end"), |v, _| json!([v]));
    let facts = Arc::new(Facts::from(json!({
        "nested": {"inner": {"list": many}},
        "wide": {"m": wide},
        "deep": deep,
        "s": {"t": "y".repeat(cel::MAX_STRING + 10)},
        "fine": {"list": [1, 2, 3]},
    })));
    let eval = |expr: &str| cel::evaluate(&cel::compile(expr).expect(expr), &facts).pass;
    // Cut: what CEL sees is within the limits, a true stands, a false is unknown.
    assert_eq!(
        eval(&format!(
            "size(facts.nested.inner.list) == {}",
            cel::MAX_ITEMS
        )),
        Some(true)
    );
    assert_eq!(
        eval(&format!(
            "size(facts.nested.inner.list) > {}",
            cel::MAX_ITEMS
        )),
        None
    );
    assert_eq!(
        eval(&format!("size(facts.wide.m) == {}", cel::MAX_ITEMS)),
        Some(true)
    );
    assert_eq!(
        eval(&format!("size(facts.s.t) == {}", cel::MAX_STRING)),
        Some(true)
    );
    assert_eq!(eval("facts.s.t.endsWith('yyy')"), Some(true));
    assert_eq!(eval("facts.deep == null"), None);
    // Nothing cut: a false is a false.
    assert_eq!(eval("size(facts.fine.list) == 4"), Some(false));
}

#[test]
fn the_document_converted_for_cel_is_bounded_in_values_per_check_in() {
    // Many fields of many values: together more than MAX_VALUES; an expression over all of
    // them sees the first MAX_VALUES converted, the rest cut.
    let fields: serde_json::Map<String, Value> = (0..40)
        .map(|i| (format!("f{i}"), json!((0..9000).collect::<Vec<_>>())))
        .collect();
    let facts = Arc::new(Facts::from(Value::Object(fields)));
    let rule = cel::compile("size(facts) > 0 && facts.f0[0] == 1").unwrap();
    let mut converted = CelFacts::new(&facts);
    let before = allocations();
    let cost = cel::cost_on(&rule, &mut converted);
    let conversion = allocations() - before;
    assert!(conversion <= 2 * cel::MAX_VALUES as u64, "{conversion}");
    assert!(cost <= cel::CHECK_IN_BUDGET, "{cost}");
    assert_eq!(
        cel::evaluate_with(&rule, &mut converted).pass,
        None,
        "a false over a cut document"
    );
}
