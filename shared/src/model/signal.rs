//! Signals out: the events a change causes, recorded with the change (an outbox) and delivered
//! to Shared Signals receivers as CAEP `device-compliance-change` security event tokens.

use serde::{Deserialize, Serialize};

use super::UnixTime;

/// A device's status as CAEP names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaepStatus {
    #[serde(rename = "compliant")]
    Compliant,
    #[serde(rename = "not-compliant")]
    NotCompliant,
}

impl CaepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CaepStatus::Compliant => "compliant",
            CaepStatus::NotCompliant => "not-compliant",
        }
    }
}

/// Who caused a change, as CAEP's `initiating_entity` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitiatingEntity {
    /// A posture policy's evaluation (check-in, `policy reevaluate`).
    Policy,
    /// An operator (`device lock`, `device unlock`).
    Admin,
}

/// One event of the outbox: written in the same transaction as the change that caused it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalEvent {
    /// Time-ordered and unique (`<time>-<random>`): the SET's `jti`.
    pub id: String,
    pub time: UnixTime,
    /// The device's stable id (the SET's `sub_id`), and its serial (for operators only).
    pub device_id: String,
    pub serial: String,
    pub previous_status: CaepStatus,
    pub current_status: CaepStatus,
    pub initiating_entity: InitiatingEntity,
    /// What an administrator reads (`reason_admin.en`): the policy and its failing rules, or
    /// the lock's reason.
    pub reason: String,
    /// The transaction that caused it (the SET's `txn`).
    pub txn: String,
}
