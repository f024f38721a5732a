//! The entities of the endpoint stage (docs/ARCHITECTURE.md has their item layout).
//!
//! All times are Unix seconds (`i64`). An `expires_at` of `None` never expires.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Unix time in seconds.
pub type UnixTime = i64;

/// Whether `expires_at` lies at or before `now`. Every store read applies this, since DynamoDB
/// deletes TTL-expired items up to two days late (and the emulator never does).
pub fn is_expired(expires_at: Option<UnixTime>, now: UnixTime) -> bool {
    matches!(expires_at, Some(t) if t <= now)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StageMode {
    #[default]
    Optional,
    Required,
}

impl StageMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StageMode::Optional => "optional",
            StageMode::Required => "required",
        }
    }
}

impl std::str::FromStr for StageMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "optional" => Ok(StageMode::Optional),
            "required" => Ok(StageMode::Required),
            other => Err(format!(
                "unknown stage mode {other:?} (optional or required)"
            )),
        }
    }
}

/// Longest device identifier (serial) or device name, in characters.
pub const MAX_DEVICE_IDENTIFIER_CHARS: usize = 256;

/// The one rule for device identifiers (hardware serials) and device names, used by
/// enrollment, check-in, the admin CLI and the response path: 1 to 256 characters, no control
/// characters, and none of the invisible characters that make a text read differently from
/// what it is (bidirectional overrides and isolates, zero-width characters, the byte-order
/// mark): relying parties show these values to people. Anything else is allowed: real serials
/// have spaces (`VMware-56 4d 1a ...`), dots and non-ASCII letters.
pub fn is_device_identifier(value: &str) -> bool {
    !value.is_empty()
        && value.chars().count() <= MAX_DEVICE_IDENTIFIER_CHARS
        && !value
            .chars()
            .any(|c| c.is_control() || is_deceptive_format_char(c))
}

/// Bidirectional controls (U+061C, U+200E-200F, U+202A-202E, U+2066-2069), zero-width and
/// invisible characters (U+180E, U+200B-200D, U+2060-2064) and the byte-order mark (U+FEFF).
fn is_deceptive_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// An enrolled device. `identifier` is the hardware serial reported at enrollment; `id` is the
/// stable opaque id (a UUID) assigned at its first enrollment, which agents see as `device_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    pub identifier: String,
    pub name: String,
    pub created_at: UnixTime,
    pub expires_at: Option<UnixTime>,
}

/// What a plan and the API show of a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRef {
    pub identifier: String,
    pub name: String,
}

impl From<&Device> for DeviceRef {
    fn from(d: &Device) -> Self {
        DeviceRef {
            identifier: d.identifier.clone(),
            name: d.name.clone(),
        }
    }
}

/// A device token: the HMAC key of the device's responses for one connector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceToken {
    pub id: String,
    pub device: String,
    pub connector: String,
    pub key: Secret,
    pub created_at: UnixTime,
    pub expires_at: Option<UnixTime>,
}

/// What an operator sees of a device token: never its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub connector: String,
    pub created_at: UnixTime,
    pub expires_at: Option<UnixTime>,
}

/// What the token index holds for the SHA-256 of a device token key: no secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRef {
    pub token_id: String,
    pub device: String,
    pub connector: String,
    pub expires_at: Option<UnixTime>,
}

/// A device with its unexpired tokens of every connector (one read of its partition; the
/// response validator keeps those of the plan's connector).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceWithTokens {
    pub device: Device,
    pub tokens: Vec<DeviceToken>,
}

/// The latest device facts a device reported through `check_in/` for one connector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FactsSnapshot {
    pub device: String,
    pub connector: String,
    /// The facts document as compact JSON, deflate-compressed (see `facts`).
    pub facts_deflate: Vec<u8>,
    /// Whether the stored document is a bounded subset of what the device sent.
    pub truncated: bool,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

/// A key the connector signed with before, still published in its JWKS until `until`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredKey {
    pub key: String,
    pub until: UnixTime,
    /// When it stopped signing (absent on records written before rotation existed).
    #[serde(default)]
    pub retired_at: Option<UnixTime>,
}

/// The key a connector will sign with after its next rotation: published in the JWKS (and so
/// in `jwks_challenge`) from `added_at` on, so agents learn it before it signs anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextKey {
    pub key: String,
    pub added_at: UnixTime,
}

/// Whether `enroll/` may replace the live token of a device already enrolled on a connector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReenrollPolicy {
    /// Only once an operator allowed it (`device allow-reenroll`): the default, also for
    /// connectors stored before the policy existed.
    #[default]
    Approve,
    /// Any holder of a valid enrollment token may re-enroll a serial (the reference's
    /// behaviour, for fleets that reinstall often).
    Open,
}

impl ReenrollPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ReenrollPolicy::Approve => "approve",
            ReenrollPolicy::Open => "open",
        }
    }
}

