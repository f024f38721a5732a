//! `cel`: a CEL expression over `facts` is true (`compliance/cel.rs` compiles it with its
//! bounds and runs it; its functions are the other kinds' checks).

use std::sync::Arc;

use super::{Kind, Opt, Takes, Values};
use crate::compliance::cel::{self, CelFacts};
use crate::compliance::check::Found;
use crate::error::CoreError;
use crate::facts::Facts;
use crate::model::RuleKind;

pub struct Cel;

impl Kind for Cel {
    type Fields<'a> = &'a str;
    const NAME: &'static str = "cel";
    const ABOUT: &'static str = "A CEL expression over `facts` is true.";
    const OPTIONS: &'static [Opt] = &[Opt {
        long: "expr",
        value: "EXPR",
        help: "The expression over `facts` (at most 4,096 characters); `policy add-rule --help` \
               lists the functions it may call.",
        takes: Takes::One,
    }];

    fn fields(kind: &RuleKind) -> Option<&str> {
        match kind {
            RuleKind::Cel { expr } => Some(expr),
            _ => None,
        }
    }

    fn from_values(values: &Values) -> Result<RuleKind, String> {
        Ok(RuleKind::Cel {
            expr: values.one("expr")?,
        })
    }

    /// Compiled with its bounds: a syntax error is refused with its line and column.
    fn validate(expr: &&str) -> Result<(), CoreError> {
        cel::compile(expr)
            .map(|_| ())
            .map_err(|refusal| CoreError::BadRequest(refusal.to_string()))
    }

    fn check(expr: &&str, _: &Arc<Facts>, converted: &mut CelFacts<'_>) -> Found {
        match cel::compiled(expr) {
            Ok(program) => cel::evaluate_with(&program, converted),
            // Admitted at add-rule; refused now only if the bounds changed since.
            Err(refusal) => Found {
                pass: None,
                seen: refusal.to_string(),
                over_list: false,
            },
        }
    }

    fn title(_: &&str) -> String {
        "Device check required by your organization".into()
    }

    fn remediation(_: &&str) -> String {
        "Contact your IT administrator.".into()
    }
}
