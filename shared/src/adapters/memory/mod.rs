//! In-memory implementations of the ports, for fast deterministic unit tests of the domain.
//! They honour the same contracts as the DynamoDB adapter (expiry filtered on read, conditional
//! updates atomic); `shared/tests/port_contract.rs` runs the same behaviour tests against both.

mod data_keys;
mod devices;
mod oidc;
mod probes;
mod resolver;
mod rollout;
mod signals;

pub use data_keys::MemoryDataKeys;
pub use probes::MemoryHealth;
pub use resolver::StaticResolver;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::audit::{AuditEvent, AuditQuery};
use crate::error::StoreError;
use crate::model::ComplianceView;
use crate::model::Evaluation;
use crate::model::Policy;
use crate::model::{
    is_expired, Connector, Device, DeviceToken, EnrollmentToken, FactsSnapshot, PendingChallenge,
    Plan, PlanStatus, Stage, TokenRef, UnixTime,
};
use crate::model::{Receiver, SignalEvent, Stream};
use crate::ports::{AuditLog, Clock, Directory, Finish, Limiter, PlanStore, Random, Reserve};

/// A settable clock.
#[derive(Debug, Default)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    pub fn new(now: UnixTime) -> Self {
        FixedClock(AtomicI64::new(now))
    }
    pub fn set(&self, now: UnixTime) {
        self.0.store(now, Ordering::SeqCst);
    }
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> UnixTime {
        self.0.load(Ordering::SeqCst)
    }
}

/// A deterministic byte source: a counter. Not random at all; for tests only.
#[derive(Debug, Default)]
pub struct SeqRandom(AtomicU64);

impl SeqRandom {
    pub fn new(seed: u64) -> Self {
        SeqRandom(AtomicU64::new(seed))
    }
}

impl Random for SeqRandom {
    fn fill(&self, buf: &mut [u8]) {
        for b in buf.iter_mut() {
            *b = self.0.fetch_add(1, Ordering::Relaxed) as u8;
        }
    }
}

#[derive(Default)]
struct Inner {
    plans: HashMap<String, Plan>,
    stages: HashMap<String, Stage>,
    connectors: BTreeMap<String, Connector>,
    devices: BTreeMap<String, Device>,
    /// (device, token id) -> token
    tokens: BTreeMap<(String, String), DeviceToken>,
    /// sha256(key) -> token ref
    token_index: HashMap<String, TokenRef>,
    /// sha256(key) -> when its device last recorded a configuration fetch (`RolloutStore`)
    config_fetched_at: HashMap<String, UnixTime>,
    enrollment: HashMap<String, EnrollmentToken>,
    /// enrollment token hash -> serial -> time of its latest enrollment
    enrollment_uses: HashMap<String, BTreeMap<String, UnixTime>>,
    /// (device, connector) of every enrollment, kept when tokens are revoked
    connections: HashSet<(String, String)>,
    audit: Vec<AuditEvent>,
    /// The outbox's events not settled yet, in commit order.
    signals: Vec<SignalEvent>,
    /// The settled events, by `seq` (the first is 1; a new epoch's after a primary move).
    settled: BTreeMap<u64, (String, SignalEvent)>,
    /// Each writer's (region's) head, by its name (`""`: one region).
    heads: BTreeMap<String, crate::ports::SignalHead>,
    /// (receiver, seq) -> its SET, signed once.
    signed: BTreeMap<(String, u64), String>,
    receivers: BTreeMap<String, Receiver>,
    streams: BTreeMap<String, Stream>,
    /// bucket -> (count, window end)
    counters: HashMap<String, (u32, UnixTime)>,
    /// (device, connector) -> snapshot
    facts: BTreeMap<(String, String), FactsSnapshot>,
    policies: BTreeMap<String, Policy>,
    /// (device, policy) -> its latest evaluation
    evaluations: BTreeMap<(String, String), Evaluation>,
    /// The OpenID provider's clients, grants and single-use marks.
    oidc: oidc::OidcItems,
}

impl Inner {
    /// Stores a device token with its index entry.
    fn insert_token(&mut self, token: DeviceToken) {
        self.token_index.insert(
            token.key.sha256_hex(),
            TokenRef {
                token_id: token.id.clone(),
                device: token.device.clone(),
                connector: token.connector.clone(),
                expires_at: token.expires_at,
                config_next_key: None,
            },
        );
        self.tokens
            .insert((token.device.clone(), token.id.clone()), token);
    }
}

