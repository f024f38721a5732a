//! `cel` rules: an expression in CEL (the crate `cel`, cel-rust) over the variable `facts`, the
//! checked-in document. Its functions are `version_at_least(version, minimum)` (the contract's
//! version comparison) and each rule kind's own checks, declared by the kind's file (`kinds/`;
//! `os_version_at_least(family, minimum)` is the `os-version` rule, `disk_encrypted("system" |
//! "all")` the `disk-encryption` rule, and so on: `endpoint-admin policy add-rule --help` lists
//! them all), so a CEL rule and a built-in rule asking the same question get the same answer.
//!
//! A function that cannot decide (the device did not report what it needs) is an evaluation
//! error, and so the rule is `unknown`, as a built-in rule would be.
//!
//! What an expression may cost, bounded before it ever runs (cel-rust has no runtime budget,
//! so the bounds are static, in the spirit of Kubernetes' CEL cost estimation):
//! - at most [`MAX_EXPR_CHARS`] characters and [`MAX_NODES`] nodes once its macros expand;
//! - no comprehension (`all`, `exists`, `exists_one`, `map`, `filter`) inside another one: the
//!   contract's example of a too costly expression is exactly that, a list of the document
//!   walked once per element of another;
//! - an estimated cost (`cel_cost.rs`) of at most [`MAX_COST`] on the largest document CEL can
//!   see (`cel_facts.rs`: lists and maps cut at every depth, strings, nesting and the values
//!   converted bounded); no regular expressions (the crate's `regex` feature is off);
//! - at a check-in, the estimate on the document at hand is charged to the check-in's budget
//!   ([`CHECK_IN_BUDGET`], shared by every rule of every policy) before the expression runs; a
//!   rule it would overrun is `unknown`.
//!
//! The costliest check-in these bounds admit is measured by `make bench-abuse`
//! (`docs/PERFORMANCE.md`).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use cel::common::ast::Expr;
use cel::objects::Value as CelValue;
use cel::{Context, Env, ExecutionError, IdedExpr, Program};

use super::cel_cost::{estimate, Sizes};
pub use super::cel_facts::{
    worst_sizes, CelFacts, CHECK_IN_BUDGET, MAX_DEPTH, MAX_ITEMS, MAX_STRING, MAX_VALUES,
};
use super::check::Found;
use super::kinds;
use super::version;
use crate::facts::Facts;

/// Longest expression, in characters.
pub const MAX_EXPR_CHARS: usize = 4096;
/// Most nodes of an expression once its macros expand.
pub const MAX_NODES: usize = 2000;
/// Largest estimated cost on the largest document ([`worst_sizes`]). Above the check-in's
/// budget: an expression that fits the budget on the documents devices send is admitted (on a
/// larger document it is `unknown`), what no document could make affordable (an inner loop over
/// the document's lists, a scan per element) is refused.
pub const MAX_COST: u64 = 1_000_000;

/// Why an expression was refused at `add-rule`, with its position when it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    /// 1-based line and column.
    pub position: Option<(usize, usize)>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.position {
            Some((line, column)) => write!(
                f,
                "the CEL expression is invalid at line {line}, column {column}: {}",
                self.message
            ),
            None => write!(f, "the CEL expression is refused: {}", self.message),
        }
    }
}

/// A compiled, admitted expression.
pub struct CelRule {
    program: Program,
    /// The top-level fields of `facts` it reads (`None`: the whole document).
    fields: Option<Vec<String>>,
    /// Whether it calls the typed functions (which scan the document's lists).
    typed: bool,
}

impl CelRule {
    /// Its estimated cost with `sizes`.
    pub fn cost(&self, sizes: &Sizes) -> u64 {
        estimate(self.program.expression(), sizes)
    }
}

/// The standard environment, built once per process.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

fn refused(message: impl Into<String>) -> Refusal {
    Refusal {
        message: message.into(),
        position: None,
    }
}

/// Most compiled expressions kept by a process (a warm function compiles each rule once).
const CACHED: usize = 512;

