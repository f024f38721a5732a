//! The ports the core is generic over: storage, signing, time, randomness and name resolution.
//!
//! Each trait is narrow: the operations one group of functions needs, nothing more. Futures
//! are `Send` so the core's operations can run on a multi-threaded runtime (Lambda, tokio).

mod data_keys;
mod fetch;
mod oidc;
mod probes;
mod random;
mod resolve;
mod signals;

use std::future::Future;

use crate::audit::{AuditEvent, AuditQuery};
use crate::error::{CoreError, SignerError, StoreError};
use crate::model::{
    ComplianceView, Connector, Device, DeviceLock, DeviceRef, DeviceToken, DeviceWithTokens,
    EnrollmentToken, Evaluation, ExistingSerial, FactsSnapshot, Outcome, PendingChallenge, Plan,
    Policy, SignalEvent, Stage, TokenInfo, TokenRef, TokenUse, UnixTime,
};
use crate::protocol::keys::SigningAlg;

pub use data_keys::{DataKeyRecords, DataKeyVault, WrappedKeyPair};
pub use fetch::{FetchFailure, FetchKeys};
pub use oidc::{GrantKind, JwksFetcher, OidcStore};
pub use probes::{KeyStatus, KeyUse, TableProbe};
pub use random::{random_alnum, random_id, Clock, Random, SystemClock, SystemRandom};
pub use resolve::{LookupError, Resolve};
pub use signals::{
    epoch_base, late_ranges, numbering, RolloutStore, SignalHead, SignalStore, EPOCH_BITS,
};

