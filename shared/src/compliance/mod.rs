//! Device compliance: posture policies over the facts devices check in.
//!
//! | file | job | linked by |
//! |---|---|---|
//! | `assess.rs` | the login decision from a stored evaluation, at the login's time | every function that decides |
//! | `version.rs` | the contract's version comparison | all |
//! | `kinds/` | each rule kind in one file: its options, check, validation, default title and remediation, CEL functions; the one table of kinds | feature `policy` |
//! | `check.rs` | what a check found, and what the kinds' checks share | feature `policy` |
//! | `cel.rs` | `cel` rules: compiled with bounded cost, their functions the typed checks | feature `policy` |
//! | `cel_cost.rs` | the bound on a CEL expression's work, from its syntax and the document's sizes | feature `policy` |
//! | `cel_facts.rs` | the document as CEL sees it (cut at every depth), and the check-in's budget | feature `policy` |
//! | `cel_shared.rs` | its lists and maps, copied by reference when CEL binds them | feature `policy` |
//! | `cel_text.rs` | a field read for CEL from the JSON text in one pass: measured, converted | feature `policy` |
//! | `evaluate.rs` | a policy on a document, with grace clocks carried over | feature `policy` |
//! | `rules.rs` | rules as operators write them: building a rule, through its kind | feature `policy` |
//! | `admin.rs` | operator operations: versions, stages, the dry run, re-evaluation | feature `policy` |
//!
//! Evaluation happens where facts arrive (`check_in/`, the agent function) and where operators
//! ask (`endpoint-admin policy test` and `reevaluate`); the response function decides from the
//! stored result and links no CEL.

#[cfg(feature = "policy")]
pub mod admin;
pub mod assess;
pub mod version;

#[cfg(feature = "policy")]
pub mod cel;
#[cfg(feature = "policy")]
pub mod cel_cost;
#[cfg(feature = "policy")]
mod cel_facts;
#[cfg(feature = "policy")]
mod cel_shared;
#[cfg(feature = "policy")]
mod cel_text;
#[cfg(feature = "policy")]
pub mod check;
#[cfg(feature = "policy")]
pub mod evaluate;
#[cfg(feature = "policy")]
pub mod kinds;
#[cfg(feature = "policy")]
pub mod rules;
