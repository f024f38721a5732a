//! `software`: an installed package of a name (at a minimum version when given).

use std::sync::Arc;

use cel::{Context, ExecutionError};

use super::{check_name, check_version, Kind, Opt, Takes, Values};
use crate::compliance::cel::{decided, declared, CelFacts};
use crate::compliance::check::{over_list, shorten, Found};
use crate::compliance::version;
use crate::error::CoreError;
use crate::facts::{Facts, Package};
use crate::model::RuleKind;

pub struct Software;

/// An installed package named `name` (any letter case), at `min_version` or later when given.
/// A matching package without a comparable version is unknown.
pub fn check(facts: &Facts, name: &str, min_version: Option<&str>) -> Found {
    let Some(packages) = facts.packages() else {
        return over_list(None, "software not reported");
    };
    let named: Vec<Package<'_>> = packages
        .filter(|p| p.name.is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .collect();
    if named.is_empty() {
        return over_list(Some(false), "not installed");
    }
    let Some(min) = min_version else {
        return over_list(Some(true), "installed");
    };
    let versions: Vec<&str> = named.iter().filter_map(|p| p.version).collect();
    let seen = shorten(&versions.join(", "));
    if versions
        .iter()
        .any(|v| version::at_least(v, min) == Some(true))
    {
        return over_list(Some(true), seen);
    }
    if versions
        .iter()
        .any(|v| version::at_least(v, min) == Some(false))
    {
        return over_list(Some(false), seen);
    }
    over_list(None, "installed, version not comparable")
}

impl Kind for Software {
    /// The package's name and the minimum version.
    type Fields<'a> = (&'a str, Option<&'a str>);
    const NAME: &'static str = "software";
    const ABOUT: &'static str = "A package is installed (at a minimum version when given).";
    const OPTIONS: &'static [Opt] = &[
        Opt {
            long: "name",
            value: "N",
            help: "The package's name (any letter case).",
            takes: Takes::One,
        },
        Opt {
            long: "min-version",
            value: "V",
            help: "The lowest version accepted.",
            takes: Takes::Optional,
        },
    ];
    const SCANS_LISTS: bool = true;
    const CEL_FUNCTIONS: &'static [&'static str] = &["software_installed", "software_at_least"];

    fn fields(kind: &RuleKind) -> Option<(&str, Option<&str>)> {
        match kind {
            RuleKind::Software { name, min_version } => Some((name, min_version.as_deref())),
            _ => None,
        }
    }

    fn from_values(values: &Values) -> Result<RuleKind, String> {
        Ok(RuleKind::Software {
            name: values.one("name")?,
            min_version: values.optional("min-version"),
        })
    }

    fn validate(&(name, min_version): &(&str, Option<&str>)) -> Result<(), CoreError> {
        check_name("--name", name)?;
        min_version.map_or(Ok(()), |v| check_version("--min-version", v))
    }

    fn check(
        &(name, min_version): &(&str, Option<&str>),
        facts: &Arc<Facts>,
        _: &mut CelFacts<'_>,
    ) -> Found {
        check(facts, name, min_version)
    }

    fn title(&(name, min_version): &(&str, Option<&str>)) -> String {
        match min_version {
            Some(v) => format!("{name} {v} or later installed"),
            None => format!("{name} installed"),
        }
    }

    fn remediation(&(name, _): &(&str, Option<&str>)) -> String {
        format!("Install or update {name}, then sign in again.")
    }

    fn add_cel_functions(ctx: &mut Context, facts: &Arc<Facts>) -> Result<(), String> {
        let f = facts.clone();
        declared(ctx.add_function(
            "software_installed",
            move |name: Arc<String>| -> Result<bool, ExecutionError> {
                decided(check(&f, &name, None), "software_installed")
            },
        ))?;
        let f = facts.clone();
        declared(ctx.add_function(
            "software_at_least",
            move |name: Arc<String>, min: Arc<String>| -> Result<bool, ExecutionError> {
                decided(check(&f, &name, Some(&min)), "software_at_least")
            },
        ))
    }
}