/// Every store port in one in-memory struct.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// Counts successful `finish_plan` calls that consumed a challenge (for tests).
    consumed: AtomicU64,
    /// The name this store settles the outbox under (its region's code; `""`: one region).
    signal_writer: String,
    /// Whether this store has settled since it was made (`ports::numbering`'s `first`).
    numbered: std::sync::atomic::AtomicBool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store poisoned".into()))
    }

    /// The same store, settling the outbox as the writer `region` (a region's code).
    pub fn with_signal_writer(mut self, region: &str) -> Self {
        self.signal_writer = region.to_string();
        self
    }

    /// Test helper standing in for a global table's replication of the outbox: copies this
    /// store's receivers, streams, heads, settled events and kept SETs into `to`, each item
    /// replacing `to`'s item of the same key (the later write wins).
    pub fn replicate_signals_to(&self, to: &MemoryStore) {
        let (Ok(from), Ok(mut to)) = (self.inner.lock(), to.inner.lock()) else {
            return;
        };
        to.receivers.extend(from.receivers.clone());
        to.streams.extend(from.streams.clone());
        to.heads.extend(from.heads.clone());
        to.settled.extend(from.settled.clone());
        to.signed.extend(from.signed.clone());
    }

    /// How many challenges were consumed by a successful conditional finish.
    pub fn consumed_challenges(&self) -> u64 {
        self.consumed.load(Ordering::SeqCst)
    }

    /// Test helper: the stored plan even when expired.
    pub fn raw_plan(&self, id: &str) -> Option<Plan> {
        self.inner.lock().ok()?.plans.get(id).cloned()
    }

    /// Test helper: how many plans are stored (expired ones too).
    pub fn plan_count(&self) -> usize {
        self.inner.lock().map_or(0, |g| g.plans.len())
    }

    /// Test helper: store one more token for a device without deleting the others (enrollment
    /// always replaces; this models a connection that holds two tokens).
    pub fn add_token(&self, token: DeviceToken) {
        if let Ok(mut g) = self.inner.lock() {
            g.insert_token(token);
        }
    }
}

impl PlanStore for MemoryStore {
    async fn create_plan(&self, plan: &Plan) -> Result<(), StoreError> {
        let mut g = self.lock()?;
        if g.plans.contains_key(&plan.id) {
            return Err(StoreError::AlreadyExists(format!("plan {}", plan.id)));
        }
        g.plans.insert(plan.id.clone(), plan.clone());
        Ok(())
    }

    async fn get_plan(&self, id: &str, now: UnixTime) -> Result<Option<Plan>, StoreError> {
        let g = self.lock()?;
        Ok(g.plans
            .get(id)
            .filter(|p| !is_expired(Some(p.expires_at), now))
            .cloned())
    }

    async fn reserve_challenge(
        &self,
        id: &str,
        max: u32,
        now: UnixTime,
    ) -> Result<Reserve, StoreError> {
        let mut g = self.lock()?;
        Ok(match g.plans.get_mut(id) {
            Some(p)
                if p.status == PlanStatus::Pending
                    && !is_expired(Some(p.expires_at), now)
                    && p.challenges_issued < max =>
            {
                p.challenges_issued += 1;
                Reserve::Granted(p.clone())
            }
            other => Reserve::Refused(other.map(|p| p.clone())),
        })
    }

