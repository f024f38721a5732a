//! The typed evaluator: each built-in rule kind over a checked-in facts document (authentik's
//! `DeviceFactsRequest`), and the functions CEL expressions call, which are these same checks.
//! One way to decide: a built-in rule and a CEL expression asking the same question get the
//! same answer, with the same notion of `unknown` (the device did not report what is needed).

use serde_json::Value;

use super::version;
use crate::facts::{program, Facts, Package};
use crate::model::DiskScope;

/// What a check found: its verdict, and the value it saw (or why it could not decide).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// `Some(true)` pass, `Some(false)` fail, `None` unknown.
    pub pass: Option<bool>,
    pub seen: String,
    /// Whether the check read a list the device may have sent in part (a stored snapshot that
    /// was truncated makes such a failing check unknown, not failing).
    pub over_list: bool,
}

fn found(pass: Option<bool>, seen: impl Into<String>) -> Found {
    Found {
        pass,
        seen: seen.into(),
        over_list: false,
    }
}

fn over_list(pass: Option<bool>, seen: impl Into<String>) -> Found {
    Found {
        over_list: true,
        ..found(pass, seen)
    }
}

/// Longest value shown as seen.
const MAX_SEEN: usize = 120;

fn shorten(s: &str) -> String {
    if s.chars().count() <= MAX_SEEN {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(MAX_SEEN).collect();
        out.push('…');
        out
    }
}

/// `os.<key>` as a string, if reported.
fn os_str<'a>(facts: &'a Facts, key: &str) -> Option<&'a str> {
    facts.get("os")?.get(key)?.as_str()
}

/// The device's OS family, if reported.
fn family(facts: &Facts) -> Option<&str> {
    os_str(facts, "family")
}

/// `os-family`: `os.family` is one of `allow`.
pub fn os_family(facts: &Facts, allow: &[String]) -> Found {
    match family(facts) {
        None => found(None, "os.family not reported"),
        Some(f) => found(Some(allow.iter().any(|a| a == f)), f),
    }
}

/// `os-version`: the device is not of `family`, or its `os.version` is at least `min`.
pub fn os_version(facts: &Facts, family_wanted: &str, min: &str) -> Found {
    match family(facts) {
        None => found(None, "os.family not reported"),
        Some(f) if f != family_wanted => found(Some(true), format!("{f} (rule does not apply)")),
        Some(_) => match os_str(facts, "version") {
            None => found(None, "os.version not reported"),
            Some(v) => found(version::at_least(v, min), shorten(v)),
        },
    }
}

/// Whether a mountpoint is the system disk's: `/`, `C:\` or `C:`, in any letter case.
fn is_system_mount(mountpoint: &str) -> bool {
    matches!(
        mountpoint.to_ascii_lowercase().as_str(),
        "/" | "c:\\" | "c:"
    )
}

