//! `os-family`: the device's `os.family` is one of a list.

use std::sync::Arc;

use super::{check_family, family_name, Kind, Opt, Takes, Values};
use crate::compliance::cel::CelFacts;
use crate::compliance::check::{family, found, Found};
use crate::error::CoreError;
use crate::facts::Facts;
use crate::model::RuleKind;

pub struct OsFamily;

/// `os.family` is one of `allow`.
pub fn check(facts: &Facts, allow: &[String]) -> Found {
    match family(facts) {
        None => found(None, "os.family not reported"),
        Some(f) => found(Some(allow.iter().any(|a| a == f)), f),
    }
}

impl Kind for OsFamily {
    type Fields<'a> = &'a [String];
    const NAME: &'static str = "os-family";
    const ABOUT: &'static str = "os.family is one of the list.";
    const OPTIONS: &'static [Opt] = &[Opt {
        long: "allow",
        value: "F,F",
        help: "Families: linux, unix, bsd, windows, mac_os, android, i_os, other.",
        takes: Takes::List,
    }];

    fn fields(kind: &RuleKind) -> Option<&[String]> {
        match kind {
            RuleKind::OsFamily { allow } => Some(allow),
            _ => None,
        }
    }

    fn from_values(values: &Values) -> Result<RuleKind, String> {
        Ok(RuleKind::OsFamily {
            allow: values.list("allow"),
        })
    }

    fn validate(allow: &&[String]) -> Result<(), CoreError> {
        if allow.is_empty() {
            return Err(CoreError::BadRequest(
                "os-family needs --allow with at least one family".into(),
            ));
        }
        allow.iter().try_for_each(|f| check_family(f))
    }

    fn check(allow: &&[String], facts: &Arc<Facts>, _: &mut CelFacts<'_>) -> Found {
        check(facts, allow)
    }

    fn title(allow: &&[String]) -> String {
        format!(
            "Operating system: {}",
            allow
                .iter()
                .map(|f| family_name(f))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    fn remediation(_: &&[String]) -> String {
        "Sign in from a device with a supported operating system.".into()
    }
}
