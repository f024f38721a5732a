//! `screen-lock`: the device reports its screen lock on.
//!
//! authentik's `DeviceFactsRequest` has no screen-lock field, so the fact comes from the
//! document's `vendor` map, where agents and tools beside them write their own namespaces
//! (`"goauthentik.io/platform"`, Fleet's `"fleetdm.com"`, ...): `screen_lock_enabled`, a
//! boolean, in any namespace. Every namespace that reports it must say `true`; none reporting
//! it is `unknown`.

use std::sync::Arc;

use cel::{Context, ExecutionError};
use serde_json::Value;

use super::{Kind, Values};
use crate::compliance::cel::{decided, declared, CelFacts};
use crate::compliance::check::{found, shorten, Found};
use crate::facts::Facts;
use crate::model::RuleKind;

pub struct ScreenLock;

/// The fact each vendor namespace may report.
pub const FIELD: &str = "screen_lock_enabled";

/// Every vendor namespace reporting `screen_lock_enabled` says `true` (at least one does).
pub fn check(facts: &Facts) -> Found {
    let reported: Vec<(&str, bool)> = facts
        .get("vendor")
        .and_then(Value::as_object)
        .map(|vendors| {
            vendors
                .iter()
                .filter_map(|(ns, v)| Some((ns.as_str(), v.get(FIELD)?.as_bool()?)))
                .collect()
        })
        .unwrap_or_default();
    if reported.is_empty() {
        return found(None, "vendor.*.screen_lock_enabled not reported");
    }
    let off: Vec<&str> = reported
        .iter()
        .filter(|(_, on)| !on)
        .map(|(ns, _)| *ns)
        .collect();
    if off.is_empty() {
        found(Some(true), "on")
    } else {
        found(Some(false), shorten(&format!("off ({})", off.join(", "))))
    }
}

impl Kind for ScreenLock {
    type Fields<'a> = ();
    const NAME: &'static str = "screen-lock";
    const ABOUT: &'static str = "The screen lock is on (vendor.*.screen_lock_enabled).";
    const CEL_FUNCTIONS: &'static [&'static str] = &["screen_lock_enabled"];

    fn fields(kind: &RuleKind) -> Option<()> {
        matches!(kind, RuleKind::ScreenLock).then_some(())
    }

    fn from_values(_: &Values) -> Result<RuleKind, String> {
        Ok(RuleKind::ScreenLock)
    }

    fn check(_: &(), facts: &Arc<Facts>, _: &mut CelFacts<'_>) -> Found {
        check(facts)
    }

    fn title(_: &()) -> String {
        "Screen lock turned on".into()
    }

    fn remediation(_: &()) -> String {
        "Turn on the screen lock (a password or PIN when the device wakes or sits idle) in your system settings, then sign in again.".into()
    }

    fn add_cel_functions(ctx: &mut Context, facts: &Arc<Facts>) -> Result<(), String> {
        let f = facts.clone();
        declared(ctx.add_function(
            "screen_lock_enabled",
            move || -> Result<bool, ExecutionError> {
                decided(check(&f), "screen_lock_enabled")
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::check;
    use crate::compliance::evaluate::evaluate;
    use crate::compliance::kinds::{by_name, name, Values};
    use crate::compliance::rules::{build, NewRule};
    use crate::compliance::{cel, kinds};
    use crate::facts::Facts;
    use crate::model::{
        Enforcement, Policy, RuleKind, UnknownAs, Verdict, WhenUnknown,
    };

    fn facts(vendor: serde_json::Value) -> Facts {
        Facts::from(json!({"os": {"family": "mac_os"}, "vendor": vendor}))
    }

    #[test]
    fn every_namespace_that_reports_it_must_say_on_and_none_reporting_it_is_unknown() {
        let on = facts(json!({"goauthentik.io/platform": {"screen_lock_enabled": true}}));
        let off = facts(json!({
            "goauthentik.io/platform": {"screen_lock_enabled": true},
            "fleetdm.com": {"screen_lock_enabled": false}
        }));
        let silent = facts(json!({"goauthentik.io/platform": {"agent_version": "0.8.0"}}));
        let odd = facts(json!({"x": {"screen_lock_enabled": "yes"}, "y": 3}));
        assert_eq!(check(&on).pass, Some(true));
        assert_eq!(check(&on).seen, "on");
        assert_eq!(check(&off).pass, Some(false));
        assert_eq!(check(&off).seen, "off (fleetdm.com)");
        assert_eq!(check(&silent).pass, None);
        assert_eq!(check(&odd).pass, None, "only a boolean counts");
        assert_eq!(check(&Facts::from(json!({}))).pass, None);
        assert!(!check(&off).over_list, "the vendor map is kept whole in a snapshot");
    }

    #[test]
    fn it_is_a_kind_of_the_table_stored_as_screen_lock_with_sentences_for_people() {
        let kind = by_name("screen-lock").expect("in the table");
        let built = kind.build(&Values::default()).expect("no options");
        assert_eq!(built, RuleKind::ScreenLock);
        assert_eq!(name(&built), "screen-lock");
        assert!(kind.options().is_empty() && !kind.scans_lists());
        assert_eq!(
            serde_json::to_value(&built).expect("serializes"),
            json!({"kind": "screen-lock"})
        );
        let rule = build(
            "r1".into(),
            NewRule {
                kind: built,
                title: None,
                remediation: None,
                enforce: Enforcement::Block,
                unknown: UnknownAs::Fail,
            },
        )
        .expect("valid");
        assert_eq!(rule.title, "Screen lock turned on");
        assert!(rule.remediation.starts_with("Turn on the screen lock"));
        assert!(kinds::is_cel_function("screen_lock_enabled"));
    }

    #[test]
    fn a_policy_and_a_cel_expression_decide_alike() {
        let rules = [
            RuleKind::ScreenLock,
            RuleKind::Cel {
                expr: "screen_lock_enabled()".into(),
            },
        ]
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            let new = NewRule {
                kind,
                title: None,
                remediation: None,
                enforce: Enforcement::Block,
                unknown: UnknownAs::Fail,
            };
            build(format!("r{i}"), new).expect("valid")
        })
        .collect();
        let policy = Policy {
            id: "p".into(),
            name: "laptops".into(),
            version: 1,
            max_facts_age: 86_400,
            when_unknown: WhenUnknown::Deny,
            rules,
            created_at: 0,
        };
        for (vendor, want) in [
            (json!({"a": {"screen_lock_enabled": true}}), Verdict::Pass),
            (json!({"a": {"screen_lock_enabled": false}}), Verdict::Fail),
            (json!({"a": {}}), Verdict::Unknown),
        ] {
            let doc = Arc::new(facts(vendor));
            let e = evaluate(&policy, &doc, false, 0, 0, None);
            let verdicts: Vec<Verdict> = e.rules.iter().map(|r| r.verdict).collect();
            assert_eq!(verdicts, [want, want]);
        }
        assert!(cel::compile("screen_lock_enabled() && firewall_enabled()").is_ok());
    }
}
