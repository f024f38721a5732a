//! The document as CEL sees it: each top-level field an expression names is converted once per
//! check-in, however many rules read it, within limits at every depth, and with the sizes the
//! cost estimate needs. The converted fields are one CEL map, which every rule's `facts` borrows
//! (no copy per rule), and its strings borrow the document's text (no copy at all). The
//! check-in's budget of work is kept here too, shared by every rule of every policy evaluated on
//! the document.
//!
//! Limits (what is over them is cut, and a `false` over something cut is `unknown`):
//! - [`MAX_ITEMS`] entries of any list or map, at any depth;
//! - [`MAX_STRING`] bytes of any string or key;
//! - [`MAX_DEPTH`] levels of nesting (deeper values are `null`);
//! - [`MAX_VALUES`] values converted in all, per check-in.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cel::common::types::{CelMap, CelMapKey, CelString};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use serde_json::Value;

use super::cel_cost::{Sizes, CHUNK, SCAN_PER_UNIT};
use super::cel_text::{chunks, cut_str, read, Cel, Stats};
use crate::facts::Facts;

/// Most entries of any list or map an expression sees.
pub const MAX_ITEMS: usize = 10_000;
/// Longest string (or map key) an expression sees, in bytes.
pub const MAX_STRING: usize = 4096;
/// Deepest nesting an expression sees.
pub const MAX_DEPTH: usize = 32;
/// Most values converted for CEL per check-in.
pub const MAX_VALUES: usize = 100_000;
/// The work every rule of one check-in may do together, in the estimate's units (at most about
/// 30 ms of CPU on this machine's release build, the fields' one-pass reading included,
/// `docs/PERFORMANCE.md` section 7). A rule that would go over it is `unknown`.
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

/// A measured field: whether something in it is cut, its sizes, and how many of
/// [`MAX_VALUES`] were left when it was measured (its value, once converted, is in the map).
#[derive(Clone, Copy)]
struct Converted {
    cut: bool,
    stats: Stats,
    allowance: usize,
    /// Converted already.
    done: bool,
}

/// The document as CEL sees it, with the check-in's budget.
pub struct CelFacts<'a> {
    pub(super) facts: &'a Arc<Facts>,
    /// What was found measuring each field asked for (`None`: not in the document).
    fields: HashMap<String, Option<Converted>>,
    /// The converted fields among the document's first [`MAX_ITEMS`] names (those a rule that
    /// reads the whole document sees), by their names cut to [`MAX_STRING`].
    map: CelMap<'a>,
    /// The converted fields beyond them (only a rule that names them reads them).
    beyond: HashMap<String, Cel<'a>>,
    /// The document's first [`MAX_ITEMS`] names, on the first call.
    seen: Option<Vec<&'a str>>,
    /// The same, to look names up.
    seen_set: HashSet<&'a str>,
    values_left: usize,
    budget_left: u64,
    scan: Option<u64>,
}

/// `facts` for one rule's run: the converted fields, borrowed.
struct Bound<'r, 'a>(&'r CelMap<'a>);

