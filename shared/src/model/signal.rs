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
    /// Unique (`<writer's time>-<random>`): the SET's `jti`. Never an order: the writer's clock
    /// may be minutes off and writes commit in any order.
    pub id: String,
    /// Its place in the order the store assigns when the event is settled (one at a time, after
    /// every event settled before it); 0 while it is not settled yet.
    #[serde(default)]
    pub seq: u64,
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

/// A Shared Signals receiver, registered by an operator: its bearer token is stored only as a
/// SHA-256 hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receiver {
    pub id: String,
    pub name: String,
    /// The `aud` of the SETs it receives.
    pub audience: String,
    pub token_sha256: String,
    pub created_at: UnixTime,
    pub revoked_at: Option<UnixTime>,
}

/// How a stream's events reach its receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryMethod {
    /// RFC 8935: the transmitter POSTs each SET to the receiver's endpoint.
    #[serde(rename = "urn:ietf:rfc:8935")]
    Push,
    /// RFC 8936: the receiver polls the transmitter's endpoint.
    #[serde(rename = "urn:ietf:rfc:8936")]
    Poll,
}

impl DeliveryMethod {
    pub fn urn(self) -> &'static str {
        match self {
            DeliveryMethod::Push => "urn:ietf:rfc:8935",
            DeliveryMethod::Poll => "urn:ietf:rfc:8936",
        }
    }
}

/// A stream's status (SSF 1.0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamStatus {
    Enabled,
    Paused,
    Disabled,
}

/// A verification the receiver asked for, until it is delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub jti: String,
    pub state: Option<String>,
    pub time: UnixTime,
    /// Its SET, signed once when it was asked for: every delivery carries this string.
    #[serde(default)]
    pub set: String,
}

/// A receiver's stream of events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stream {
    pub id: String,
    pub receiver: String,
    pub method: DeliveryMethod,
    /// Push: the receiver's endpoint (`https:`, or `http:` on loopback).
    pub endpoint_url: Option<String>,
    /// Push: the `Authorization` header the receiver wants (its secret: never shown back).
    pub authorization_header: Option<String>,
    pub events_requested: Vec<String>,
    pub description: Option<String>,
    pub status: StreamStatus,
    pub status_reason: Option<String>,
    /// The `seq` of the last settled event delivered (acknowledged), at first the last one
    /// settled when the stream was created: only later events are delivered.
    #[serde(default)]
    pub position: u64,
    /// Bumped by every write: a write is conditioned on the version it read, so that no writer
    /// reverts another's change or brings a deleted stream back.
    #[serde(default)]
    pub version: u64,
    pub verification: Option<Verification>,
    pub created_at: UnixTime,
    /// Push: consecutive failed attempts, since when, the last error, and when to try next.
    #[serde(default)]
    pub failures: u32,
    #[serde(default)]
    pub failing_since: Option<UnixTime>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub next_attempt: Option<UnixTime>,
}