/// Compiled, admitted expressions by their text.
static COMPILED: LazyLock<Mutex<HashMap<String, Arc<CelRule>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// [`compile`], once per process for each expression (a check-in evaluates every rule of its
/// policies; compiling a 4,096-character expression costs more than running most).
pub fn compiled(expr: &str) -> Result<Arc<CelRule>, Refusal> {
    if let Some(rule) = COMPILED.lock().ok().and_then(|c| c.get(expr).cloned()) {
        return Ok(rule);
    }
    let rule = Arc::new(compile(expr)?);
    if let Ok(mut cache) = COMPILED.lock() {
        if cache.len() >= CACHED {
            cache.clear();
        }
        cache.insert(expr.to_string(), rule.clone());
    }
    Ok(rule)
}

/// Compiles `expr` and checks its bounds.
pub fn compile(expr: &str) -> Result<CelRule, Refusal> {
    if expr.trim().is_empty() {
        return Err(refused("it is empty"));
    }
    if expr.chars().count() > MAX_EXPR_CHARS {
        return Err(refused(format!(
            "it is longer than {MAX_EXPR_CHARS} characters"
        )));
    }
    let program = ENV.compile(expr).map_err(|errors| {
        let first = errors.errors.first();
        Refusal {
            message: first.map_or_else(|| "syntax error".into(), |e| e.msg.clone()),
            position: first.map(|e| {
                (
                    usize::try_from(e.pos.0).unwrap_or(0).max(1),
                    usize::try_from(e.pos.1).unwrap_or(0) + 1,
                )
            }),
        }
    })?;
    let mut walk = Walk::default();
    walk.visit(program.expression(), 0);
    if walk.nodes > MAX_NODES {
        return Err(refused(format!(
            "it has more than {MAX_NODES} nodes once its macros expand"
        )));
    }
    if walk.max_depth > 1 {
        return Err(refused(
            "a comprehension (all, exists, exists_one, map, filter) inside another one walks a list of the document once per element of another: too costly",
        ));
    }
    let cost = estimate(program.expression(), &worst_sizes());
    if cost > MAX_COST {
        return Err(refused(format!(
            "its estimated cost ({cost}) is over {MAX_COST} on the largest document: a comprehension's body runs for each of up to {MAX_ITEMS} elements, and a membership test (in) or comparison inside it walks its operands each time"
        )));
    }
    if let Some(other) = walk
        .variables
        .iter()
        .find(|v| !walk.bound.contains(*v) && *v != "facts")
    {
        return Err(refused(format!(
            "it names {other:?}; the only variable is facts"
        )));
    }
    Ok(CelRule {
        program,
        fields: (!walk.whole_facts).then_some(walk.fields),
        typed: walk.typed,
    })
}

/// Counts an expression's nodes and comprehension depth, and what of `facts` it reads.
#[derive(Default)]
struct Walk {
    nodes: usize,
    typed: bool,
    max_depth: usize,
    variables: Vec<String>,
    bound: Vec<String>,
    fields: Vec<String>,
    whole_facts: bool,
}

impl Walk {
    /// Visits `e` inside `depth` comprehensions; returns the nodes under it.
    fn visit(&mut self, e: &IdedExpr, depth: usize) -> u64 {
        self.nodes += 1;
        let mut size = 1;
        match &e.expr {
            Expr::Call(call) => {
                self.typed |= super::kinds::is_cel_function(&call.func_name);
                if let Some(target) = &call.target {
                    size += self.visit(target, depth);
                }
                for a in &call.args {
                    size += self.visit(a, depth);
                }
            }
            Expr::Comprehension(c) => {
                let depth = depth + 1;
                self.max_depth = self.max_depth.max(depth);
                self.bound.push(c.iter_var.clone());
                if let Some(v) = &c.iter_var2 {
                    self.bound.push(v.clone());
                }
                self.bound.push(c.accu_var.clone());
                size += self.visit(&c.iter_range, depth - 1);
                size += self.visit(&c.accu_init, depth - 1);
                let body = self.visit(&c.loop_cond, depth) + self.visit(&c.loop_step, depth);
                size += self.visit(&c.result, depth - 1);
                size += body;
            }
            Expr::Ident(name) => {
                self.variables.push(name.clone());
                if name == "facts" {
                    self.whole_facts = true;
                }
            }
            Expr::List(list) => {
                for el in &list.elements {
                    size += self.visit(el, depth);
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let cel::common::ast::EntryExpr::MapEntry(m) = &entry.expr {
                        size += self.visit(&m.key, depth) + self.visit(&m.value, depth);
                    }
                }
            }
            Expr::Select(select) => {
                if let Expr::Ident(root) = &select.operand.expr {
                    if root == "facts" {
                        // `facts.<field>`: only that field is converted for CEL.
                        self.nodes += 1;
                        self.variables.push(root.clone());
                        if !self.fields.contains(&select.field) {
                            self.fields.push(select.field.clone());
                        }
                        return size + 1;
                    }
                }
                size += self.visit(&select.operand, depth);
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    if let cel::common::ast::EntryExpr::StructField(f) = &entry.expr {
                        size += self.visit(&f.value, depth);
                    }
                }
            }
            Expr::Literal(_) | Expr::Unspecified => {}
        }
        size
    }
}