impl VariableResolver for Bound<'_, '_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        (variable == "facts").then(|| CowVal::Borrowed(self.0 as &(dyn Val + 'b)))
    }
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
            map: CelMap::default(),
            beyond: HashMap::new(),
            seen: None,
            seen_set: HashSet::new(),
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

    /// The field `name`, measured on the first call (its sizes, whether it is cut, the values
    /// it takes of [`MAX_VALUES`]), without converting it: a rule the budget cannot pay for
    /// never causes the conversion.
    fn field(&mut self, name: &str) -> Option<Converted> {
        if let Some(known) = self.fields.get(name) {
            return *known;
        }
        let facts: &'a Facts = self.facts;
        let allowance = self.values_left;
        // A field serde_json cannot represent is absent, as for the typed checks.
        let Some(Ok((_, stats, cut))) = facts
            .raw(name)
            .map(|text| read(text, &mut self.values_left, false))
        else {
            self.fields.insert(name.to_string(), None);
            return None;
        };
        let field = Converted {
            cut,
            stats,
            allowance,
            done: false,
        };
        self.fields.insert(name.to_string(), Some(field));
        Some(field)
    }

    /// Converts the field `name` (measured first by [`Self::field`]) if it is not yet: into the
    /// shared map, or beside it if it is not among the names a whole-document rule sees.
    fn convert(&mut self, name: &str) {
        let Some(Some(field)) = self.fields.get_mut(name) else {
            return;
        };
        if field.done {
            return;
        }
        field.done = true;
        let allowance = field.allowance;
        let facts: &'a Facts = self.facts;
        // With the allowance it had when measured: the same values as measured.
        let mut left = allowance;
        let Some(Ok((Some(converted), _, _))) =
            facts.raw(name).map(|text| read(text, &mut left, true))
        else {
            return;
        };
        self.seen();
        if let Some(own) = self.seen_set.get(name).copied() {
            let key = cut_str(own, MAX_STRING, &mut false);
            // Moved out and back: no entry is copied.
            let mut map = std::mem::take(&mut self.map).into_inner();
            map.insert(CelMapKey::String(CelString::from(key)), converted);
            self.map = CelMap::from(map);
        } else {
            self.beyond.insert(name.to_string(), converted);
        }
    }

    /// The document's first [`MAX_ITEMS`] names (what a rule reading all of it sees).
    fn seen(&mut self) -> &[&'a str] {
        let facts: &'a Facts = self.facts;
        if self.seen.is_none() {
            let names: Vec<&'a str> = facts.names().into_iter().take(MAX_ITEMS).collect();
            self.seen_set = names.iter().copied().collect();
            self.seen = Some(names);
        }
        self.seen.as_deref().unwrap_or_default()
    }

    /// Measures what an expression that reads `fields` (`None`: all of them) needs; whether
    /// anything in it was cut, and its sizes (`scan` when the expression calls typed functions).
    pub(super) fn document(&mut self, fields: Option<&[String]>, typed: bool) -> (bool, Sizes) {
        let mut cut = false;
        let names: Vec<String> = match fields {
            Some(f) => f.to_vec(),
            None => {
                cut |= self.facts.names().len() > MAX_ITEMS;
                self.seen().iter().map(|n| n.to_string()).collect()
            }
        };
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
            cut |= name.len() > MAX_STRING;
            sizes.items = sizes.items.max(field.stats.items);
            sizes.chunks = sizes.chunks.max(field.stats.chunks.max(chunks(name.len())));
            sizes.weight = sizes.weight.saturating_add(field.stats.weight);
        }
        if typed {
            sizes.scan = self.scan();
        }
        (cut, sizes)
    }

    /// Runs `run` with the `facts` variable of an expression that reads `fields` (`None`: all
    /// of them), measured first by [`Self::document`] and converted now if they are not yet:
    /// the shared map, borrowed; a copy only for an expression naming a field beyond the names
    /// a whole-document rule sees (a document of more than [`MAX_ITEMS`] fields).
    pub(super) fn with_bound<T>(
        &mut self,
        fields: Option<&[String]>,
        run: impl FnOnce(&dyn VariableResolver) -> T,
    ) -> T {
        let names: Vec<String> = match fields {
            Some(f) => f.to_vec(),
            None => self.seen().iter().map(|n| n.to_string()).collect(),
        };
        for name in &names {
            self.convert(name);
        }
        let beyond: Vec<&String> = fields
            .unwrap_or_default()
            .iter()
            .filter(|f| self.beyond.contains_key(f.as_str()))
            .collect();
        if beyond.is_empty() {
            return run(&Bound(&self.map));
        }
        let mut own: HashMap<CelMapKey<'a>, Cel<'a>> = HashMap::new();
        for name in fields.unwrap_or_default() {
            let key = cut_str(name, MAX_STRING, &mut false).to_string();
            let key: CelMapKey<'a> = CelMapKey::String(CelString::from(key));
            let value = self
                .beyond
                .get(name.as_str())
                .or_else(|| self.map.get(&key));
            if let Some(value) = value {
                own.insert(key.clone(), value.clone());
            }
        }
        let map = CelMap::from(own);
        run(&Bound(&map))
    }
}
