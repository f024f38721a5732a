//! Devices, their tokens and what a device reports.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

use super::{Evaluation, UnixTime};

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

/// Most owners one device may have (`device set-owners`): a device is someone's, or a few
/// people's (a shared workstation); a longer list is a group, which is the identity
/// provider's business.
pub const MAX_DEVICE_OWNERS: usize = 16;
/// Longest owner name, in characters (an email address has at most 254).
pub const MAX_OWNER_CHARS: usize = 256;

/// The rule for an owner name (a username or an email address): 1 to
/// [`MAX_OWNER_CHARS`] characters, no white space, no control characters and none of the
/// invisible ones [`is_device_identifier`] refuses (an owner name is compared with what an
/// identity provider says of the signing-in person: it must read as what it is).
pub fn is_owner_name(value: &str) -> bool {
    !value.is_empty()
        && value.chars().count() <= MAX_OWNER_CHARS
        && !value
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || is_deceptive_format_char(c))
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
    /// An operator's lock (`device lock`), if one was set and not lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<DeviceLock>,
    /// The people the device belongs to (usernames or email addresses, as the operator wrote
    /// them; `device set-owners`, or an enrollment token's `--owner`), at most
    /// [`MAX_DEVICE_OWNERS`]. An OpenID client with `--match-owner` passes the device only
    /// for one of them (the domain's `idp::owners`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
}

impl Device {
    /// The device's lock if it holds at `now`.
    pub fn lock_at(&self, now: UnixTime) -> Option<&DeviceLock> {
        self.lock.as_ref().filter(|l| l.holds_at(now))
    }
}

/// What the person in front of the browser (and an agent's `auth_ia/`) reads of a lock.
pub const MSG_DEVICE_LOCKED: &str = "This device has been locked by an administrator.";

/// An operator's lock of a device: every stage denies it and its `auth_ia/` is refused, while
/// its check-ins still flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceLock {
    pub since: UnixTime,
    /// `None`: until an operator unlocks it.
    pub until: Option<UnixTime>,
    pub reason: Option<String>,
}

impl DeviceLock {
    pub fn holds_at(&self, now: UnixTime) -> bool {
        self.since <= now && self.until.is_none_or(|u| u > now)
    }
}

/// What a plan and the API show of a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRef {
    pub identifier: String,
    pub name: String,
    /// The device's stable id (the UUID of `agent_config`): the subject of a device assertion.
    /// Absent on plans that ended before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
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
    /// The connector's next challenge key when the device last fetched its configuration
    /// with one pending (`agent_config/` records it: [`ConfigFetch`]).
    pub config_next_key: Option<String>,
}

/// A live device token of a connector as a key rotation sees it: its device, and the next
/// challenge key that was published in the configuration the device last fetched (and when).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigFetch {
    pub device: String,
    pub next_key: Option<String>,
    pub at: Option<UnixTime>,
}

/// A device with its unexpired tokens of every connector (one read of its partition; the
/// response validator keeps those of the plan's connector).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceWithTokens {
    pub device: Device,
    pub tokens: Vec<DeviceToken>,
    /// Its stored evaluations, one per policy (read in the same query).
    pub compliance: Vec<Evaluation>,
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

impl From<&Device> for DeviceRef {
    fn from(d: &Device) -> Self {
        DeviceRef {
            identifier: d.identifier.clone(),
            name: d.name.clone(),
            id: Some(d.id.clone()),
        }
    }
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
