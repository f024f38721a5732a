//! The entities of the endpoint stage (docs/ARCHITECTURE.md has their item layout).
//!
//! All times are Unix seconds (`i64`). An `expires_at` of `None` never expires.

mod compliance;
mod connector;
mod data_key;
mod device;
mod enrollment;
mod help;
mod oidc;
mod plan;
mod signal;

pub use compliance::{
    ComplianceStatus, ComplianceView, DiskScope, Enforcement, Evaluation, Policy, PolicyRef, Rule,
    RuleKind, RuleResult, ShownRule, UnknownAs, Verdict, Warning, WhenUnknown,
};
pub use connector::{
    reenrollment, Connector, ExistingSerial, NextKey, ReenrollPolicy, Reenrollment, RetiredKey,
};
pub use data_key::{
    data_key_kid, data_key_reference, is_kid, ChallengeSigning, DataKeyRecord, Plaintext,
    DATA_KEY_PREFIX, DATA_KEY_PURPOSE, DATA_KEY_TABLE, MAX_KID_LEN,
};
pub use device::{
    is_device_identifier, is_owner_name, ConfigFetch, Device, DeviceLock, DeviceRef, DeviceToken,
    DeviceWithTokens, FactsSnapshot, TokenInfo, TokenRef, MAX_DEVICE_IDENTIFIER_CHARS,
    MAX_DEVICE_OWNERS, MAX_OWNER_CHARS, MSG_DEVICE_LOCKED,
};
pub use enrollment::{EnrollmentToken, TokenRefusal, TokenUse};
pub use help::{DenialReason, StageHelp, MAX_HELP_TEXT_CHARS, MAX_HELP_URL_LEN};
pub use oidc::{
    AuthRequest, ClientAuth, EntraTenant, Grant, IdTokenAlg, KeySource, OidcClient, OwnerClaim,
    Profile,
};
pub use plan::{
    DeviceAuthToken, Outcome, PendingChallenge, Plan, PlanStatus, Stage, StageMode, StageSnapshot,
    INTERACTIVE_PLAN_PREFIX, OIDC_PLAN_PREFIX,
};
pub use signal::{
    CaepStatus, DeliveryMethod, InitiatingEntity, Receiver, SignalEvent, Stream, StreamStatus,
    Verification,
};

/// Unix time in seconds.
pub type UnixTime = i64;

/// Whether `expires_at` lies at or before `now`. Every store read applies this, since DynamoDB
/// deletes TTL-expired items up to two days late (and the emulator never does).
pub fn is_expired(expires_at: Option<UnixTime>, now: UnixTime) -> bool {
    matches!(expires_at, Some(t) if t <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_inclusive_and_none_never_expires() {
        assert!(!is_expired(None, i64::MAX));
        assert!(!is_expired(Some(101), 100));
        assert!(is_expired(Some(100), 100));
        assert!(is_expired(Some(99), 100));
    }

    #[test]
    fn published_keys_drop_retired_keys_after_overlap() {
        let mut c = Connector::new("c", "n");
        c.challenge_key = Some("new".into());
        c.retired_keys = vec![
            RetiredKey {
                key: "old".into(),
                until: 200,
                retired_at: None,
            },
            RetiredKey {
                key: "older".into(),
                until: 50,
                retired_at: None,
            },
        ];
        assert_eq!(c.published_keys(100), vec!["new", "old"]);
        assert_eq!(c.published_keys(200), vec!["new"]);
        c.next_key = Some(NextKey {
            key: "next".into(),
            added_at: 90,
        });
        assert_eq!(c.published_keys(100), vec!["new", "next", "old"]);
    }

    #[test]
    fn device_identifiers_follow_one_rule() {
        for ok in [
            "VMware-56 4d 1a 2b 3c 4d 5e 6f-70 81 92 a3 b4 c5 d6 e7",
            "To Be Filled By O.E.M.",
            "Default string",
            "Gerät-Nr. ÄÖÜ 東京 ✓",
            "x",
        ] {
            assert!(is_device_identifier(ok), "{ok:?}");
        }
        // 256 characters of 3 bytes each is still within the rule (characters, not bytes).
        assert!(is_device_identifier(&"東".repeat(256)));
        for bad in [
            "",
            "a\nb",
            "tab\there",
            "nul\0",
            "del\u{7f}",
            "c1\u{85}",
            // Right-to-left override: "laptop\u{202E}exe.rcs" reads as "laptopscr.exe".
            "laptop\u{202E}exe.rcs",
            "zero\u{200B}width",
            "joiner\u{200D}x",
            "isolate\u{2066}x\u{2069}",
            "bom\u{FEFF}",
        ] {
            assert!(!is_device_identifier(bad), "{bad:?}");
        }
        assert!(!is_device_identifier(&"a".repeat(257)));
    }

    #[test]
    fn an_existing_serial_enrolls_again_only_approved_or_where_everything_is_open() {
        use Reenrollment::{NeedsApproval, Proceed};
        let general = |target: &str, open: &[&str]| ExistingSerial::OnlyIfOpen {
            target: target.into(),
            open: open.iter().map(|s| s.to_string()).collect(),
        };
        // A new serial: any valid token.
        assert_eq!(reenrollment(&general("a", &[]), false, &[]), Proceed);
        // An existing serial on an approve connector, live or revoked tokens alike.
        assert_eq!(
            reenrollment(&general("a", &[]), true, &["a"]),
            NeedsApproval
        );
        assert_eq!(reenrollment(&general("a", &[]), true, &[]), NeedsApproval);
        // Open target, but the serial is also on an approve connector: the side door is shut.
        assert_eq!(
            reenrollment(&general("o", &["o"]), true, &["o", "a"]),
            NeedsApproval
        );
        // Open target, approve elsewhere is not open.
        assert_eq!(
            reenrollment(&general("a", &["o"]), true, &["o"]),
            NeedsApproval
        );
        // Everything open: the reference's behaviour.
        assert_eq!(
            reenrollment(&general("o", &["o", "p"]), true, &["o", "p"]),
            Proceed
        );
        // An operator or a token bound to the serial.
        assert_eq!(
            reenrollment(&ExistingSerial::Approved, true, &["a"]),
            Proceed
        );
    }

    #[test]
    fn stage_mode_parses() {
        assert_eq!("required".parse::<StageMode>(), Ok(StageMode::Required));
        assert!("REQUIRED".parse::<StageMode>().is_err());
    }
}
