//! Device compliance as data: posture policies and their rules, the evaluation stored with a
//! device at each check-in, and what a plan shows of it. The rules that decide live in the
//! domain (`compliance`); these are the values the stores keep and the plans carry.

use serde::{Deserialize, Serialize};

use super::UnixTime;

/// What a required stage does with a device that has no current evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WhenUnknown {
    #[default]
    Deny,
    Allow,
}

impl WhenUnknown {
    pub fn as_str(self) -> &'static str {
        match self {
            WhenUnknown::Deny => "deny",
            WhenUnknown::Allow => "allow",
        }
    }
}

impl std::str::FromStr for WhenUnknown {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "deny" => Ok(WhenUnknown::Deny),
            "allow" => Ok(WhenUnknown::Allow),
            other => Err(format!("unknown value {other:?} (deny or allow)")),
        }
    }
}

/// Which disks `disk-encryption` looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DiskScope {
    /// The system disk (mountpoint `/`, `C:\` or `C:`).
    #[default]
    System,
    All,
}

/// What a rule checks. Everything about each kind (options, check, validation, default title
/// and remediation, CEL functions) is in its own file, `compliance/kinds/`; the variant is the
/// stored shape (`{"kind": "os-version", ...}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RuleKind {
    OsFamily {
        allow: Vec<String>,
    },
    OsVersion {
        family: String,
        min: String,
    },
    DiskEncryption {
        scope: DiskScope,
    },
    Firewall,
    Software {
        name: String,
        min_version: Option<String>,
    },
    Process {
        name: String,
    },
    ScreenLock,
    Cel {
        expr: String,
    },
}

/// What a failing rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// Fails the device.
    Block,
    /// Shown, never fails the device.
    Warn,
    /// Recorded only.
    Audit,
    /// `warn` until this many seconds after the rule first failed on the device, then `block`.
    Grace(i64),
}

/// How a rule counts when the device did not report what it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnknownAs {
    #[default]
    Fail,
    Pass,
}

/// One rule of a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    #[serde(flatten)]
    pub kind: RuleKind,
    /// What the person in front of the browser reads.
    pub title: String,
    pub remediation: String,
    pub enforce: Enforcement,
    pub unknown: UnknownAs,
}

/// A named, versioned list of rules over the facts a device checks in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub id: String,
    pub name: String,
    /// Increases with every rule added or removed.
    pub version: u32,
    /// Facts older than this (seconds) count as no facts.
    pub max_facts_age: i64,
    pub when_unknown: WhenUnknown,
    pub rules: Vec<Rule>,
    pub created_at: UnixTime,
}

/// What a stage (and a plan's snapshot of it) knows of its policy: enough to decide at login
/// from the stored evaluation alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRef {
    pub id: String,
    pub version: u32,
    pub when_unknown: WhenUnknown,
}

/// A rule's result on a facts document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Unknown => "unknown",
        }
    }
}

/// One rule's stored result, with what the login decision and the page need of the rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleResult {
    pub rule: String,
    pub title: String,
    pub remediation: String,
    pub enforce: Enforcement,
    pub unknown: UnknownAs,
    pub verdict: Verdict,
    /// The value the rule saw (shortened), or why it is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<String>,
    /// When the rule started failing on this device (its grace clock); `None` while it passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<UnixTime>,
}

/// A device's status under a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComplianceStatus {
    Compliant,
    NonCompliant,
    Unknown,
}

impl ComplianceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ComplianceStatus::Compliant => "compliant",
            ComplianceStatus::NonCompliant => "non_compliant",
            ComplianceStatus::Unknown => "unknown",
        }
    }
}

/// A policy's evaluation of one device's facts, stored with the device at each check-in (and
/// by `policy reevaluate`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    pub policy: String,
    pub version: u32,
    pub evaluated_at: UnixTime,
    /// When the facts were reported.
    pub facts_at: UnixTime,
    pub max_facts_age: i64,
    /// The status at `evaluated_at` (what `device list --non-compliant` and the audit trail
    /// use; the login decision recomputes it at its own time).
    pub status: ComplianceStatus,
    pub rules: Vec<RuleResult>,
    /// The last known (not `unknown`) status, this one's or a previous evaluation's: what a
    /// signal's `previous_status` is (an `unknown` in between changes nothing).
    #[serde(default)]
    pub last_known: Option<ComplianceStatus>,
}

impl Evaluation {
    /// The last known status (also of evaluations stored before it was kept).
    pub fn known(&self) -> Option<ComplianceStatus> {
        match self.status {
            ComplianceStatus::Unknown => self.last_known,
            known => Some(known),
        }
    }
}

/// A rule as the plan, the denial and the page show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShownRule {
    pub rule: String,
    pub title: String,
    /// `block`, `warn`, `audit` or `grace:72h`.
    pub enforcement: String,
    pub remediation: String,
}

/// A failing rule that does not (yet) fail the device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    #[serde(flatten)]
    pub rule: ShownRule,
    /// When a rule in its grace period starts blocking (`None`: a `warn` rule never does).
    pub deadline: Option<UnixTime>,
}

/// The contract's `compliance` object of a plan and of a denial.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceView {
    pub policy: String,
    pub version: u32,
    pub status: ComplianceStatus,
    pub evaluated_at: Option<UnixTime>,
    pub facts_at: Option<UnixTime>,
    pub failed: Vec<ShownRule>,
    pub warnings: Vec<Warning>,
}
