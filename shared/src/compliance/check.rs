//! What a check found, and what the checks share. Each rule kind's check lives in its own file
//! (`kinds/`), over a checked-in facts document (authentik's `DeviceFactsRequest`); the functions
//! CEL expressions call are these same checks. One way to decide: a built-in rule and a CEL
//! expression asking the same question get the same answer, with the same notion of `unknown`
//! (the device did not report what is needed).

use crate::facts::Facts;

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

pub(super) fn found(pass: Option<bool>, seen: impl Into<String>) -> Found {
    Found {
        pass,
        seen: seen.into(),
        over_list: false,
    }
}

pub(super) fn over_list(pass: Option<bool>, seen: impl Into<String>) -> Found {
    Found {
        over_list: true,
        ..found(pass, seen)
    }
}

/// Longest value shown as seen.
pub(super) const MAX_SEEN: usize = 120;

pub(super) fn shorten(s: &str) -> String {
    if s.chars().count() <= MAX_SEEN {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(MAX_SEEN).collect();
        out.push('…');
        out
    }
}

/// `os.<key>` as a string, if reported.
pub(super) fn os_str<'a>(facts: &'a Facts, key: &str) -> Option<&'a str> {
    facts.get("os")?.get(key)?.as_str()
}

/// The device's OS family, if reported.
pub(super) fn family(facts: &Facts) -> Option<&str> {
    os_str(facts, "family")
}

#[cfg(test)]
mod tests {
    use super::{Facts, Found, MAX_SEEN};
    use crate::compliance::kinds::disk_encryption::check as disk_encryption;
    use crate::compliance::kinds::firewall::check as firewall;
    use crate::compliance::kinds::os_family::check as os_family;
    use crate::compliance::kinds::os_version::check as os_version;
    use crate::compliance::kinds::process::check as process;
    use crate::compliance::kinds::software::check as software;
    use crate::model::DiskScope;
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