impl std::str::FromStr for ReenrollPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "approve" => Ok(ReenrollPolicy::Approve),
            "open" => Ok(ReenrollPolicy::Open),
            other => Err(format!(
                "unknown re-enrollment policy {other:?} (approve or open)"
            )),
        }
    }
}

/// What an enrollment does about the connection's (device, connector) existing tokens: the one
/// rule both stores apply, the DynamoDB store turning it into transaction conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reenrollment {
    /// No live token to replace, or the enrollment may replace it as it is.
    Proceed { uses_allowance: bool },
    /// The connection holds a live token and the policy needs an operator's allowance first.
    NeedsApproval,
}

/// Whether an enrollment under `policy` (`None`: an operator enrolls, and may always replace)
/// may go on, given whether the connection holds a live token and whether an operator's
/// allowance of it is live. With `Approve`, replacing a live token consumes the allowance.
pub fn reenrollment(
    policy: Option<ReenrollPolicy>,
    replaces_live_token: bool,
    allowance_live: bool,
) -> Reenrollment {
    match (policy, replaces_live_token) {
        (Some(ReenrollPolicy::Approve), true) if allowance_live => Reenrollment::Proceed {
            uses_allowance: true,
        },
        (Some(ReenrollPolicy::Approve), true) => Reenrollment::NeedsApproval,
        _ => Reenrollment::Proceed {
            uses_allowance: false,
        },
    }
}

/// An agent connector and its settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connector {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// KMS key id, ARN, alias name or alias ARN (or a local signer's key name).
    pub challenge_key: Option<String>,
    /// Since when the current challenge key signs (absent on older records).
    #[serde(default)]
    pub challenge_key_since: Option<UnixTime>,
    /// Published now, signs after `connector rotate`.
    #[serde(default)]
    pub next_key: Option<NextKey>,
    #[serde(default)]
    pub retired_keys: Vec<RetiredKey>,
    pub challenge_idle_timeout: u32,
    pub challenge_trigger_check_in: bool,
    pub refresh_interval: u32,
    pub snapshot_expiry: u32,
    /// The stage that `auth_ia/` plans run through.
    #[serde(default)]
    pub interactive_stage: Option<String>,
    /// Whether `enroll/` may replace a device's live token on this connector.
    #[serde(default)]
    pub reenroll: ReenrollPolicy,
}

impl Connector {
    pub const DEFAULT_IDLE_TIMEOUT: u32 = 5;
    pub const DEFAULT_REFRESH_INTERVAL: u32 = 30 * 60;
    pub const DEFAULT_SNAPSHOT_EXPIRY: u32 = 24 * 3600;

    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        Connector {
            id: id.into(),
            name: name.into(),
            enabled: true,
            challenge_key: None,
            challenge_key_since: None,
            next_key: None,
            retired_keys: Vec::new(),
            challenge_idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            challenge_trigger_check_in: false,
            refresh_interval: Self::DEFAULT_REFRESH_INTERVAL,
            snapshot_expiry: Self::DEFAULT_SNAPSHOT_EXPIRY,
            interactive_stage: None,
            reenroll: ReenrollPolicy::Approve,
        }
    }

    /// The keys whose public part the JWKS publishes at `now`: the current one first, then the
    /// next one (if any), then the retired ones still inside their grace period.
    pub fn published_keys(&self, now: UnixTime) -> Vec<&str> {
        self.challenge_key
            .iter()
            .map(String::as_str)
            .chain(self.next_key.iter().map(|k| k.key.as_str()))
            .chain(
                self.retired_keys
                    .iter()
                    .filter(|k| k.until > now)
                    .map(|k| k.key.as_str()),
            )
            .collect()
    }
}

/// An endpoint stage: which connector it checks devices of, and whether a device is required.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    pub id: String,
    pub connector: String,
    pub mode: StageMode,
}

/// An enrollment token. Only the SHA-256 of its key is ever stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentToken {
    pub id: String,
    pub key_sha256: String,
    pub connector: String,
    pub name: String,
    /// `None` only when the operator said `--expires never`.
    pub expires_at: Option<UnixTime>,
    /// Absent on tokens stored before the lifecycle existed.
    pub created_at: Option<UnixTime>,
    /// How many enrollments it allows (`None`: any number until it expires).
    pub max_uses: Option<u32>,
    /// The one serial it may enroll, if bound.
    pub serial: Option<String>,
    /// How many enrollments it made, and the last one's time.
    pub uses: u32,
    pub last_used_at: Option<UnixTime>,
    pub revoked_at: Option<UnixTime>,
}

impl EnrollmentToken {
    /// Why the token cannot enroll anything at `now`, if it cannot: revoked, expired, used up.
    pub fn refusal(&self, now: UnixTime) -> Option<TokenRefusal> {
        if self.revoked_at.is_some() {
            Some(TokenRefusal::Revoked)
        } else if is_expired(self.expires_at, now) {
            Some(TokenRefusal::Expired)
        } else if self.max_uses.is_some_and(|m| self.uses >= m) {
            Some(TokenRefusal::UsedUp)
        } else {
            None
        }
    }

