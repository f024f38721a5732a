//! `firewall`: the device reports its firewall on (`network.firewall_enabled`).

use std::sync::Arc;

use cel::{Context, ExecutionError};
use serde_json::Value;

use super::{Kind, Values};
use crate::compliance::cel::{decided, declared, CelFacts};
use crate::compliance::check::{found, Found};
use crate::facts::Facts;
use crate::model::RuleKind;

pub struct Firewall;

/// `network.firewall_enabled` is true.
pub fn check(facts: &Facts) -> Found {
    match facts
        .get("network")
        .and_then(|n| n.get("firewall_enabled"))
        .and_then(Value::as_bool)
    {
        None => found(None, "network.firewall_enabled not reported"),
        Some(on) => found(Some(on), if on { "on" } else { "off" }),
    }
}

impl Kind for Firewall {
    type Fields<'a> = ();
    const NAME: &'static str = "firewall";
    const ABOUT: &'static str = "The firewall is on.";
    const CEL_FUNCTIONS: &'static [&'static str] = &["firewall_enabled"];

    fn fields(kind: &RuleKind) -> Option<()> {
        matches!(kind, RuleKind::Firewall).then_some(())
    }

    fn from_values(_: &Values) -> Result<RuleKind, String> {
        Ok(RuleKind::Firewall)
    }

    fn check(_: &(), facts: &Arc<Facts>, _: &mut CelFacts<'_>) -> Found {
        check(facts)
    }

    fn title(_: &()) -> String {
        "Firewall turned on".into()
    }

    fn remediation(_: &()) -> String {
        "Turn on the firewall in your system settings, then sign in again.".into()
    }

    fn add_cel_functions(ctx: &mut Context, facts: &Arc<Facts>) -> Result<(), String> {
        let f = facts.clone();
        declared(
            ctx.add_function("firewall_enabled", move || -> Result<bool, ExecutionError> {
                decided(check(&f), "firewall_enabled")
            }),
        )
    }
}
