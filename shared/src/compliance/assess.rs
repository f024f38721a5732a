//! The login decision from a stored evaluation, at the time of the login: no facts, no
//! policy and no CEL are needed, so the response function decides from the device partition it
//! already reads. The clock-dependent parts are checked here, against `now`: the maximum facts
//! age, and each grace deadline (a rule whose grace ran out since the last check-in blocks).

use crate::model::{
    ComplianceStatus, ComplianceView, Enforcement, Evaluation, PolicyRef, RuleResult, ShownRule,
    UnixTime, UnknownAs, Verdict, Warning, WhenUnknown,
};

/// Why a required stage denies a device that does not meet its policy.
pub const MSG_NON_COMPLIANT: &str = "This device does not meet the requirements to sign in.";

/// How a failing rule shows, and whether it fails the device now.
enum Effect {
    Fails,
    Warns(Option<UnixTime>),
    Silent,
}

/// The effect of one rule's result at `now`.
fn effect(r: &RuleResult, now: UnixTime) -> Effect {
    let failing = match r.verdict {
        Verdict::Pass => false,
        Verdict::Fail => true,
        Verdict::Unknown => r.unknown == UnknownAs::Fail,
    };
    if !failing {
        return Effect::Silent;
    }
    match r.enforce {
        Enforcement::Block => Effect::Fails,
        Enforcement::Warn => Effect::Warns(None),
        Enforcement::Audit => Effect::Silent,
        Enforcement::Grace(seconds) => {
            let deadline = r.failing_since.unwrap_or(now).saturating_add(seconds);
            if now < deadline {
                Effect::Warns(Some(deadline))
            } else {
                Effect::Fails
            }
        }
    }
}

fn shown(r: &RuleResult) -> ShownRule {
    ShownRule {
        rule: r.rule.clone(),
        title: r.title.clone(),
        enforcement: enforcement_label(r.enforce),
        remediation: r.remediation.clone(),
    }
}

/// `block`, `warn`, `audit` or `grace:` with the largest whole unit (`grace:72h`).
pub fn enforcement_label(e: Enforcement) -> String {
    match e {
        Enforcement::Block => "block".into(),
        Enforcement::Warn => "warn".into(),
        Enforcement::Audit => "audit".into(),
        Enforcement::Grace(s) => format!("grace:{}", duration_label(s)),
    }
}

/// Seconds as the largest whole unit: `259200` -> `3d`, `5400` -> `90m`, `7` -> `7s`.
pub fn duration_label(seconds: i64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds != 0 && seconds % size == 0 {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

/// Whether the evaluation speaks for the policy version the plan snapshotted, on facts that
/// are not too old at `now`.
fn current(e: &Evaluation, policy: &PolicyRef, now: UnixTime) -> bool {
    e.policy == policy.id
        && e.version == policy.version
        && now < e.facts_at.saturating_add(e.max_facts_age)
}

/// The device's compliance with `policy` at `now`, from its stored evaluations.
pub fn assess(policy: &PolicyRef, evaluations: &[Evaluation], now: UnixTime) -> ComplianceView {
    let stored = evaluations.iter().find(|e| e.policy == policy.id);
    let mut view = ComplianceView {
        policy: policy.id.clone(),
        version: policy.version,
        status: ComplianceStatus::Unknown,
        evaluated_at: stored.map(|e| e.evaluated_at),
        facts_at: stored.map(|e| e.facts_at),
        failed: Vec::new(),
        warnings: Vec::new(),
    };
    let Some(e) = stored.filter(|e| current(e, policy, now)) else {
        return view;
    };
    for r in &e.rules {
        match effect(r, now) {
            Effect::Fails => view.failed.push(shown(r)),
            Effect::Warns(deadline) => view.warnings.push(Warning {
                rule: shown(r),
                deadline,
            }),
            Effect::Silent => {}
        }
    }
    view.status = if view.failed.is_empty() {
        ComplianceStatus::Compliant
    } else {
        ComplianceStatus::NonCompliant
    };
    view
}

/// Whether a required stage lets the device pass with this view: compliant, or unknown when
/// the policy says `--when-unknown allow`.
pub fn admits(view: &ComplianceView, when_unknown: WhenUnknown) -> bool {
    match view.status {
        ComplianceStatus::Compliant => true,
        ComplianceStatus::NonCompliant => false,
        ComplianceStatus::Unknown => when_unknown == WhenUnknown::Allow,
    }
}
