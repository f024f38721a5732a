//! What a CEL expression may cost: a bound on its work, computed from its syntax tree and the
//! sizes of what it reads, before it runs (cel-rust has no runtime budget).
//!
//! A unit is about one step of the interpreter. Every node costs one unit, plus the work its
//! operands cause, bounded from their sizes:
//! - binding `facts`: every value of the fields read is converted (the document's
//!   [`Sizes::weight`]); a comprehension binds each element it visits (its range's weight). Both
//!   are over-estimates since the fields are converted once per check-in and bound by reference
//!   (`cel_facts.rs`, `cel_shared.rs`): every rule is still charged them, which keeps the
//!   budget's bound on CPU time conservative and admission unchanged;
//! - `==`, `<`, ...: the smaller operand's weight; `x in l`: every element of `l` (its length,
//!   and the weight of what is compared); `+`, a list or map literal, a `map` step: the weight
//!   of what they copy;
//! - string functions (`contains`, `size`, `startsWith`, conversions): the string's length in
//!   [`CHUNK`]s; the typed functions (`software_installed`, ...): their scan of the document;
//! - a comprehension: its body once per element of its range. An operand taken from the
//!   element (`p.name` in `facts.processes.exists(p, ...)`) is a different part of the range
//!   each time, so the work it causes over the whole loop is bounded by the range's weight
//!   rather than once per element.
//!
//! [`Sizes::worst`] are the most the document can hold as CEL sees it (`cel_facts.rs`): the
//! estimate at `add-rule`. At a check-in the same estimate is made with the sizes of the
//! document at hand, and charged to the check-in's budget before the expression runs.

use cel::common::ast::{EntryExpr, Expr};
use cel::IdedExpr;

/// Bytes of a string per unit of work (scanning, comparing or copying them).
pub const CHUNK: u64 = 256;
/// Elements a typed function scans per unit.
pub const SCAN_PER_UNIT: u64 = 16;
/// A comparison whose smaller operand weighs at most this is counted per evaluation even over
/// an element; above it, over the loop.
const SMALL: u64 = 64;

/// The sizes an estimate assumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// Most entries of one list or map of the document.
    pub items: u64,
    /// Most chunks of one string of the document.
    pub chunks: u64,
    /// The weight of the fields read: every value, plus every string's chunks.
    pub weight: u64,
    /// Units of one typed function's scan.
    pub scan: u64,
}

/// What a node's value may be, and what evaluating it costs.
#[derive(Clone, Copy, Debug, Default)]
struct Est {
    /// Units, per evaluation of the node (in a comprehension's body: per element).
    cost: u64,
    /// Most entries (list, map) or chunks (string).
    len: u64,
    /// Most weight.
    weight: u64,
    /// Taken from the element of the comprehension being walked: over the whole loop, its
    /// weights add up to at most this many times the range's weight (0: not).
    amort: u64,
    /// Part of the converted document (its lists and strings within the document's limits).
    doc: bool,
}

impl Est {
    fn scalar(cost: u64) -> Est {
        Est {
            cost,
            len: 0,
            weight: 1,
            amort: 0,
            doc: false,
        }
    }

    /// Its length as a string, in chunks.
    fn chunks(&self, sizes: &Sizes) -> u64 {
        if self.doc {
            sizes.chunks
        } else {
            self.len
        }
    }
}

/// The state of the comprehension being walked.
#[derive(Clone, Copy, Default)]
struct Loop {
    /// Multiples of the range's weight spent over the whole loop.
    amortized: u64,
}

/// The estimate of an expression's cost with `sizes`, given the macros' comprehensions are not
/// nested (the compiler refuses that first).
pub fn estimate(expr: &IdedExpr, sizes: &Sizes) -> u64 {
    let mut walk = Walk {
        sizes: *sizes,
        scopes: Vec::new(),
        current: None,
    };
    let body = walk.visit(expr).cost;
    // `facts` is converted (once per check-in; charged to every rule that reads it).
    body.saturating_add(sizes.weight)
}

struct Walk {
    sizes: Sizes,
    scopes: Vec<(String, Est)>,
    current: Option<Loop>,
}

