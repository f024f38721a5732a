//! The document as CEL sees it: each top-level field an expression names is converted once per
//! check-in, however many rules read it, within limits at every depth, and with the sizes the
//! cost estimate needs. The check-in's budget of work is kept here too, shared by every rule of
//! every policy evaluated on the document.
//!
//! Limits (what is over them is cut, and a `false` over something cut is `unknown`):
//! - [`MAX_ITEMS`] entries of any list or map, at any depth;
//! - [`MAX_STRING`] bytes of any string or key;
//! - [`MAX_DEPTH`] levels of nesting (deeper values are `null`);
//! - [`MAX_VALUES`] values converted in all, per check-in.

use std::collections::HashMap;
use std::sync::Arc;

use cel::objects::{Key, Value as CelValue};
use serde_json::Value;

use super::cel_cost::{Sizes, CHUNK, SCAN_PER_UNIT};
use crate::facts::Facts;

/// Most entries of any list or map an expression sees.
pub const MAX_ITEMS: usize = 10_000;
/// Longest string (or map key) an expression sees, in bytes.
pub const MAX_STRING: usize = 4096;
/// Deepest nesting an expression sees.
pub const MAX_DEPTH: usize = 32;
/// Most values converted for CEL per check-in.
pub const MAX_VALUES: usize = 100_000;
/// The work every rule of one check-in may do together, in the estimate's units (45 to 60 ms
/// of this machine's release build, `docs/PERFORMANCE.md` section 7). A rule that would go over
/// it is `unknown`.
pub const CHECK_IN_BUDGET: u64 = 300_000;

/// The sizes the estimate assumes at `add-rule`: the most the document can hold as CEL sees it.
pub fn worst_sizes() -> Sizes {
    let body = crate::facts::MAX_FACTS_BODY as u64;
    Sizes {
        items: MAX_ITEMS as u64,
        chunks: (MAX_STRING as u64).div_ceil(CHUNK),
        // Every value, and every string's chunks (together at most the body's bytes).
        weight: MAX_VALUES as u64 + body.div_ceil(CHUNK),
        // A list element takes at least two bytes.
        scan: (body / 2).div_ceil(SCAN_PER_UNIT),
    }
}

/// What conversion found of a field: the most entries of one of its lists or maps, the most
/// chunks of one of its strings, its weight.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    items: u64,
    chunks: u64,
    weight: u64,
}

#[derive(Clone)]
struct Converted {
    value: CelValue,
    cut: bool,
    stats: Stats,
}

/// The document as CEL sees it, with the check-in's budget.
pub struct CelFacts<'a> {
    pub(super) facts: &'a Arc<Facts>,
    fields: HashMap<String, Converted>,
    values_left: usize,
    budget_left: u64,
    scan: Option<u64>,
}

