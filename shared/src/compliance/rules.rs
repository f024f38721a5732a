//! Rules as operators write them (`endpoint-admin policy add-rule`): what is accepted, and the
//! title and remediation a rule gets when the operator gives none. Titles and remediations are
//! what the person in front of the browser reads, so the defaults are sentences.

use super::cel;
use super::version;
use crate::error::CoreError;
use crate::model::{DiskScope, Enforcement, Rule, RuleKind, UnknownAs};

/// Most rules in one policy (an evaluation is stored in one item and read at every login).
pub const MAX_RULES: usize = 50;
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_REMEDIATION_CHARS: usize = 1000;
/// Longest software or process name, or minimum version.
pub const MAX_NAME_CHARS: usize = 256;
/// The OS families agents report (authentik's `DeviceFactsOSFamily`).
pub const FAMILIES: [&str; 8] = [
    "linux", "unix", "bsd", "windows", "mac_os", "android", "i_os", "other",
];

/// A family as people name it.
pub fn family_name(family: &str) -> &str {
    match family {
        "linux" => "Linux",
        "unix" => "Unix",
        "bsd" => "BSD",
        "windows" => "Windows",
        "mac_os" => "macOS",
        "android" => "Android",
        "i_os" => "iOS",
        "other" => "another OS",
        other => other,
    }
}

/// A rule before it has an id: what `add-rule` was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRule {
    pub kind: RuleKind,
    pub title: Option<String>,
    pub remediation: Option<String>,
    pub enforce: Enforcement,
    pub unknown: UnknownAs,
}

fn bad(message: String) -> CoreError {
    CoreError::BadRequest(message)
}

fn check_family(f: &str) -> Result<(), CoreError> {
    if FAMILIES.contains(&f) {
        Ok(())
    } else {
        Err(bad(format!(
            "unknown OS family {f:?} (one of {})",
            FAMILIES.join(", ")
        )))
    }
}

fn check_name(what: &str, s: &str) -> Result<(), CoreError> {
    if s.trim().is_empty() || s.chars().count() > MAX_NAME_CHARS || s.chars().any(char::is_control)
    {
        return Err(bad(format!(
            "{what} must be 1 to {MAX_NAME_CHARS} characters without control characters"
        )));
    }
    Ok(())
}

fn check_version(what: &str, v: &str) -> Result<(), CoreError> {
    check_name(what, v)?;
    version::parse(v)
        .map(|_| ())
        .ok_or_else(|| bad(format!("{what} {v:?} does not start with a number")))
}

/// Checks what the rule's kind was given; a CEL expression is compiled with its bounds.
fn check_kind(kind: &RuleKind) -> Result<(), CoreError> {
    match kind {
        RuleKind::OsFamily { allow } => {
            if allow.is_empty() {
                return Err(bad(
                    "os-family needs --allow with at least one family".into()
                ));
            }
            allow.iter().try_for_each(|f| check_family(f))
        }
        RuleKind::OsVersion { family, min } => {
            check_family(family)?;
            check_version("--min", min)
        }
        RuleKind::DiskEncryption { .. } | RuleKind::Firewall => Ok(()),
        RuleKind::Software { name, min_version } => {
            check_name("--name", name)?;
            min_version
                .as_deref()
                .map_or(Ok(()), |v| check_version("--min-version", v))
        }
        RuleKind::Process { name } => check_name("--name", name),
        RuleKind::Cel { expr } => cel::compile(expr)
            .map(|_| ())
            .map_err(|refusal| bad(refusal.to_string())),
    }
}

/// The title a rule gets unless the operator gives one.
pub fn default_title(kind: &RuleKind) -> String {
    match kind {
        RuleKind::OsFamily { allow } => format!(
            "Operating system: {}",
            allow
                .iter()
                .map(|f| family_name(f))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        RuleKind::OsVersion { family, min } => {
            format!("{} {min} or later", family_name(family))
        }
        RuleKind::DiskEncryption {
            scope: DiskScope::System,
        } => "Disk encryption on the system disk".into(),
        RuleKind::DiskEncryption {
            scope: DiskScope::All,
        } => "Disk encryption on every disk".into(),
        RuleKind::Firewall => "Firewall turned on".into(),
        RuleKind::Software {
            name,
            min_version: Some(v),
        } => format!("{name} {v} or later installed"),
        RuleKind::Software { name, .. } => format!("{name} installed"),
        RuleKind::Process { name } => format!("{name} running"),
        RuleKind::Cel { .. } => "Device check required by your organization".into(),
    }
}

/// The remediation a rule gets unless the operator gives one.
pub fn default_remediation(kind: &RuleKind) -> String {
    match kind {
        RuleKind::OsFamily { .. } => {
            "Sign in from a device with a supported operating system.".into()
        }
        RuleKind::OsVersion { family, min } => format!(
            "Update {} to version {min} or later, restart, and sign in again.",
            family_name(family)
        ),
        RuleKind::DiskEncryption { .. } => {
            "Turn on disk encryption (FileVault on macOS, BitLocker on Windows, LUKS on Linux), then sign in again.".into()
        }
        RuleKind::Firewall => "Turn on the firewall in your system settings, then sign in again.".into(),
        RuleKind::Software { name, .. } => {
            format!("Install or update {name}, then sign in again.")
        }
        RuleKind::Process { name } => format!("Start {name} (or restart the device), then sign in again."),
        RuleKind::Cel { .. } => "Contact your IT administrator.".into(),
    }
}

fn bounded(what: &str, s: &str, max: usize) -> Result<String, CoreError> {
    if s.trim().is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(bad(format!(
            "{what} must be 1 to {max} characters without control characters"
        )));
    }
    Ok(s.to_string())
}

/// The rule `new` describes, with id `id`, or why it is refused.
pub fn build(id: String, new: NewRule) -> Result<Rule, CoreError> {
    check_kind(&new.kind)?;
    if let Enforcement::Grace(s) = new.enforce {
        if s < 0 {
            return Err(bad("a grace period cannot be negative".into()));
        }
    }
    let title = match new.title {
        Some(t) => bounded("--title", &t, MAX_TITLE_CHARS)?,
        None => default_title(&new.kind),
    };
    let remediation = match new.remediation {
        Some(r) => bounded("--remediation", &r, MAX_REMEDIATION_CHARS)?,
        None => default_remediation(&new.kind),
    };
    Ok(Rule {
        id,
        kind: new.kind,
        title,
        remediation,
        enforce: new.enforce,
        unknown: new.unknown,
    })
}

/// `block`, `warn`, `audit` or `grace:DURATION`.
pub fn parse_enforcement(s: &str) -> Result<Enforcement, String> {
    match s {
        "block" => Ok(Enforcement::Block),
        "warn" => Ok(Enforcement::Warn),
        "audit" => Ok(Enforcement::Audit),
        other => match other.strip_prefix("grace:") {
            Some(d) => crate::settings::parse_duration(d).map(Enforcement::Grace),
            None => Err(format!(
                "unknown enforcement {other:?} (block, warn, audit or grace:DURATION such as grace:72h)"
            )),
        },
    }
}
