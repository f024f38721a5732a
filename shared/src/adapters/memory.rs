//! In-memory implementations of the ports, for fast deterministic unit tests of the domain.
//! They honour the same contracts as the DynamoDB adapter (expiry filtered on read, conditional
//! updates atomic); `shared/tests/port_contract.rs` runs the same behaviour tests against both.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::audit::{AuditEvent, AuditQuery};
use crate::error::StoreError;
use crate::model::{
    is_expired, reenrollment, Connector, Device, DeviceToken, DeviceWithTokens, EnrollmentToken,
    FactsSnapshot, PendingChallenge, Plan, PlanStatus, Reenrollment, Stage, TokenInfo, TokenRef,
    TokenUse, UnixTime,
};
use crate::ports::{
    AuditLog, Clock, DeviceStore, Directory, EnrollGrant, EnrollOutcome, EnrollmentStore, Finish,
    Limiter, PlanStore, Random, Reserve,
};

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
    enrollment: HashMap<String, EnrollmentToken>,
    /// enrollment token hash -> serial -> time of its latest enrollment
    enrollment_uses: HashMap<String, BTreeMap<String, UnixTime>>,
    /// (device, connector) -> until when one re-enrollment is allowed
    allowances: HashMap<(String, String), UnixTime>,
    audit: Vec<AuditEvent>,
    /// bucket -> (count, window end)
    counters: HashMap<String, (u32, UnixTime)>,
    /// (device, connector) -> snapshot
    facts: BTreeMap<(String, String), FactsSnapshot>,
}

