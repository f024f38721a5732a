//! `cel` rules: an expression in CEL (the crate `cel`, cel-rust) over the variable `facts`, the
//! checked-in document. Its functions are the typed evaluator's own checks, so a CEL rule and a
//! built-in rule asking the same question get the same answer:
//!
//! | function | is |
//! |---|---|
//! | `version_at_least(version, minimum)` | the contract's version comparison |
//! | `os_version_at_least(family, minimum)` | the `os-version` rule |
//! | `disk_encrypted("system" \| "all")` | the `disk-encryption` rule |
//! | `firewall_enabled()` | the `firewall` rule |
//! | `software_installed(name)`, `software_at_least(name, minimum)` | the `software` rule |
//! | `process_running(name)` | the `process` rule |
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
//! - an estimated cost of at most [`MAX_COST`]: every node costs 1, and the body of a
//!   comprehension costs [`MAX_LIST`] times its nodes (each list the document holds is cut to
//!   [`MAX_LIST`] elements before CEL sees it, and a failing result over a cut list is
//!   `unknown`); no regular expressions (the crate's `regex` feature is off).
//!
//! The worst expression these bounds admit, over lists of the largest size, evaluates in the
//! time `docs/PERFORMANCE.md` gives (benchmark `cel_worst_case`).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use cel::common::ast::Expr;
use cel::objects::Value as CelValue;
use cel::{Context, Env, ExecutionError, IdedExpr, Program};
use serde_json::Value;

use super::check::{self, Found};
use super::version;
use crate::facts::Facts;
use crate::model::DiskScope;

/// Longest expression, in characters.
pub const MAX_EXPR_CHARS: usize = 4096;
/// Most nodes of an expression once its macros expand.
pub const MAX_NODES: usize = 2000;
/// Most elements of any list of the document that an expression sees.
pub const MAX_LIST: usize = 10_000;
/// Largest estimated cost.
pub const MAX_COST: u64 = 300_000;

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
}

/// The standard environment, built once per process.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

fn refused(message: impl Into<String>) -> Refusal {
    Refusal {
        message: message.into(),
        position: None,
    }
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
    if walk.cost > MAX_COST {
        return Err(refused(format!(
            "its estimated cost ({}) is over {MAX_COST}: a comprehension's body costs {MAX_LIST} times its size",
            walk.cost
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
    })
}

/// Counts an expression's nodes, comprehension depth and cost, and what of `facts` it reads.
#[derive(Default)]
struct Walk {
    nodes: usize,
    cost: u64,
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
                self.cost = self
                    .cost
                    .saturating_add(body.saturating_mul(MAX_LIST as u64));
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
        self.cost = self.cost.saturating_add(1);
        size
    }
}

/// The document as CEL sees it, converted once per check-in however many rules read it: each
/// top-level field the expressions name becomes a CEL value the first time one asks for it
/// (each list cut to [`MAX_LIST`] elements), and is shared by the rules after.
pub struct CelFacts<'a> {
    facts: &'a Arc<Facts>,
    fields: HashMap<String, (CelValue, bool)>,
}

impl<'a> CelFacts<'a> {
    pub fn new(facts: &'a Arc<Facts>) -> Self {
        CelFacts {
            facts,
            fields: HashMap::new(),
        }
    }

    /// A top-level field as a CEL value, and whether a list was cut.
    fn field(&mut self, name: &str) -> Result<(CelValue, bool), String> {
        if let Some(known) = self.fields.get(name) {
            return Ok(known.clone());
        }
        let converted = match self.facts.get(name) {
            None => return Ok((CelValue::Null, false)),
            Some(Value::Array(items)) if items.len() > MAX_LIST => {
                (cel::to_value(&items[..MAX_LIST]), true)
            }
            Some(v) => (cel::to_value(v), false),
        };
        let value = converted
            .0
            .map_err(|e| format!("the facts could not be given to CEL: {e}"))?;
        self.fields
            .insert(name.to_string(), (value.clone(), converted.1));
        Ok((value, converted.1))
    }

