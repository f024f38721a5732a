//! Enrollment tokens and their lifecycle.

use serde::{Deserialize, Serialize};

use super::{is_expired, UnixTime};

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
    /// The person the devices it enrolls belong to (`--owner`): an enrollment with it makes
    /// that person the device's only owner; without, a device keeps the owners it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
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