/// Every store port in one in-memory struct.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// Counts successful `finish_plan` calls that consumed a challenge (for tests).
    consumed: AtomicU64,
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

    /// How many challenges were consumed by a successful conditional finish.
    pub fn consumed_challenges(&self) -> u64 {
        self.consumed.load(Ordering::SeqCst)
    }

    /// Test helper: the stored plan even when expired.
    pub fn raw_plan(&self, id: &str) -> Option<Plan> {
        self.inner.lock().ok()?.plans.get(id).cloned()
    }

    /// Test helper: store one more token for a device without deleting the others (enrollment
    /// always replaces; this models a connection that holds two tokens).
    pub fn add_token(&self, token: DeviceToken) {
        if let Ok(mut g) = self.inner.lock() {
            g.token_index.insert(
                token.key.sha256_hex(),
                TokenRef {
                    token_id: token.id.clone(),
                    device: token.device.clone(),
                    connector: token.connector.clone(),
                    expires_at: token.expires_at,
                },
            );
            g.tokens
                .insert((token.device.clone(), token.id.clone()), token);
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
}

impl DeviceStore for MemoryStore {
    async fn device_with_tokens(
        &self,
        identifier: &str,
        now: UnixTime,
    ) -> Result<Option<DeviceWithTokens>, StoreError> {
        let g = self.lock()?;
        let Some(device) = g
            .devices
            .get(identifier)
            .filter(|d| !is_expired(d.expires_at, now))
        else {
            return Ok(None);
        };
        let tokens = g
            .tokens
            .range((identifier.to_string(), String::new())..)
            .take_while(|((d, _), _)| d == identifier)
            .map(|(_, t)| t)
            .filter(|t| !is_expired(t.expires_at, now))
            .cloned()
            .collect();
        Ok(Some(DeviceWithTokens {
            device: device.clone(),
            tokens,
        }))
    }

    async fn device_token_info(
        &self,
        identifier: &str,
        now: UnixTime,
    ) -> Result<Option<(Device, Vec<TokenInfo>)>, StoreError> {
        Ok(self.device_with_tokens(identifier, now).await?.map(|d| {
            let tokens = d
                .tokens
                .iter()
                .map(|t| TokenInfo {
                    id: t.id.clone(),
                    connector: t.connector.clone(),
                    created_at: t.created_at,
                    expires_at: t.expires_at,
                })
                .collect();
            (d.device, tokens)
        }))
    }

    async fn token_by_hash(
        &self,
        key_sha256: &str,
        now: UnixTime,
    ) -> Result<Option<TokenRef>, StoreError> {
        let g = self.lock()?;
        Ok(g.token_index
            .get(key_sha256)
            .filter(|t| !is_expired(t.expires_at, now))
            .cloned())
    }

    async fn get_device(
        &self,
        identifier: &str,
        now: UnixTime,
    ) -> Result<Option<Device>, StoreError> {
        let g = self.lock()?;
        Ok(g.devices
            .get(identifier)
            .filter(|d| !is_expired(d.expires_at, now))
            .cloned())
    }

    async fn list_devices(&self, now: UnixTime) -> Result<Vec<Device>, StoreError> {
        let g = self.lock()?;
        Ok(g.devices
            .values()
            .filter(|d| !is_expired(d.expires_at, now))
            .cloned()
            .collect())
    }

    async fn enroll(
        &self,
        device: &Device,
        token: &DeviceToken,
        grant: &EnrollGrant,
    ) -> Result<EnrollOutcome, StoreError> {
        let mut g = self.lock()?;
        let now = grant.now;
        let old: Vec<(String, String)> = g
            .tokens
            .iter()
            .filter(|((d, _), t)| d == &device.identifier && t.connector == token.connector)
            .map(|(k, _)| k.clone())
            .collect();
        let replaced = old.iter().any(|k| {
            g.tokens
                .get(k)
                .is_some_and(|t| !is_expired(t.expires_at, now))
        });
        let connection = (device.identifier.clone(), token.connector.clone());
        let allowance_live = g
            .allowances
            .get(&connection)
            .is_some_and(|&until| !is_expired(Some(until), now));
        let allowance_used = match reenrollment(grant.reenroll, replaced, allowance_live) {
            Reenrollment::Proceed { uses_allowance } => uses_allowance,
            Reenrollment::NeedsApproval => return Ok(EnrollOutcome::NeedsApproval),
        };
        if let Some(hash) = &grant.enrollment_token {
            if g.enrollment
                .get(hash)
                .is_none_or(|t| t.refusal(now).is_some())
            {
                return Ok(EnrollOutcome::TokenRefused);
            }
        }
        // Every condition holds: the writes, all at once.
        if allowance_used {
            g.allowances.remove(&connection);
        }
        if let Some(hash) = &grant.enrollment_token {
            if let Some(t) = g.enrollment.get_mut(hash) {
                t.uses += 1;
                t.last_used_at = Some(now);
            }
            g.enrollment_uses
                .entry(hash.clone())
                .or_default()
                .insert(device.identifier.clone(), now);
        }
        for k in old {
            if let Some(t) = g.tokens.remove(&k) {
                g.token_index.remove(&t.key.sha256_hex());
            }
        }
        // An existing device keeps its id, name, creation time and expiry (as on the reference).
        if !g.devices.contains_key(&device.identifier) {
            g.devices.insert(device.identifier.clone(), device.clone());
        }
        g.token_index.insert(
            token.key.sha256_hex(),
            TokenRef {
                token_id: token.id.clone(),
                device: token.device.clone(),
                connector: token.connector.clone(),
                expires_at: token.expires_at,
            },
        );
        g.tokens
            .insert((device.identifier.clone(), token.id.clone()), token.clone());
        if let Some(event) = &grant.audit {
            g.audit.push(event.clone());
        }
        Ok(EnrollOutcome::Enrolled {
            replaced,
            allowance_used,
        })
    }

    async fn allow_reenroll(
        &self,
        identifier: &str,
        connector: &str,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        self.lock()?
            .allowances
            .insert((identifier.to_string(), connector.to_string()), until);
        Ok(())
    }

    async fn revoke_tokens(&self, identifier: &str, connector: &str) -> Result<usize, StoreError> {
        let mut g = self.lock()?;
        let old: Vec<(String, String)> = g
            .tokens
            .iter()
            .filter(|((d, _), t)| d == identifier && t.connector == connector)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &old {
            if let Some(t) = g.tokens.remove(k) {
                g.token_index.remove(&t.key.sha256_hex());
            }
        }
        Ok(old.len())
    }

    async fn put_facts(&self, snapshot: &FactsSnapshot) -> Result<(), StoreError> {
        let key = (snapshot.device.clone(), snapshot.connector.clone());
        self.lock()?.facts.insert(key, snapshot.clone());
        Ok(())
    }

    async fn latest_facts(
        &self,
        identifier: &str,
        now: UnixTime,
    ) -> Result<Option<FactsSnapshot>, StoreError> {
        let g = self.lock()?;
        Ok(g.facts
            .values()
            .filter(|f| f.device == identifier && f.expires_at > now)
            .max_by_key(|f| f.created_at)
            .cloned())
    }

    async fn delete_device(&self, identifier: &str) -> Result<bool, StoreError> {
        let mut g = self.lock()?;
        g.facts.retain(|(d, _), _| d != identifier);
        let existed = g.devices.remove(identifier).is_some();
        let keys: Vec<_> = g
            .tokens
            .keys()
            .filter(|(d, _)| d == identifier)
            .cloned()
            .collect();
        for k in keys {
            if let Some(t) = g.tokens.remove(&k) {
                g.token_index.remove(&t.key.sha256_hex());
            }
        }
        Ok(existed)
    }
}

impl EnrollmentStore for MemoryStore {
    async fn put_enrollment_token(&self, token: &EnrollmentToken) -> Result<(), StoreError> {
        self.lock()?
            .enrollment
            .insert(token.key_sha256.clone(), token.clone());
        Ok(())
    }

    async fn enrollment_token_by_hash(
        &self,
        key_sha256: &str,
    ) -> Result<Option<EnrollmentToken>, StoreError> {
        Ok(self.lock()?.enrollment.get(key_sha256).cloned())
    }

    async fn list_enrollment_tokens(&self) -> Result<Vec<EnrollmentToken>, StoreError> {
        Ok(self.lock()?.enrollment.values().cloned().collect())
    }

    async fn enrollment_token_uses(&self, key_sha256: &str) -> Result<Vec<TokenUse>, StoreError> {
        let g = self.lock()?;
        let mut uses: Vec<TokenUse> = g
            .enrollment_uses
            .get(key_sha256)
            .map(|m| {
                m.iter()
                    .map(|(serial, &at)| TokenUse {
                        serial: serial.clone(),
                        at,
                    })
                    .collect()
            })
            .unwrap_or_default();
        uses.sort_by(|a, b| a.at.cmp(&b.at).then(a.serial.cmp(&b.serial)));
        Ok(uses)
    }

    async fn revoke_enrollment_token(
        &self,
        key_sha256: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut g = self.lock()?;
        Ok(match g.enrollment.get_mut(key_sha256) {
            Some(t) => {
                t.revoked_at.get_or_insert(now);
                true
            }
            None => false,
        })
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
}