fn add(values: impl IntoIterator<Item = u64>) -> u64 {
    values.into_iter().fold(0, u64::saturating_add)
}

fn string_chunks(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(CHUNK)
}

/// The typed functions: `version_at_least` and each kind's checks (which scan the document).
pub(super) fn typed(name: &str) -> bool {
    name == "version_at_least" || super::kinds::is_cel_function(name)
}

impl Walk {
    fn document(&self) -> Est {
        Est {
            cost: 1,
            len: self.sizes.items.max(self.sizes.chunks),
            weight: self.sizes.weight,
            amort: 0,
            doc: true,
        }
    }

    /// The work of touching all of `e` (comparing, copying): per evaluation, or over the loop
    /// when `e` is taken from the element and large.
    fn touch(&mut self, e: &Est) -> u64 {
        if e.amort > 0 && e.weight > SMALL {
            if let Some(l) = self.current.as_mut() {
                l.amortized = l.amortized.saturating_add(e.amort);
                return 1;
            }
        }
        e.weight
    }

    /// The work of comparing `a` with `b`: at most the smaller.
    fn compare(&mut self, a: &Est, b: &Est) -> u64 {
        let small = a.weight.min(b.weight);
        if small <= SMALL {
            return small;
        }
        match (a.amort > 0, b.amort > 0) {
            (true, false) => self.touch(a),
            (false, true) => self.touch(b),
            (true, true) => {
                let lighter = if a.amort <= b.amort { a } else { b };
                self.touch(lighter)
            }
            (false, false) => small,
        }
    }

