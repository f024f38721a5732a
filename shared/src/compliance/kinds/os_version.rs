//! `os-version`: the device is not of a family, or its `os.version` is at least a minimum.

use std::sync::Arc;

use cel::{Context, ExecutionError};

use super::{check_family, check_version, family_name, Kind, Opt, Takes, Values};
use crate::compliance::cel::{decided, declared, CelFacts};
use crate::compliance::check::{family, found, os_str, shorten, Found};
use crate::compliance::version;
use crate::error::CoreError;
use crate::facts::Facts;
use crate::model::RuleKind;

pub struct OsVersion;

/// The device is not of `family_wanted`, or its `os.version` is at least `min`.
pub fn check(facts: &Facts, family_wanted: &str, min: &str) -> Found {
    match family(facts) {
        None => found(None, "os.family not reported"),
        Some(f) if f != family_wanted => found(Some(true), format!("{f} (rule does not apply)")),
        Some(_) => match os_str(facts, "version") {
            None => found(None, "os.version not reported"),
            Some(v) => found(version::at_least(v, min), shorten(v)),
        },
    }
}

impl Kind for OsVersion {
    /// The family and the minimum.
    type Fields<'a> = (&'a str, &'a str);
    const NAME: &'static str = "os-version";
    const ABOUT: &'static str =
        "The device is not of the family, or its os.version is at least the minimum.";
    const OPTIONS: &'static [Opt] = &[
        Opt {
            long: "family",
            value: "F",
            help: "The family the rule applies to (devices of other families pass).",
            takes: Takes::One,
        },
        Opt {
            long: "min",
            value: "V",
            help: "The lowest version accepted (e.g. 14.4, 10.0.22631, 24.04).",
            takes: Takes::One,
        },
    ];
    const CEL_FUNCTIONS: &'static [&'static str] = &["os_version_at_least"];

    fn fields(kind: &RuleKind) -> Option<(&str, &str)> {
        match kind {
            RuleKind::OsVersion { family, min } => Some((family, min)),
            _ => None,
        }
    }

    fn from_values(values: &Values) -> Result<RuleKind, String> {
        Ok(RuleKind::OsVersion {
            family: values.one("family")?,
            min: values.one("min")?,
        })
    }

    fn validate(&(family, min): &(&str, &str)) -> Result<(), CoreError> {
        check_family(family)?;
        check_version("--min", min)
    }

    fn check(&(family, min): &(&str, &str), facts: &Arc<Facts>, _: &mut CelFacts<'_>) -> Found {
        check(facts, family, min)
    }

    fn title(&(family, min): &(&str, &str)) -> String {
        format!("{} {min} or later", family_name(family))
    }

    fn remediation(&(family, min): &(&str, &str)) -> String {
        format!(
            "Update {} to version {min} or later, restart, and sign in again.",
            family_name(family)
        )
    }

    fn add_cel_functions(ctx: &mut Context, facts: &Arc<Facts>) -> Result<(), String> {
        let f = facts.clone();
        declared(ctx.add_function(
            "os_version_at_least",
            move |family: Arc<String>, min: Arc<String>| -> Result<bool, ExecutionError> {
                decided(check(&f, &family, &min), "os_version_at_least")
            },
        ))
    }
}