    /// The `facts` variable of an expression that reads `fields` (`None`: all of them), and
    /// whether a list was cut.
    fn document(&mut self, fields: Option<&[String]>) -> Result<(CelValue, bool), String> {
        let names: Vec<String> = match fields {
            Some(f) => f.to_vec(),
            None => self.facts.names().into_iter().map(str::to_string).collect(),
        };
        let mut map = HashMap::with_capacity(names.len());
        let mut cut = false;
        for name in names {
            if self.facts.get(&name).is_none() {
                continue;
            }
            let (value, was_cut) = self.field(&name)?;
            cut |= was_cut;
            map.insert(name, value);
        }
        Ok((CelValue::from(map), cut))
    }
}

/// A typed check's answer as CEL sees it: its verdict, or an error when it is unknown.
fn decided(f: Found, function: &str) -> Result<bool, ExecutionError> {
    f.pass
        .ok_or_else(|| ExecutionError::function_error(function, format!("unknown: {}", f.seen)))
}

/// The typed checks as CEL functions over this document.
fn add_functions(ctx: &mut Context, facts: &Arc<Facts>) -> Result<(), String> {
    let declared = |r: Result<(), cel::DeclarationError>| r.map_err(|e| e.to_string());
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
    let f = facts.clone();
    declared(ctx.add_function(
        "os_version_at_least",
        move |family: Arc<String>, min: Arc<String>| {
            decided(check::os_version(&f, &family, &min), "os_version_at_least")
        },
    ))?;
    let f = facts.clone();
    declared(
        ctx.add_function("disk_encrypted", move |scope: Arc<String>| {
            let scope = match scope.as_str() {
                "all" => DiskScope::All,
                "system" => DiskScope::System,
                other => {
                    return Err(ExecutionError::function_error(
                        "disk_encrypted",
                        format!("scope {other:?} is neither \"system\" nor \"all\""),
                    ))
                }
            };
            decided(check::disk_encryption(&f, scope), "disk_encrypted")
        }),
    )?;
    let f = facts.clone();
    declared(ctx.add_function("firewall_enabled", move || {
        decided(check::firewall(&f), "firewall_enabled")
    }))?;
    let f = facts.clone();
    declared(
        ctx.add_function("software_installed", move |name: Arc<String>| {
            decided(check::software(&f, &name, None), "software_installed")
        }),
    )?;
    let f = facts.clone();
    declared(ctx.add_function(
        "software_at_least",
        move |name: Arc<String>, min: Arc<String>| {
            decided(check::software(&f, &name, Some(&min)), "software_at_least")
        },
    ))?;
    let f = facts.clone();
    declared(
        ctx.add_function("process_running", move |name: Arc<String>| {
            decided(check::process(&f, &name), "process_running")
        }),
    )?;
    Ok(())
}

/// Evaluates an admitted expression over `facts`: `true` passes, `false` fails, anything else
/// (an error, a field not reported, another type) is unknown.
pub fn evaluate(rule: &CelRule, facts: &Arc<Facts>) -> Found {
    evaluate_with(rule, &mut CelFacts::new(facts))
}

/// [`evaluate`] with the document's conversion shared by the rules of one evaluation.
pub fn evaluate_with(rule: &CelRule, converted: &mut CelFacts<'_>) -> Found {
    let unknown = |why: String| Found {
        pass: None,
        seen: why,
        over_list: true,
    };
    let (value, cut) = match converted.document(rule.fields.as_deref()) {
        Ok(v) => v,
        Err(e) => return unknown(e),
    };
    let mut ctx = Context::with_env(ENV.clone());
    if let Err(e) = add_functions(&mut ctx, converted.facts) {
        return unknown(e);
    }
    ctx.add_variable_from_value("facts", value);
    match rule.program.execute(&ctx) {
        Ok(CelValue::Bool(pass)) => Found {
            // A false over a list that was cut may be true of the whole list: unknown.
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
