//! Connectors: their challenge keys and settings, and the re-enrollment rule.

use serde::{Deserialize, Serialize};

use super::UnixTime;

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
    /// An enrolled serial enrolls again only with an enrollment token bound to it (`device
    /// allow-reenroll`): the default, also for connectors stored before the policy existed.
    #[default]
    Approve,
    /// Any holder of a valid enrollment token may re-enroll a serial whose connectors are all
    /// `open` (the reference's behaviour, for fleets that reinstall often).
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

/// Who may enroll a serial that already exists (on any connector, with live or revoked tokens):
/// decided by the domain before the enrollment, enforced by the store in the enrollment's write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExistingSerial {
    /// An operator (`device enroll`), or an enrollment token bound to this serial (what
    /// `device allow-reenroll` creates): may enroll it again.
    Approved,
    /// A general enrollment token: a new serial, or one that the target connector and every
    /// connector it is enrolled on leave `open` (`open` lists the connectors whose policy is
    /// `open`; the target must be among them).
    OnlyIfOpen { target: String, open: Vec<String> },
}

/// The answer of [`reenrollment`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reenrollment {
    Proceed,
    /// The serial exists and this enrollment needs an operator's approval.
    NeedsApproval,
}

/// The one re-enrollment rule both stores apply: may an enrollment under `rule` go on, given
/// whether the device exists and the connectors it is enrolled on (`connections`)?
pub fn reenrollment(
    rule: &ExistingSerial,
    device_exists: bool,
    connections: &[&str],
) -> Reenrollment {
    let approved = match rule {
        ExistingSerial::Approved => true,
        ExistingSerial::OnlyIfOpen { target, open } => {
            let is_open = |c: &str| open.iter().any(|o| o == c);
            !device_exists || (is_open(target) && connections.iter().all(|c| is_open(c)))
        }
    };
    if approved {
        Reenrollment::Proceed
    } else {
        Reenrollment::NeedsApproval
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
    /// The posture policies its stages use: what `check_in/` evaluates.
    #[serde(default)]
    pub policies: Vec<String>,
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
            policies: Vec::new(),
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
