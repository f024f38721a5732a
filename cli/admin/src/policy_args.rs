//! The arguments of `endpoint-admin policy ...` (posture policies and their rules).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use endpoint_core::compliance::rules::parse_enforcement;
use endpoint_core::model::{DiskScope, Enforcement, RuleKind, UnknownAs, WhenUnknown};

/// Any duration, zero included (`--max-facts-age 0s` makes every device unknown).
fn any_duration(s: &str) -> Result<i64, String> {
    endpoint_core::settings::parse_duration(s)
}

#[derive(Subcommand, Debug, Clone)]
pub enum PolicyCommand {
    /// Create a policy (no rules yet); prints its id.
    Create {
        /// What operators call it (not shown to people signing in).
        #[arg(long)]
        name: String,
        /// Facts older than this count as no facts (e.g. 12h, 7d).
        #[arg(long = "max-facts-age", value_parser = any_duration, default_value = "24h")]
        max_facts_age: i64,
        /// What a required stage does with a device that has no current evaluation.
        #[arg(long = "when-unknown", default_value = "deny", value_parser = parse_when_unknown)]
        when_unknown: WhenUnknown,
    },
    /// Add a rule; prints its id. The policy's version increases, and every stage using it
    /// follows.
    AddRule {
        /// The policy.
        policy: String,
        #[command(subcommand)]
        kind: RuleKindArgs,
    },
    /// Remove a rule (the policy's version increases).
    RemoveRule {
        /// The policy.
        policy: String,
        /// The rule's id.
        rule: String,
    },
    /// Show a policy with its rules.
    Show {
        /// The policy.
        policy: String,
    },
    /// List policies.
    List,
    /// Delete a policy (refused while a stage uses it).
    Delete {
        /// The policy.
        policy: String,
    },
    /// Evaluate now and print every rule's result with the value seen; stores nothing.
    Test {
        /// The policy.
        policy: String,
        /// A device's latest stored facts.
        #[arg(long, conflicts_with = "facts", required_unless_present = "facts")]
        device: Option<String>,
        /// A facts document (authentik's DeviceFactsRequest as JSON; - for stdin).
        #[arg(long)]
        facts: Option<PathBuf>,
    },
    /// Evaluate every device's stored facts against the current version (progress on stderr;
    /// safe to interrupt and run again).
    Reevaluate {
        /// The policy.
        policy: String,
        /// Devices per page.
        #[arg(long = "page-size", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        page_size: u32,
        /// Go on after this serial (the last one a previous run reported).
        #[arg(long)]
        after: Option<String>,
    },
}

fn parse_when_unknown(s: &str) -> Result<WhenUnknown, String> {
    s.parse()
}

fn parse_unknown(s: &str) -> Result<UnknownAs, String> {
    match s {
        "fail" => Ok(UnknownAs::Fail),
        "pass" => Ok(UnknownAs::Pass),
        other => Err(format!("unknown value {other:?} (fail or pass)")),
    }
}

fn parse_scope(s: &str) -> Result<DiskScope, String> {
    match s {
        "system" => Ok(DiskScope::System),
        "all" => Ok(DiskScope::All),
        other => Err(format!("unknown scope {other:?} (system or all)")),
    }
}

/// What every rule takes besides its kind's own options.
#[derive(Args, Debug, Clone)]
pub struct RuleOptions {
    /// What the person signing in reads (default: made from the rule).
    #[arg(long)]
    pub title: Option<String>,
    /// How to fix it, in words (default: made from the rule).
    #[arg(long)]
    pub remediation: Option<String>,
    /// block, warn, audit or grace:DURATION (warn until DURATION after the first failure).
    #[arg(long, default_value = "block", value_parser = parse_enforcement)]
    pub enforce: Enforcement,
    /// How a fact the device did not report counts: fail or pass.
    #[arg(long, default_value = "fail", value_parser = parse_unknown)]
    pub unknown: UnknownAs,
}

#[derive(Subcommand, Debug, Clone)]
pub enum RuleKindArgs {
    /// os.family is one of the list.
    OsFamily {
        /// Families: linux, unix, bsd, windows, mac_os, android, i_os, other.
        #[arg(long, value_delimiter = ',', required = true)]
        allow: Vec<String>,
        #[command(flatten)]
        options: RuleOptions,
    },
    /// The device is not of the family, or its os.version is at least the minimum.
    OsVersion {
        /// The family the rule applies to (devices of other families pass).
        #[arg(long)]
        family: String,
        /// The lowest version accepted (e.g. 14.4, 10.0.22631, 24.04).
        #[arg(long)]
        min: String,
        #[command(flatten)]
        options: RuleOptions,
    },
    /// The system disk (or every disk) is encrypted.
    DiskEncryption {
        /// system: the disk mounted at / or C:; all: every disk.
        #[arg(long, default_value = "system", value_parser = parse_scope)]
        scope: DiskScope,
        #[command(flatten)]
        options: RuleOptions,
    },
    /// The firewall is on.
    Firewall {
        #[command(flatten)]
        options: RuleOptions,
    },
    /// A package is installed (at a minimum version when given).
    Software {
        /// The package's name (any letter case).
        #[arg(long)]
        name: String,
        /// The lowest version accepted.
        #[arg(long = "min-version")]
        min_version: Option<String>,
        #[command(flatten)]
        options: RuleOptions,
    },
    /// A process is running.
    Process {
        /// The program's name, without its path or arguments (any letter case).
        #[arg(long)]
        name: String,
        #[command(flatten)]
        options: RuleOptions,
    },
    /// A CEL expression over `facts` is true.
    Cel {
        /// The expression over `facts` (at most 4,096 characters); also version_at_least(),
        /// os_version_at_least(), disk_encrypted(), firewall_enabled(), software_installed(),
        /// software_at_least(), process_running().
        #[arg(long)]
        expr: String,
        #[command(flatten)]
        options: RuleOptions,
    },
}

impl RuleKindArgs {
    /// The rule kind and the common options.
    pub fn into_parts(self) -> (RuleKind, RuleOptions) {
        match self {
            RuleKindArgs::OsFamily { allow, options } => (RuleKind::OsFamily { allow }, options),
            RuleKindArgs::OsVersion {
                family,
                min,
                options,
            } => (RuleKind::OsVersion { family, min }, options),
            RuleKindArgs::DiskEncryption { scope, options } => {
                (RuleKind::DiskEncryption { scope }, options)
            }
            RuleKindArgs::Firewall { options } => (RuleKind::Firewall, options),
            RuleKindArgs::Software {
                name,
                min_version,
                options,
            } => (RuleKind::Software { name, min_version }, options),
            RuleKindArgs::Process { name, options } => (RuleKind::Process { name }, options),
            RuleKindArgs::Cel { expr, options } => (RuleKind::Cel { expr }, options),
        }
    }
}