fn chunks(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(CHUNK)
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut_str(s: &str, max: usize, cut: &mut bool) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    *cut = true;
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

impl<'a> CelFacts<'a> {
    pub fn new(facts: &'a Arc<Facts>) -> Self {
        Self::with_budget(facts, CHECK_IN_BUDGET)
    }

    /// With a budget other than the check-in's (tests of the budget's accounting).
    pub fn with_budget(facts: &'a Arc<Facts>, budget: u64) -> Self {
        CelFacts {
            facts,
            fields: HashMap::new(),
            values_left: MAX_VALUES,
            budget_left: budget,
            scan: None,
        }
    }

    /// Spends `cost` of the check-in's budget if that much is left.
    pub fn charge(&mut self, cost: u64) -> bool {
        if cost > self.budget_left {
            return false;
        }
        self.budget_left -= cost;
        true
    }

    /// What is left of the check-in's budget.
    pub fn budget_left(&self) -> u64 {
        self.budget_left
    }

    /// Units of one typed function's scan of this document: the longest of the lists they
    /// read (packages, programs, disks) and the OS version's chunks.
    pub fn scan(&mut self) -> u64 {
        if let Some(s) = self.scan {
            return s;
        }
        let f = self.facts;
        let longest = [
            f.packages().map_or(0, Iterator::count),
            f.programs().map_or(0, Iterator::count),
            f.get("disks").and_then(Value::as_array).map_or(0, Vec::len),
        ]
        .into_iter()
        .max()
        .unwrap_or(0) as u64;
        let version = f
            .get("os")
            .and_then(|os| os.get("version"))
            .and_then(Value::as_str)
            .map_or(0, |v| chunks(v.len()));
        let scan = longest.div_ceil(SCAN_PER_UNIT) + version + 1;
        self.scan = Some(scan);
        scan
    }

    fn convert(&mut self, v: &Value, depth: usize, stats: &mut Stats, cut: &mut bool) -> CelValue {
        if self.values_left == 0 {
            *cut = true;
            return CelValue::Null;
        }
        self.values_left -= 1;
        stats.weight += 1;
        match v {
            Value::Null => CelValue::Null,
            Value::Bool(b) => CelValue::Bool(*b),
            // As serde gives numbers to CEL: unsigned, signed, else a double.
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => CelValue::UInt(u),
                (None, Some(i)) => CelValue::Int(i),
                _ => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => {
                let s = cut_str(s, MAX_STRING, cut);
                let c = chunks(s.len());
                stats.chunks = stats.chunks.max(c);
                stats.weight += c;
                CelValue::String(Arc::new(s))
            }
            Value::Array(items) => {
                if depth >= MAX_DEPTH {
                    *cut = true;
                    return CelValue::Null;
                }
                if items.len() > MAX_ITEMS {
                    *cut = true;
                }
                let kept = &items[..items.len().min(MAX_ITEMS)];
                stats.items = stats.items.max(kept.len() as u64);
                let list = kept
                    .iter()
                    .map(|item| self.convert(item, depth + 1, stats, cut))
                    .collect();
                CelValue::List(Arc::new(list))
            }
            Value::Object(map) => {
                if depth >= MAX_DEPTH {
                    *cut = true;
                    return CelValue::Null;
                }
                if map.len() > MAX_ITEMS {
                    *cut = true;
                }
                stats.items = stats.items.max(map.len().min(MAX_ITEMS) as u64);
                let mut out = HashMap::with_capacity(map.len().min(MAX_ITEMS));
                for (k, item) in map.iter().take(MAX_ITEMS) {
                    let k = cut_str(k, MAX_STRING, cut);
                    let c = chunks(k.len());
                    stats.chunks = stats.chunks.max(c);
                    stats.weight += c;
                    let value = self.convert(item, depth + 1, stats, cut);
                    out.insert(Key::String(Arc::new(k)), value);
                }
                CelValue::from(out)
            }
        }
    }

    /// A top-level field as CEL sees it, converted on the first call.
    fn field(&mut self, name: &str) -> Option<Converted> {
        if let Some(known) = self.fields.get(name) {
            return Some(known.clone());
        }
        let facts = self.facts;
        let value = facts.get(name)?;
        let (mut stats, mut cut) = (Stats::default(), false);
        let converted = self.convert(value, 0, &mut stats, &mut cut);
        let field = Converted {
            value: converted,
            cut,
            stats,
        };
        self.fields.insert(name.to_string(), field.clone());
        Some(field)
    }

    /// The `facts` variable of an expression that reads `fields` (`None`: all of them), whether
    /// anything in it was cut, and its sizes (`scan` when the expression calls typed functions).
    pub(super) fn document(
        &mut self,
        fields: Option<&[String]>,
        typed: bool,
    ) -> (CelValue, bool, Sizes) {
        let mut cut = false;
        let names: Vec<String> = match fields {
            Some(f) => f.to_vec(),
            None => {
                let all = self.facts.names();
                cut |= all.len() > MAX_ITEMS;
                all.into_iter()
                    .take(MAX_ITEMS)
                    .map(str::to_string)
                    .collect()
            }
        };
        let mut map = HashMap::with_capacity(names.len());
        let mut sizes = Sizes {
            items: names.len() as u64,
            chunks: 0,
            weight: 1,
            scan: 0,
        };
        for name in names {
            let Some(field) = self.field(&name) else {
                continue;
            };
            cut |= field.cut;
            sizes.items = sizes.items.max(field.stats.items);
            sizes.chunks = sizes.chunks.max(field.stats.chunks.max(chunks(name.len())));
            sizes.weight = sizes.weight.saturating_add(field.stats.weight);
            map.insert(cut_str(&name, MAX_STRING, &mut cut), field.value);
        }
        if typed {
            sizes.scan = self.scan();
        }
        (CelValue::from(map), cut, sizes)
    }
}
