//! `process`: a running process of a program name.

use std::sync::Arc;

use cel::{Context, ExecutionError};

use super::{check_name, Kind, Opt, Takes, Values};
use crate::compliance::cel::{decided, declared, CelFacts};
use crate::compliance::check::{over_list, Found};
use crate::error::CoreError;
use crate::facts::{program, Facts};
use crate::model::RuleKind;

pub struct Process;

/// A running process whose program name (path and arguments stripped, any letter case, `.exe`
/// optional) is `name`.
pub fn check(facts: &Facts, name: &str) -> Found {
    let Some(programs) = facts.programs() else {
        return over_list(None, "processes not reported");
    };
    let wanted = program(name);
    let running = programs.into_iter().any(|p| p == wanted);
    over_list(
        Some(running),
        if running { "running" } else { "not running" },
    )
}

impl Kind for Process {
    type Fields<'a> = &'a str;
    const NAME: &'static str = "process";
    const ABOUT: &'static str = "A process is running.";
    const OPTIONS: &'static [Opt] = &[Opt {
        long: "name",
        value: "N",
        help: "The program's name, without its path or arguments (any letter case).",
        takes: Takes::One,
    }];
    const SCANS_LISTS: bool = true;
    const CEL_FUNCTIONS: &'static [&'static str] = &["process_running"];

    fn fields(kind: &RuleKind) -> Option<&str> {
        match kind {
            RuleKind::Process { name } => Some(name),
            _ => None,
        }
    }

    fn from_values(values: &Values) -> Result<RuleKind, String> {
        Ok(RuleKind::Process {
            name: values.one("name")?,
        })
    }

    fn validate(name: &&str) -> Result<(), CoreError> {
        check_name("--name", name)
    }

    fn check(name: &&str, facts: &Arc<Facts>, _: &mut CelFacts<'_>) -> Found {
        check(facts, name)
    }

    fn title(name: &&str) -> String {
        format!("{name} running")
    }

    fn remediation(name: &&str) -> String {
        format!("Start {name} (or restart the device), then sign in again.")
    }

    fn add_cel_functions(ctx: &mut Context, facts: &Arc<Facts>) -> Result<(), String> {
        let f = facts.clone();
        declared(ctx.add_function(
            "process_running",
            move |name: Arc<String>| -> Result<bool, ExecutionError> {
                decided(check(&f, &name), "process_running")
            },
        ))
    }
}