/// `disk-encryption`: every disk (`all`), or the system disk, has `encryption_enabled: true`.
/// A disk without the field counts as not encrypted (the model's default is `false`).
pub fn disk_encryption(facts: &Facts, scope: DiskScope) -> Found {
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

/// `firewall`: `network.firewall_enabled` is true.
pub fn firewall(facts: &Facts) -> Found {
    match facts
        .get("network")
        .and_then(|n| n.get("firewall_enabled"))
        .and_then(Value::as_bool)
    {
        None => found(None, "network.firewall_enabled not reported"),
        Some(on) => found(Some(on), if on { "on" } else { "off" }),
    }
}

/// `software`: an installed package named `name` (any letter case), at `min_version` or later
/// when given. A matching package without a comparable version is unknown.
pub fn software(facts: &Facts, name: &str, min_version: Option<&str>) -> Found {
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

/// `process`: a running process whose program name (path and arguments stripped, any letter
/// case, `.exe` optional) is `name`.
pub fn process(facts: &Facts, name: &str) -> Found {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mac() -> Facts {
        Facts::from(json!({
            "os": {"family": "mac_os", "name": "macOS", "version": "14.4.1"},
            "disks": [
                {"name": "disk3s1", "mountpoint": "/", "encryption_enabled": true},
                {"name": "disk4s1", "mountpoint": "/Volumes/USB", "encryption_enabled": false}
            ],
            "network": {"hostname": "mac", "firewall_enabled": false, "interfaces": []},
            "software": [
                {"name": "Google Chrome", "version": "124.0.6367.91", "source": "app"},
                {"name": "odd", "version": "latest", "source": "app"}
            ],
            "processes": [
                {"id": 1, "name": "/sbin/launchd"},
                {"id": 88, "name": "/opt/osquery/lib/osquery.app/Contents/MacOS/osqueryd --flagfile /x"}
            ]
        }))
    }

    #[test]
    fn every_builtin_kind_passes_fails_or_is_unknown() {
        let f = mac();
        let none = Facts::from(json!({}));
        let table: Vec<(Found, Option<bool>)> = vec![
            (
                os_family(&f, &["mac_os".into(), "windows".into()]),
                Some(true),
            ),
            (os_family(&f, &["linux".into()]), Some(false)),
            (os_family(&none, &["linux".into()]), None),
            (os_version(&f, "mac_os", "14.4"), Some(true)),
            (os_version(&f, "mac_os", "15"), Some(false)),
            (os_version(&f, "windows", "99"), Some(true)),
            (
                os_version(
                    &Facts::from(json!({"os": {"family": "mac_os"}})),
                    "mac_os",
                    "14",
                ),
                None,
            ),
            (
                os_version(
                    &Facts::from(json!({"os": {"family": "mac_os", "version": "Sonoma"}})),
                    "mac_os",
                    "14",
                ),
                None,
            ),
            (disk_encryption(&f, DiskScope::System), Some(true)),
            (disk_encryption(&f, DiskScope::All), Some(false)),
            (
                disk_encryption(
                    &Facts::from(json!({"disks": [{"name": "d", "mountpoint": "/data"}]})),
                    DiskScope::System,
                ),
                None,
            ),
            (
                disk_encryption(
                    &Facts::from(json!({"disks": [{"name": "d", "mountpoint": "C:\\"}]})),
                    DiskScope::System,
                ),
                Some(false),
            ),
            (disk_encryption(&none, DiskScope::System), None),
            (firewall(&f), Some(false)),
            (
                firewall(&Facts::from(json!({"network": {"firewall_enabled": true}}))),
                Some(true),
            ),
            (firewall(&none), None),
            (software(&f, "google chrome", None), Some(true)),
            (software(&f, "Google Chrome", Some("124")), Some(true)),
            (software(&f, "Google Chrome", Some("125")), Some(false)),
            (software(&f, "Firefox", None), Some(false)),
            (software(&f, "odd", Some("1")), None),
            (software(&none, "x", None), None),
            (process(&f, "osqueryd"), Some(true)),
            (process(&f, "OSQUERYD.exe"), Some(true)),
            (process(&f, "falcond"), Some(false)),
            (
                process(
                    &Facts::from(
                        json!({"processes": [{"id": 4, "name": "C:\\Windows\\System32\\MsMpEng.exe"}]}),
                    ),
                    "msmpeng",
                ),
                Some(true),
            ),
            (process(&none, "x"), None),
        ];
        for (i, (got, want)) in table.iter().enumerate() {
            assert_eq!(got.pass, *want, "row {i}: {got:?}");
        }
    }

    #[test]
    fn what_was_seen_is_shown_and_lists_are_marked() {
        let f = mac();
        assert_eq!(os_version(&f, "mac_os", "15").seen, "14.4.1");
        assert_eq!(
            disk_encryption(&f, DiskScope::All).seen,
            "not encrypted: /Volumes/USB"
        );
        assert!(disk_encryption(&f, DiskScope::All).over_list);
        assert!(!firewall(&f).over_list);
        let long = Facts::from(json!({"os": {"family": "linux", "version": "1".repeat(500)}}));
        assert!(os_version(&long, "linux", "1").seen.chars().count() <= MAX_SEEN + 1);
    }
}