    fn visit(&mut self, e: &IdedExpr) -> Est {
        match &e.expr {
            Expr::Literal(lit) => {
                let bytes = match lit {
                    cel::common::ast::LiteralValue::String(s) => s.inner().len(),
                    cel::common::ast::LiteralValue::Bytes(b) => b.len(),
                    _ => 0,
                };
                let len = string_chunks(bytes);
                Est {
                    cost: 1,
                    len,
                    weight: 1 + len,
                    amort: 0,
                    doc: false,
                }
            }
            Expr::Ident(name) => {
                if let Some((_, est)) = self.scopes.iter().rev().find(|(n, _)| n == name) {
                    return Est { cost: 1, ..*est };
                }
                if name == "facts" {
                    return self.document();
                }
                Est::scalar(1)
            }
            Expr::Select(select) => {
                let operand = self.visit(&select.operand);
                let key = string_chunks(select.field.len());
                self.part_of(operand, 1 + key)
            }
            Expr::Call(call) => self.call(call),
            Expr::List(list) => {
                let items: Vec<Est> = list.elements.iter().map(|el| self.visit(el)).collect();
                self.collection(&items)
            }
            Expr::Map(map) => {
                let mut items = Vec::with_capacity(map.entries.len() * 2);
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(m) = &entry.expr {
                        items.push(self.visit(&m.key));
                        items.push(self.visit(&m.value));
                    }
                }
                let mut est = self.collection(&items);
                est.len = map.entries.len() as u64;
                est
            }
            Expr::Struct(s) => {
                let items: Vec<Est> = s
                    .entries
                    .iter()
                    .filter_map(|entry| match &entry.expr {
                        EntryExpr::StructField(f) => Some(self.visit(&f.value)),
                        EntryExpr::MapEntry(_) => None,
                    })
                    .collect();
                self.collection(&items)
            }
            Expr::Comprehension(c) => self.comprehension(c),
            Expr::Unspecified => Est::scalar(1),
        }
    }

    /// A part of `whole` (a field, an element), found with `cost` more units.
    fn part_of(&self, whole: Est, cost: u64) -> Est {
        Est {
            cost: whole.cost.saturating_add(cost),
            // A part of the document is within its limits; a part of another value is at
            // most its whole.
            len: if whole.doc {
                self.sizes.items.max(self.sizes.chunks)
            } else {
                whole.weight
            },
            weight: whole.weight,
            amort: whole.amort,
            doc: whole.doc,
        }
    }

    /// A list or map built of `items` (each copied into it).
    fn collection(&mut self, items: &[Est]) -> Est {
        let mut copies = 0u64;
        for i in items {
            copies = copies.saturating_add(self.touch(i));
        }
        Est {
            cost: add(items.iter().map(|i| i.cost))
                .saturating_add(1 + items.len() as u64)
                .saturating_add(copies),
            len: items.len() as u64,
            weight: add(items.iter().map(|i| i.weight)).saturating_add(1),
            amort: add(items.iter().map(|i| i.amort)),
            doc: false,
        }
    }

    fn call(&mut self, call: &cel::common::ast::CallExpr) -> Est {
        let target = call.target.as_ref().map(|t| self.visit(t));
        let args: Vec<Est> = call.args.iter().map(|a| self.visit(a)).collect();
        let operands: Vec<Est> = target.iter().chain(args.iter()).copied().collect();
        let base = add(operands.iter().map(|o| o.cost)).saturating_add(1);
        let arg = |i: usize| operands.get(i).copied().unwrap_or_default();
        let name = call.func_name.as_str();
        match name {
            "_&&_"
            | "_||_"
            | "!_"
            | "@not_strictly_false"
            | "_-_"
            | "_*_"
            | "_/_"
            | "_%_"
            | "-_" => Est::scalar(base),
            "_?_:_" => {
                let (a, b) = (arg(1), arg(2));
                Est {
                    cost: base,
                    len: a.len.max(b.len),
                    weight: a.weight.max(b.weight),
                    // Mixed: counted per evaluation.
                    amort: if a.amort > 0 && b.amort > 0 {
                        a.amort.max(b.amort)
                    } else {
                        0
                    },
                    doc: a.doc && b.doc,
                }
            }
            "_==_" | "_!=_" | "_<_" | "_<=_" | "_>_" | "_>=_" => {
                let work = self.compare(&arg(0), &arg(1));
                Est::scalar(base.saturating_add(work))
            }
            "@in" => {
                let (needle, list) = (arg(0), arg(1));
                // Every element visited, each compared with the needle: at most the list's
                // weight, and at most its length times the needle's.
                let compared = list
                    .weight
                    .min(list.len.saturating_mul(needle.weight.max(1)));
                let work = if list.amort > 0 && self.current.is_some() {
                    self.touch(&Est {
                        weight: list.weight.max(SMALL + 1),
                        ..list
                    })
                } else {
                    list.len.saturating_add(compared)
                };
                Est::scalar(base.saturating_add(work))
            }
            "_[_]" | "_[?_]" => {
                let (whole, key) = (arg(0), arg(1));
                let work = self.compare(&key, &key);
                self.part_of(Est { cost: 0, ..whole }, base.saturating_add(work))
            }
            "_+_" => {
                let (a, b) = (arg(0), arg(1));
                let copy = self.touch(&a).saturating_add(self.touch(&b));
                Est {
                    cost: base.saturating_add(copy),
                    len: a.len.saturating_add(b.len),
                    weight: a.weight.saturating_add(b.weight),
                    amort: a.amort.saturating_add(b.amort),
                    doc: false,
                }
            }
            "size" | "contains" | "startsWith" | "endsWith" | "matches" | "string" | "bytes"
            | "int" | "uint" | "double" | "bool" | "timestamp" | "duration" => {
                let scanned = add(operands.iter().map(|o| o.chunks(&self.sizes)));
                let mut est = Est::scalar(base.saturating_add(scanned));
                if name == "string" || name == "bytes" {
                    est.len = arg(0).chunks(&self.sizes);
                    est.weight = est.len.saturating_add(1);
                }
                est
            }
            _ if typed(name) => {
                let scanned = add(operands.iter().map(|o| o.chunks(&self.sizes)));
                let scan = if name == "version_at_least" {
                    0
                } else {
                    self.sizes.scan
                };
                Est::scalar(base.saturating_add(scanned).saturating_add(scan))
            }
            "dyn" => {
                let a = arg(0);
                Est { cost: base, ..a }
            }
            _ => {
                // Anything else (`type`, the optional functions): as costly as touching every
                // operand, and its value as large as all of them.
                let mut touched = 0u64;
                for o in &operands {
                    touched = touched.saturating_add(self.touch(o));
                }
                Est {
                    cost: base.saturating_add(touched),
                    len: add(operands.iter().map(|o| o.len)),
                    weight: add(operands.iter().map(|o| o.weight)).saturating_add(1),
                    amort: add(operands.iter().map(|o| o.amort)),
                    doc: false,
                }
            }
        }
    }

    fn comprehension(&mut self, c: &cel::common::ast::ComprehensionExpr) -> Est {
        let range = self.visit(&c.iter_range);
        let init = self.visit(&c.accu_init);
        let iterations = if range.doc {
            self.sizes.items
        } else {
            range.len
        };
        let element = Est {
            cost: 1,
            len: if range.doc {
                self.sizes.items.max(self.sizes.chunks)
            } else {
                range.weight
            },
            weight: range.weight,
            amort: 1,
            doc: range.doc,
        };
        let outer = self.current.replace(Loop::default());
        let scopes = self.scopes.len();
        self.scopes.push((c.iter_var.clone(), element));
        if let Some(second) = &c.iter_var2 {
            self.scopes.push((second.clone(), element));
        }
        self.scopes.push((c.accu_var.clone(), Est::scalar(1)));
        let cond = self.visit(&c.loop_cond);
        let (step, appended) = self.step(c);
        let over_loop = self.current.map_or(0, |l| l.amortized);
        self.scopes.truncate(scopes);
        self.current = outer;
        let result = self.visit(&c.result);
        let per_element = cond.cost.saturating_add(step.cost);
        // Each element is copied once as it is visited, and what the body took from the
        // elements weighs, over the loop, `over_loop` times the range.
        let cost = add([
            range.cost,
            init.cost,
            result.cost,
            iterations.saturating_mul(per_element),
            range.weight.saturating_mul(over_loop.saturating_add(1)),
        ]);
        match appended {
            Some(item) => Est {
                cost,
                len: iterations,
                weight: if item.amort > 0 {
                    range.weight.saturating_mul(item.amort).saturating_add(1)
                } else {
                    iterations.saturating_mul(item.weight).saturating_add(1)
                },
                amort: 0,
                doc: false,
            },
            None => Est::scalar(cost),
        }
    }

    /// The loop step; for the `map` and `filter` shape (`@result + [item]`, maybe guarded),
    /// appended in place by the interpreter, also the item.
    fn step(&mut self, c: &cel::common::ast::ComprehensionExpr) -> (Est, Option<Est>) {
        let accu = c.accu_var.as_str();
        let is_accu = |e: &IdedExpr| matches!(&e.expr, Expr::Ident(n) if n == accu);
        let append_of = |e: &'_ IdedExpr| -> Option<IdedExpr> {
            match &e.expr {
                Expr::Call(call) if call.func_name == "_+_" && call.target.is_none() => {
                    match call.args.as_slice() {
                        [lhs, rhs] if is_accu(lhs) => match &rhs.expr {
                            Expr::List(l) if l.elements.len() == 1 => Some(l.elements[0].clone()),
                            _ => None,
                        },
                        _ => None,
                    }
                }
                _ => None,
            }
        };
        let shape = match &c.loop_step.expr {
            Expr::Call(call) if call.func_name == "_?_:_" && call.target.is_none() => {
                match call.args.as_slice() {
                    [guard, step, otherwise] if is_accu(otherwise) => {
                        append_of(step).map(|item| (Some(guard.clone()), item))
                    }
                    _ => None,
                }
            }
            _ => append_of(&c.loop_step).map(|item| (None, item)),
        };
        match shape {
            Some((guard, item)) => {
                let guard = guard.map_or(0, |g| self.visit(&g).cost);
                let item = self.visit(&item);
                // The item is copied onto the result.
                let copy = self.touch(&item);
                (Est::scalar(add([guard, item.cost, 2, copy])), Some(item))
            }
            None => (self.visit(&c.loop_step), None),
        }
    }
}
