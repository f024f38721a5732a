//! Rules as operators write them (`endpoint-admin policy add-rule`): what is accepted, and the
//! title and remediation a rule gets when the operator gives none (each kind's own, from its
//! file in `kinds/`). Titles and remediations are
//! what the person in front of the browser reads, so the defaults are sentences.

use super::kinds;
use crate::error::CoreError;
use crate::model::{Enforcement, Rule, RuleKind, UnknownAs};

/// Most rules in one policy (an evaluation is stored in one item and read at every login).
pub const MAX_RULES: usize = 50;
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_REMEDIATION_CHARS: usize = 1000;
pub use super::kinds::{family_name, FAMILIES, MAX_NAME_CHARS};

/// A rule before it has an id: what `add-rule` was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRule {
    pub kind: RuleKind,
    pub title: Option<String>,
    pub remediation: Option<String>,
    pub enforce: Enforcement,
    pub unknown: UnknownAs,
}

fn bad(message: String) -> CoreError {
    CoreError::BadRequest(message)
}

/// The title a rule gets unless the operator gives one (its kind's).
pub fn default_title(kind: &RuleKind) -> String {
    kinds::of(kind).title(kind)
}

/// The remediation a rule gets unless the operator gives one (its kind's).
pub fn default_remediation(kind: &RuleKind) -> String {
    kinds::of(kind).remediation(kind)
}

fn bounded(what: &str, s: &str, max: usize) -> Result<String, CoreError> {
    if s.trim().is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(bad(format!(
            "{what} must be 1 to {max} characters without control characters"
        )));
    }
    Ok(s.to_string())
}

/// The rule `new` describes, with id `id`, or why it is refused.
pub fn build(id: String, new: NewRule) -> Result<Rule, CoreError> {
    // What the kind was given (a CEL expression is compiled with its bounds).
    kinds::of(&new.kind).validate(&new.kind)?;
    if let Enforcement::Grace(s) = new.enforce {
        if s < 0 {
            return Err(bad("a grace period cannot be negative".into()));
        }
    }
    let title = match new.title {
        Some(t) => bounded("--title", &t, MAX_TITLE_CHARS)?,
        None => default_title(&new.kind),
    };
    let remediation = match new.remediation {
        Some(r) => bounded("--remediation", &r, MAX_REMEDIATION_CHARS)?,
        None => default_remediation(&new.kind),
    };
    Ok(Rule {
        id,
        kind: new.kind,
        title,
        remediation,
        enforce: new.enforce,
        unknown: new.unknown,
    })
}

/// `block`, `warn`, `audit` or `grace:DURATION`.
pub fn parse_enforcement(s: &str) -> Result<Enforcement, String> {
    match s {
        "block" => Ok(Enforcement::Block),
        "warn" => Ok(Enforcement::Warn),
        "audit" => Ok(Enforcement::Audit),
        other => match other.strip_prefix("grace:") {
            Some(d) => crate::settings::parse_duration(d).map(Enforcement::Grace),
            None => Err(format!(
                "unknown enforcement {other:?} (block, warn, audit or grace:DURATION such as grace:72h)"
            )),
        },
    }
}