/// Plans: the per-login state. Every read filters plans whose `expires_at` has passed.
pub trait PlanStore: Send + Sync {
    /// Creates a plan; fails with `AlreadyExists` if the id is taken.
    fn create_plan(&self, plan: &Plan) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The plan, or `None` if unknown or expired at `now`.
    fn get_plan(
        &self,
        id: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<Plan>, StoreError>> + Send;

    /// Reserves one challenge of the plan's budget before any signature is made: if the plan is
    /// pending, unexpired at `now` and has reserved fewer than `max`, counts one more and
    /// returns the plan as updated (`Granted`); otherwise returns the plan as stored, if it
    /// exists (`Refused`). One conditional write, so concurrent requests can never sign more
    /// than `max` challenges for one plan.
    fn reserve_challenge(
        &self,
        id: &str,
        max: u32,
        now: UnixTime,
    ) -> impl Future<Output = Result<Reserve, StoreError>> + Send;

    /// Makes `challenge` the pending one if the plan is still pending and unexpired at `now`.
    /// `Ok(false)` when a condition failed.
    fn set_challenge(
        &self,
        id: &str,
        challenge: &PendingChallenge,
        now: UnixTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Ends a pending, unexpired plan: passed (with or without a device) or denied.
    /// With `consume = Some(jws)`, only if the pending challenge is exactly `jws`: this is the
    /// atomic single use of a challenge. Removes the pending challenge. `Ok(false)` when a
    /// condition failed (someone else ended the plan or replaced the challenge first).
    /// `audit` is stored in the same write (no extra round trip) if the plan ends; if only the
    /// audit record fails, the plan still ends and the failure is logged. `compliance` is kept
    /// with the plan (what `GET /v1/plans/{plan}` shows).
    fn finish_plan(
        &self,
        id: &str,
        finish: &Finish,
        consume: Option<&str>,
        now: UnixTime,
        audit: Option<&AuditEvent>,
        compliance: Option<&ComplianceView>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Keeps `assertion` as the passed plan's device assertion unless it already has one: one
    /// conditional write. Answers the plan's assertion as stored afterwards (this one, or the
    /// one a concurrent first read stored first), `None` if the plan is gone or did not pass.
    fn keep_assertion(
        &self,
        id: &str,
        assertion: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
}

/// Fixed-window counters for abuse limits.
pub trait Limiter: Send + Sync {
    /// Counts one more event in `bucket` (whose window ends at `window_end`) if it holds fewer
    /// than `limit`: `Ok(true)`; else `Ok(false)`. One conditional write.
    fn take(
        &self,
        bucket: &str,
        limit: u32,
        window_end: UnixTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The current counts of `buckets` (0 for a bucket with no live window), in order. One
    /// read for all of them.
    fn counts(
        &self,
        buckets: &[String],
        now: UnixTime,
    ) -> impl Future<Output = Result<Vec<u32>, StoreError>> + Send;
}

/// The audit trail.
pub trait AuditLog: Send + Sync {
    fn record(&self, event: &AuditEvent) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records matching `query`, newest first, at most `query.limit`.
    fn audit_events(
        &self,
        query: &AuditQuery,
        now: UnixTime,
    ) -> impl Future<Output = Result<Vec<AuditEvent>, StoreError>> + Send;
}

/// Records an audit event: always one JSON log line, and the stored record. A failed write is
/// logged (`audit_write_failed`) and never fails the operation that caused the event.
pub async fn record_audit<A: AuditLog + ?Sized>(log: &A, event: &AuditEvent) {
    event.log();
    if let Err(e) = log.record(event).await {
        tracing::error!(
            event = "audit_write_failed",
            code = %event.code,
            error = %e,
            "audit record not stored"
        );
    }
}

/// What an enrollment is allowed to do, decided by the caller and enforced atomically by the
/// store, together with the writes of the enrollment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollGrant {
    /// Who may enroll the serial if it already exists ([`crate::model::reenrollment`]).
    pub existing: ExistingSerial,
    /// The enrollment token used (the SHA-256 of its key): one use is counted in the same
    /// write, refused if it was revoked, expired or used up meanwhile.
    pub enrollment_token: Option<String>,
    pub now: UnixTime,
    /// Stored with the enrollment (same write).
    pub audit: Option<AuditEvent>,
}

/// What [`DeviceStore::enroll`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnrollOutcome {
    /// Enrolled; `existed` when the serial was enrolled before, `replaced` when a live token
    /// of the connection was replaced.
    Enrolled { existed: bool, replaced: bool },
    /// The serial exists and the grant does not allow enrolling it again.
    NeedsApproval,
    /// The enrollment token was revoked, expired or used up by a concurrent enrollment.
    TokenRefused,
}

/// The answer of [`PlanStore::reserve_challenge`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reserve {
    /// Reserved: the plan with its count already increased.
    Granted(Plan),
    /// Not reserved: the plan as stored (final, expired or at its limit), or `None` if unknown.
    Refused(Option<Plan>),
}

/// How a plan ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finish {
    Passed(Option<DeviceRef>),
    Denied(String),
}

/// Stages and connectors: the configuration.
pub trait Directory: Send + Sync {
    fn get_stage(&self, id: &str)
        -> impl Future<Output = Result<Option<Stage>, StoreError>> + Send;
    fn put_stage(&self, stage: &Stage) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get_connector(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Connector>, StoreError>> + Send;
    /// Creates or replaces a connector.
    fn put_connector(
        &self,
        connector: &Connector,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn list_connectors(&self) -> impl Future<Output = Result<Vec<Connector>, StoreError>> + Send;
    /// Every stage.
    fn list_stages(&self) -> impl Future<Output = Result<Vec<Stage>, StoreError>> + Send;

    fn get_policy(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Policy>, StoreError>> + Send;
    /// The policies named, those that exist, read together (one round).
    fn get_policies(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<Policy>, StoreError>> + Send;
    /// Creates or replaces a policy.
    fn put_policy(&self, policy: &Policy) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn list_policies(&self) -> impl Future<Output = Result<Vec<Policy>, StoreError>> + Send;
    /// Deletes a policy. `Ok(false)` if it did not exist.
    fn delete_policy(&self, id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Devices, their tokens and the token index. Reads filter expired devices and tokens.
pub trait DeviceStore: Send + Sync {
    /// The device with its unexpired tokens (of every connector: the caller picks its own, so
    /// this read needs nothing from the plan and can run in parallel with it), or `None` if the
    /// device is unknown or expired. One read (a query of the device's partition).
    fn device_with_tokens(
        &self,
        identifier: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<DeviceWithTokens>, StoreError>> + Send;

    /// The device's unexpired tokens as an operator sees them (never a key, so reading them
    /// needs no key material), or `None` if the device is unknown or expired.
    fn device_token_info(
        &self,
        identifier: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<(Device, Vec<TokenInfo>)>, StoreError>> + Send;

    /// The token whose key hashes to `key_sha256` (lowercase hex), if it exists and is unexpired.
    fn token_by_hash(
        &self,
        key_sha256: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<TokenRef>, StoreError>> + Send;

    /// [`token_by_hash`](DeviceStore::token_by_hash) and the device `identifier` (unless
    /// unknown or expired), in one read: the DTH path reads the device's lock where it reads
    /// the token, so a lock holds at once there too.
    fn token_and_device(
        &self,
        key_sha256: &str,
        identifier: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<(Option<TokenRef>, Option<Device>), StoreError>> + Send;

    /// The device with its stored evaluations (never a key), or `None` if unknown or expired.
    /// One read: what authenticates an agent's request also brings what its check-in and its
    /// interactive authentication need.
    fn device_profile(
        &self,
        identifier: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<(Device, Vec<Evaluation>)>, StoreError>> + Send;

    /// Stores the device's evaluations (replacing those of the same policies) and, in the same
    /// write, the audit records and the signal events of what changed.
    fn put_evaluations(
        &self,
        identifier: &str,
        evaluations: &[Evaluation],
        audit: &[AuditEvent],
        signals: &[SignalEvent],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The devices whose last evaluation under a policy (`policy`, or any) was non-compliant,
    /// with that evaluation, by serial.
    fn non_compliant(
        &self,
        policy: Option<&str>,
    ) -> impl Future<Output = Result<Vec<(String, Evaluation)>, StoreError>> + Send;

    /// One page of devices, in serial order, after the serial `after`: at most `limit`, and the
    /// serial to continue after if there may be more.
    fn devices_page(
        &self,
        after: Option<&str>,
        limit: usize,
        now: UnixTime,
    ) -> impl Future<Output = Result<(Vec<Device>, Option<String>), StoreError>> + Send;

    fn get_device(
        &self,
        identifier: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<Device>, StoreError>> + Send;
    fn list_devices(
        &self,
        now: UnixTime,
    ) -> impl Future<Output = Result<Vec<Device>, StoreError>> + Send;

    /// Enrolls atomically under `grant`: creates or updates the device (`device.owners`, when
    /// not empty, replace an existing device's: an enrollment token's `--owner`; empty keeps
    /// them), deletes every older token of the connection (device, connector) with its index
    /// entry (found by the stored hashes, never by reading keys), stores `token` with its
    /// index, counts the enrollment token's use, on condition that the serial's existence and
    /// connections still give the grant's rule the answer it gave when the store read them.
    fn enroll(
        &self,
        device: &Device,
        token: &DeviceToken,
        grant: &EnrollGrant,
    ) -> impl Future<Output = Result<EnrollOutcome, StoreError>> + Send;

    /// Sets (or with `None` lifts) the device's lock, with its signal event in the same write.
    /// `Ok(false)` if the device is unknown.
    fn set_device_lock(
        &self,
        identifier: &str,
        lock: Option<&DeviceLock>,
        signal: Option<&SignalEvent>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replaces the device's owners (empty: none). `Ok(false)` if the device is unknown.
    fn set_device_owners(
        &self,
        identifier: &str,
        owners: &[String],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes every token of (device, connector); returns how many were deleted.
    fn revoke_tokens(
        &self,
        identifier: &str,
        connector: &str,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Stores the device's facts snapshot for a connector, replacing the previous one.
    fn put_facts(
        &self,
        snapshot: &FactsSnapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The most recent unexpired facts snapshot of the device, of any connector.
    fn latest_facts(
        &self,
        identifier: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<FactsSnapshot>, StoreError>> + Send;

    /// Deletes the device and everything under it. `Ok(false)` if it did not exist.
    fn delete_device(
        &self,
        identifier: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Enrollment tokens, found by the SHA-256 of their key.
pub trait EnrollmentStore: Send + Sync {
    fn put_enrollment_token(
        &self,
        token: &EnrollmentToken,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The token whose key hashes to `key_sha256`, also when expired, revoked or used up (the
    /// caller says why it refuses; [`EnrollmentToken::refusal`]). Records past their TTL are
    /// gone eventually.
    fn enrollment_token_by_hash(
        &self,
        key_sha256: &str,
    ) -> impl Future<Output = Result<Option<EnrollmentToken>, StoreError>> + Send;
    /// Every stored enrollment token (expired ones until the TTL removes them).
    fn list_enrollment_tokens(
        &self,
    ) -> impl Future<Output = Result<Vec<EnrollmentToken>, StoreError>> + Send;
    /// The enrollments a token made (one per serial, the latest), oldest first.
    fn enrollment_token_uses(
        &self,
        key_sha256: &str,
    ) -> impl Future<Output = Result<Vec<TokenUse>, StoreError>> + Send;
    /// Marks the token revoked at `now`. `Ok(false)` if it does not exist.
    fn revoke_enrollment_token(
        &self,
        key_sha256: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Every store port: what one table (or the in-memory store) provides. The domain's operations
/// that need more than one port take one `S: Store`.
pub trait Store:
    PlanStore
    + Directory
    + DeviceStore
    + EnrollmentStore
    + AuditLog
    + Limiter
    + SignalStore
    + RolloutStore
{
}
impl<T> Store for T where
    T: PlanStore
        + Directory
        + DeviceStore
        + EnrollmentStore
        + AuditLog
        + Limiter
        + SignalStore
        + RolloutStore
{
}

/// Answers a required-mode invalid response with a new challenge: exactly what a GET of the
/// executor answers at that moment (the same attempt limit, the same denial once it is reached).
/// The response validator holds no signing permission, so in production this asks the challenge
/// function; tests and single-process uses sign directly with `minter::SigningMinter`.
pub trait ChallengeMinter: Send + Sync {
    fn new_challenge(
        &self,
        plan_id: &str,
    ) -> impl std::future::Future<Output = Result<Outcome, CoreError>> + Send;
}

/// What the core needs to know of a signing key before signing with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDescription {
    pub alg: SigningAlg,
    /// RFC 7638 JWK thumbprint of the public key.
    pub kid: String,
    /// The public key as a JWK (with `kid`, `alg`, `use`).
    pub jwk: crate::protocol::jwk::Jwk,
}

/// A JOSE signature with the algorithm and key id it was made with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoseSignature {
    pub alg: SigningAlg,
    pub kid: String,
    /// For EC keys the fixed-size `r||s` form; for RSA the PKCS#1 v1.5 signature.
    pub signature: Vec<u8>,
}

/// Signs challenges with a key named by a reference (KMS id, ARN, alias; or a local name).
pub trait ChallengeSigner: Send + Sync {
    /// The key's algorithm, kid and public JWK. Implementations cache this per process.
    fn describe(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<KeyDescription, SignerError>> + Send;

    /// Signs `message` (the JWS signing input) with the key.
    fn sign(
        &self,
        key: &str,
        message: &[u8],
    ) -> impl Future<Output = Result<JoseSignature, SignerError>> + Send;
}