/// A typed check's answer as CEL sees it: its verdict, or an error when it is unknown.
pub(super) fn decided(f: Found, function: &str) -> Result<bool, ExecutionError> {
    f.pass
        .ok_or_else(|| ExecutionError::function_error(function, format!("unknown: {}", f.seen)))
}

/// A function's declaration, its error as text.
pub(super) fn declared(r: Result<(), cel::DeclarationError>) -> Result<(), String> {
    r.map_err(|e| e.to_string())
}

/// `version_at_least`, and each kind's checks, as CEL functions over this document.
fn add_functions(ctx: &mut Context, facts: &Arc<Facts>) -> Result<(), String> {
    declared(ctx.add_function(
        "version_at_least",
        |v: Arc<String>, min: Arc<String>| -> Result<bool, ExecutionError> {
            version::at_least(&v, &min).ok_or_else(|| {
                ExecutionError::function_error(
                    "version_at_least",
                    "a version without a leading number",
                )
            })
        },
    ))?;
    for kind in kinds::KINDS {
        kind.add_cel_functions(ctx, facts)?;
    }
    Ok(())
}

/// Evaluates an admitted expression over `facts`: `true` passes, `false` fails, anything else
/// (an error, a field not reported, another type) is unknown.
pub fn evaluate(rule: &CelRule, facts: &Arc<Facts>) -> Found {
    evaluate_with(rule, &mut CelFacts::new(facts))
}

/// The estimated cost of `rule` on the document `converted` holds (the fields it reads are
/// converted first, as [`evaluate_with`] would): what a check-in charges for it.
pub fn cost_on(rule: &CelRule, converted: &mut CelFacts<'_>) -> u64 {
    let (_, sizes) = converted.document(rule.fields.as_deref(), rule.typed);
    rule.cost(&sizes)
}

/// [`evaluate`] with the document's conversion, and the check-in's budget, shared by the
/// rules of one check-in: the expression's cost on this document is charged before it runs,
/// and a rule the budget cannot pay for is unknown.
pub fn evaluate_with(rule: &CelRule, converted: &mut CelFacts<'_>) -> Found {
    let unknown = |why: String| Found {
        pass: None,
        seen: why,
        over_list: true,
    };
    let (cut, sizes) = converted.document(rule.fields.as_deref(), rule.typed);
    let cost = rule.cost(&sizes);
    if !converted.charge(cost) {
        tracing::warn!(
            event = "cel_budget_spent",
            cost,
            left = converted.budget_left(),
            "a CEL rule was not run: the check-in's budget is spent"
        );
        return unknown(format!(
            "not evaluated: its cost on this document ({cost}) is over what is left of the check-in's budget"
        ));
    }
    // `facts` borrows the check-in's converted document: nothing is copied for the run.
    let result = converted.with_bound(rule.fields.as_deref(), |facts| {
        let mut ctx = Context::with_env(ENV.clone());
        add_functions(&mut ctx, converted.facts)?;
        ctx.set_variable_resolver(facts);
        Ok(rule.program.execute(&ctx))
    });
    let result = match result {
        Ok(result) => result,
        Err(e) => return unknown(e),
    };
    match result {
        Ok(CelValue::Bool(pass)) => Found {
            // A false over a document that was cut may be true of the whole: unknown.
            pass: if !pass && cut { None } else { Some(pass) },
            seen: if pass { "true" } else { "false" }.into(),
            over_list: true,
        },
        // Never the value itself: it may be a whole list of the document.
        Ok(_) => unknown("the expression did not answer true or false".into()),
        Err(e) => unknown(short_error(&e)),
    }
}

fn short_error(e: &ExecutionError) -> String {
    let text = e.to_string();
    text.chars().take(160).collect()
}