    /// Whether the token may enroll `serial` (a bound token enrolls only its serial).
    pub fn allows_serial(&self, serial: &str) -> bool {
        self.serial.as_deref().is_none_or(|s| s == serial)
    }
}

/// Why an enrollment token refused an enrollment (the audit trail's reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenRefusal {
    Unknown,
    Revoked,
    Expired,
    UsedUp,
    OtherSerial,
}

impl TokenRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRefusal::Unknown => "unknown_token",
            TokenRefusal::Revoked => "token_revoked",
            TokenRefusal::Expired => "token_expired",
            TokenRefusal::UsedUp => "token_used_up",
            TokenRefusal::OtherSerial => "token_bound_to_other_serial",
        }
    }
}

/// One enrollment an enrollment token made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUse {
    pub serial: String,
    pub at: UnixTime,
}

/// Links a device, its device token and a connector for the interactive-auth (DTH) path.
/// Holds the token's hash, never its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAuthToken {
    pub id: String,
    pub device: DeviceRef,
    pub token_id: String,
    /// Lowercase hex SHA-256 of the device token key: the expected DTH header.
    pub token_sha256: String,
    pub connector: String,
    pub expires_at: Option<UnixTime>,
}

/// What a plan keeps of its stage and connector when it is created, so that serving it needs
/// one read. A configuration change reaches running plans within one plan lifetime.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageSnapshot {
    pub mode: StageMode,
    pub connector: String,
    pub enabled: bool,
    pub challenge_key: Option<String>,
    pub challenge_idle_timeout: u32,
    pub challenge_trigger_check_in: bool,
}

impl StageSnapshot {
    pub fn of(stage: &Stage, connector: &Connector) -> Self {
        StageSnapshot {
            mode: stage.mode,
            connector: connector.id.clone(),
            enabled: connector.enabled,
            challenge_key: connector.challenge_key.clone(),
            challenge_idle_timeout: connector.challenge_idle_timeout,
            challenge_trigger_check_in: connector.challenge_trigger_check_in,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanStatus {
    Pending,
    Passed,
    Denied,
}

impl PlanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Pending => "pending",
            PlanStatus::Passed => "passed",
            PlanStatus::Denied => "denied",
        }
    }
}

/// The challenge a plan waits for an answer to: the whole compact JWS and its own `exp`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChallenge {
    pub jws: String,
    pub exp: UnixTime,
}

/// The id prefix of interactive-auth plans (those `auth_ia/` creates). Other plan ids are
/// `[A-Za-z0-9]` only, so IAM can let the agent function create these (`PLAN#ia_*`) and nothing
/// else: it can never overwrite a relying party's plan.
pub const INTERACTIVE_PLAN_PREFIX: &str = "ia_";

/// One run of the stage for one login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    pub stage: String,
    pub config: StageSnapshot,
    pub redirect: String,
    pub status: PlanStatus,
    pub pending_challenge: Option<PendingChallenge>,
    /// How many challenges this plan has minted (the attempt limit counts these).
    pub challenges_issued: u32,
    pub device: Option<DeviceRef>,
    pub device_auth: Option<DeviceAuthToken>,
    /// Why the plan was denied, for answering the denial again.
    pub denial: Option<String>,
    /// The IAM principal that created it (deployed); only it may read the plan. `None`: any
    /// caller may (local runs, interactive-auth plans).
    #[serde(default)]
    pub owner: Option<String>,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

/// What the executor answers: a flow outcome of the contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A challenge for the agent; `invalid_response` adds the contract's `response_errors`.
    Challenge {
        jws: String,
        idle_timeout: u32,
        invalid_response: bool,
    },
    Redirect {
        to: String,
    },
    Denied {
        message: String,
    },
}

impl Outcome {
    /// A short label for logs.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Challenge {
                invalid_response: false,
                ..
            } => "challenge",
            Outcome::Challenge { .. } => "challenge_retry",
            Outcome::Redirect { .. } => "passed",
            Outcome::Denied { .. } => "denied",
        }
    }
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
    fn reenrollment_needs_an_allowance_only_to_replace_a_live_token_under_approve() {
        use ReenrollPolicy::{Approve, Open};
        let go = |uses_allowance| Reenrollment::Proceed { uses_allowance };
        assert_eq!(reenrollment(Some(Approve), false, false), go(false));
        assert_eq!(reenrollment(Some(Approve), false, true), go(false));
        assert_eq!(
            reenrollment(Some(Approve), true, false),
            Reenrollment::NeedsApproval
        );
        assert_eq!(reenrollment(Some(Approve), true, true), go(true));
        assert_eq!(reenrollment(Some(Open), true, false), go(false));
        assert_eq!(reenrollment(None, true, false), go(false));
    }

    #[test]
    fn stage_mode_parses() {
        assert_eq!("required".parse::<StageMode>(), Ok(StageMode::Required));
        assert!("REQUIRED".parse::<StageMode>().is_err());
    }
}