    async fn set_challenge(
        &self,
        id: &str,
        challenge: &PendingChallenge,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut g = self.lock()?;
        match g.plans.get_mut(id) {
            Some(p) if p.status == PlanStatus::Pending && !is_expired(Some(p.expires_at), now) => {
                p.pending_challenge = Some(challenge.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn finish_plan(
        &self,
        id: &str,
        finish: &Finish,
        consume: Option<&str>,
        now: UnixTime,
        audit: Option<&AuditEvent>,
        compliance: Option<&ComplianceView>,
    ) -> Result<bool, StoreError> {
        let mut g = self.lock()?;
        let Some(p) = g.plans.get_mut(id) else {
            return Ok(false);
        };
        if p.status != PlanStatus::Pending || is_expired(Some(p.expires_at), now) {
            return Ok(false);
        }
        if let Some(jws) = consume {
            if p.pending_challenge.as_ref().map(|c| c.jws.as_str()) != Some(jws) {
                return Ok(false);
            }
            self.consumed.fetch_add(1, Ordering::SeqCst);
        }
        p.pending_challenge = None;
        p.compliance = compliance.cloned();
        p.ended_at = Some(now);
        match finish {
            Finish::Passed(device) => {
                p.status = PlanStatus::Passed;
                p.device = device.clone();
            }
            Finish::Denied(message) => {
                p.status = PlanStatus::Denied;
                p.denial = Some(message.clone());
            }
        }
        if let Some(event) = audit {
            g.audit.push(event.clone());
        }
        Ok(true)
    }

    async fn keep_assertion(
        &self,
        id: &str,
        assertion: &str,
    ) -> Result<Option<String>, StoreError> {
        let mut g = self.lock()?;
        let Some(p) = g
            .plans
            .get_mut(id)
            .filter(|p| p.status == PlanStatus::Passed)
        else {
            return Ok(None);
        };
        Ok(Some(
            p.assertion
                .get_or_insert_with(|| assertion.to_string())
                .clone(),
        ))
    }
}

impl Directory for MemoryStore {
    async fn get_stage(&self, id: &str) -> Result<Option<Stage>, StoreError> {
        Ok(self.lock()?.stages.get(id).cloned())
    }
    async fn put_stage(&self, stage: &Stage) -> Result<(), StoreError> {
        self.lock()?.stages.insert(stage.id.clone(), stage.clone());
        Ok(())
    }
    async fn get_connector(&self, id: &str) -> Result<Option<Connector>, StoreError> {
        Ok(self.lock()?.connectors.get(id).cloned())
    }
    async fn put_connector(&self, connector: &Connector) -> Result<(), StoreError> {
        self.lock()?
            .connectors
            .insert(connector.id.clone(), connector.clone());
        Ok(())
    }
    async fn list_connectors(&self) -> Result<Vec<Connector>, StoreError> {
        Ok(self.lock()?.connectors.values().cloned().collect())
    }
    async fn list_stages(&self) -> Result<Vec<Stage>, StoreError> {
        Ok(self.lock()?.stages.values().cloned().collect())
    }
    async fn get_policy(&self, id: &str) -> Result<Option<Policy>, StoreError> {
        Ok(self.lock()?.policies.get(id).cloned())
    }
    async fn get_policies(&self, ids: &[String]) -> Result<Vec<Policy>, StoreError> {
        let g = self.lock()?;
        Ok(ids
            .iter()
            .filter_map(|id| g.policies.get(id).cloned())
            .collect())
    }
    async fn put_policy(&self, policy: &Policy) -> Result<(), StoreError> {
        self.lock()?
            .policies
            .insert(policy.id.clone(), policy.clone());
        Ok(())
    }
    async fn list_policies(&self) -> Result<Vec<Policy>, StoreError> {
        Ok(self.lock()?.policies.values().cloned().collect())
    }
    async fn delete_policy(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.lock()?.policies.remove(id).is_some())
    }
}

impl AuditLog for MemoryStore {
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.lock()?.audit.push(event.clone());
        Ok(())
    }

    async fn audit_events(
        &self,
        query: &AuditQuery,
        _now: UnixTime,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let g = self.lock()?;
        let mut events: Vec<AuditEvent> = g
            .audit
            .iter()
            .filter(|e| query.matches(e))
            .cloned()
            .collect();
        events.sort_by(|a, b| b.id.cmp(&a.id));
        events.truncate(query.limit);
        Ok(events)
    }
}

impl Limiter for MemoryStore {
    async fn take(
        &self,
        bucket: &str,
        limit: u32,
        window_end: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut g = self.lock()?;
        let entry = g
            .counters
            .entry(bucket.to_string())
            .or_insert((0, window_end));
        if entry.0 >= limit {
            return Ok(false);
        }
        entry.0 += 1;
        Ok(true)
    }

    async fn counts(&self, buckets: &[String], now: UnixTime) -> Result<Vec<u32>, StoreError> {
        let g = self.lock()?;
        Ok(buckets
            .iter()
            .map(|b| match g.counters.get(b) {
                Some(&(count, end)) if end > now => count,
                _ => 0,
            })
            .collect())
    }
}
