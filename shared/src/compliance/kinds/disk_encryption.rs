//! `disk-encryption`: the system disk (or every disk) reports `encryption_enabled: true`.

use std::sync::Arc;

use cel::{Context, ExecutionError};
use serde_json::Value;

use super::{Kind, Opt, Takes, Values};
use crate::compliance::cel::{decided, declared, CelFacts};
use crate::compliance::check::{over_list, shorten, Found};
use crate::facts::Facts;
use crate::model::{DiskScope, RuleKind};

pub struct DiskEncryption;

/// Whether a mountpoint is the system disk's: `/`, `C:\` or `C:`, in any letter case.
fn is_system_mount(mountpoint: &str) -> bool {
    matches!(
        mountpoint.to_ascii_lowercase().as_str(),
        "/" | "c:\\" | "c:"
    )
}

/// Every disk (`all`), or the system disk, has `encryption_enabled: true`. A disk without the
/// field counts as not encrypted (the model's default is `false`).
pub fn check(facts: &Facts, scope: DiskScope) -> Found {
    let Some(disks) = facts.get("disks").and_then(Value::as_array) else {
        return over_list(None, "disks not reported");
    };
    let encrypted = |d: &Value| d.get("encryption_enabled").and_then(Value::as_bool) == Some(true);
    let mount = |d: &Value| {
        d.get("mountpoint")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let chosen: Vec<&Value> = match scope {
        DiskScope::All => disks.iter().collect(),
        DiskScope::System => disks
            .iter()
            .filter(|d| is_system_mount(&mount(d)))
            .collect(),
    };
    if chosen.is_empty() {
        let why = match scope {
            DiskScope::All => "no disks reported",
            DiskScope::System => "no system disk (/ or C:) reported",
        };
        return over_list(None, why);
    }
    let clear: Vec<String> = chosen
        .iter()
        .filter(|d| !encrypted(d))
        .map(|d| mount(d))
        .collect();
    if clear.is_empty() {
        over_list(Some(true), "encrypted")
    } else {
        over_list(
            Some(false),
            shorten(&format!("not encrypted: {}", clear.join(", "))),
        )
    }
}

/// `system` or `all`.
fn scope_of(s: &str) -> Option<DiskScope> {
    match s {
        "system" => Some(DiskScope::System),
        "all" => Some(DiskScope::All),
        _ => None,
    }
}

impl Kind for DiskEncryption {
    type Fields<'a> = DiskScope;
    const NAME: &'static str = "disk-encryption";
    const ABOUT: &'static str = "The system disk (or every disk) is encrypted.";
    const OPTIONS: &'static [Opt] = &[Opt {
        long: "scope",
        value: "SCOPE",
        help: "system: the disk mounted at / or C:; all: every disk.",
        takes: Takes::Default("system"),
    }];
    const SCANS_LISTS: bool = true;
    const CEL_FUNCTIONS: &'static [&'static str] = &["disk_encrypted"];

    fn fields(kind: &RuleKind) -> Option<DiskScope> {
        match kind {
            RuleKind::DiskEncryption { scope } => Some(*scope),
            _ => None,
        }
    }

    fn from_values(values: &Values) -> Result<RuleKind, String> {
        let s = values.one("scope")?;
        let scope =
            scope_of(&s).ok_or_else(|| format!("unknown scope {s:?} (system or all)"))?;
        Ok(RuleKind::DiskEncryption { scope })
    }

    fn check(scope: &DiskScope, facts: &Arc<Facts>, _: &mut CelFacts<'_>) -> Found {
        check(facts, *scope)
    }

    fn title(scope: &DiskScope) -> String {
        match scope {
            DiskScope::System => "Disk encryption on the system disk".into(),
            DiskScope::All => "Disk encryption on every disk".into(),
        }
    }

    fn remediation(_: &DiskScope) -> String {
        "Turn on disk encryption (FileVault on macOS, BitLocker on Windows, LUKS on Linux), then sign in again.".into()
    }

    fn add_cel_functions(ctx: &mut Context, facts: &Arc<Facts>) -> Result<(), String> {
        let f = facts.clone();
        declared(ctx.add_function(
            "disk_encrypted",
            move |scope: Arc<String>| -> Result<bool, ExecutionError> {
                let Some(scope) = scope_of(&scope) else {
                    return Err(ExecutionError::function_error(
                        "disk_encrypted",
                        format!("scope {scope:?} is neither \"system\" nor \"all\""),
                    ));
                };
                decided(check(&f, scope), "disk_encrypted")
            },
        ))
    }
}
