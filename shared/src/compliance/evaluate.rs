//! Evaluating a policy on a facts document: each rule through its kind's check (`kinds/`; CEL
//! rules through `cel`, whose functions are the same checks), each result with the rule's title,
//! remediation and enforcement, and each grace clock carried over from the previous
//! evaluation (a rule that keeps failing keeps its start; a pass resets it).

use std::sync::Arc;

use super::assess::assess;
use super::cel;
use super::check::Found;
use super::kinds;
use crate::facts::Facts;
use crate::model::{
    ComplianceStatus, Evaluation, Policy, PolicyRef, Rule, RuleResult, UnixTime, UnknownAs, Verdict,
};

/// One rule on the document, by its kind (`converted`: the document as CEL rules see it, and
/// the check-in's budget, shared by them). The kinds that scan the document's lists (software,
/// process, disks) charge their scan to the budget as CEL rules do.
fn check_rule(rule: &Rule, facts: &Arc<Facts>, converted: &mut cel::CelFacts<'_>) -> Found {
    let kind = kinds::of(&rule.kind);
    if kind.scans_lists() {
        let cost = converted.scan();
        if !converted.charge(cost) {
            return Found {
                pass: None,
                seen: "not evaluated: the check-in's budget is spent".into(),
                over_list: true,
            };
        }
    }
    kind.check(&rule.kind, facts, converted)
}

/// The verdict of a check, given whether the stored document is a bounded subset of what the
/// device sent: a failing check over a list the device sent in part is unknown.
fn verdict(found: &Found, truncated: bool) -> Verdict {
    match found.pass {
        Some(true) => Verdict::Pass,
        Some(false) if truncated && found.over_list => Verdict::Unknown,
        Some(false) => Verdict::Fail,
        None => Verdict::Unknown,
    }
}

/// Whether a result counts as failing (its grace clock runs).
fn failing(verdict: Verdict, unknown: UnknownAs) -> bool {
    match verdict {
        Verdict::Pass => false,
        Verdict::Fail => true,
        Verdict::Unknown => unknown == UnknownAs::Fail,
    }
}

/// Evaluates `policy` on `facts` (reported at `facts_at`, stored whole unless `truncated`) at
/// `now`, carrying grace clocks over from `previous`.
pub fn evaluate(
    policy: &Policy,
    facts: &Arc<Facts>,
    truncated: bool,
    facts_at: UnixTime,
    now: UnixTime,
    previous: Option<&Evaluation>,
) -> Evaluation {
    evaluate_in(
        policy,
        &mut cel::CelFacts::new(facts),
        truncated,
        facts_at,
        now,
        previous,
    )
}

/// [`evaluate`] with the document as CEL sees it, and the budget, shared with the other
/// policies of one check-in.
pub fn evaluate_in(
    policy: &Policy,
    converted: &mut cel::CelFacts<'_>,
    truncated: bool,
    facts_at: UnixTime,
    now: UnixTime,
    previous: Option<&Evaluation>,
) -> Evaluation {
    let facts = converted.facts;
    let rules: Vec<RuleResult> = policy
        .rules
        .iter()
        .map(|rule| {
            let found = check_rule(rule, facts, converted);
            let verdict = verdict(&found, truncated);
            let failing_since = failing(verdict, rule.unknown).then(|| {
                previous
                    .and_then(|p| p.rules.iter().find(|r| r.rule == rule.id))
                    .and_then(|r| r.failing_since)
                    .unwrap_or(now)
            });
            RuleResult {
                rule: rule.id.clone(),
                title: rule.title.clone(),
                remediation: rule.remediation.clone(),
                enforce: rule.enforce,
                unknown: rule.unknown,
                verdict,
                seen: Some(found.seen),
                failing_since,
            }
        })
        .collect();
    let mut evaluation = Evaluation {
        policy: policy.id.clone(),
        version: policy.version,
        evaluated_at: now,
        facts_at,
        max_facts_age: policy.max_facts_age,
        status: ComplianceStatus::Unknown,
        rules,
        last_known: None,
    };
    let policy_ref = PolicyRef {
        id: policy.id.clone(),
        version: policy.version,
        when_unknown: policy.when_unknown,
    };
    evaluation.status = assess(&policy_ref, std::slice::from_ref(&evaluation), now).status;
    evaluation.last_known = evaluation.known().or(previous.and_then(Evaluation::known));
    evaluation
}

/// `policy P: compliant -> non_compliant; failing: r1,r2`.
pub fn change_reason(evaluation: &Evaluation, before: ComplianceStatus) -> String {
    let failing: Vec<&str> = evaluation
        .rules
        .iter()
        .filter(|r| r.verdict != Verdict::Pass)
        .map(|r| r.rule.as_str())
        .collect();
    format!(
        "policy {}: {} -> {}; failing: {}",
        evaluation.policy,
        before.as_str(),
        evaluation.status.as_str(),
        if failing.is_empty() {
            "none".to_string()
        } else {
            failing.join(",")
        }
    )
}
