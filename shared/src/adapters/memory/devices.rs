//! The in-memory device and enrollment-token stores.

use super::MemoryStore;

/// The stored evaluations of one device, by policy.
fn evaluations_of(
    all: &std::collections::BTreeMap<(String, String), Evaluation>,
    identifier: &str,
) -> Vec<Evaluation> {
    all.range((identifier.to_string(), String::new())..)
        .take_while(|((d, _), _)| d == identifier)
        .map(|(_, e)| e.clone())
        .collect()
}
use crate::audit::AuditEvent;
use crate::error::StoreError;
use crate::model::ComplianceStatus;
use crate::model::Evaluation;
use crate::model::{
    is_expired, reenrollment, Device, DeviceLock, DeviceToken, DeviceWithTokens, EnrollmentToken,
    FactsSnapshot, Reenrollment, SignalEvent, TokenInfo, TokenRef, TokenUse, UnixTime,
};
use crate::ports::{DeviceStore, EnrollGrant, EnrollOutcome, EnrollmentStore};

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
            compliance: evaluations_of(&g.evaluations, identifier),
        }))
    }

    async fn device_profile(
        &self,
        identifier: &str,
        now: UnixTime,
    ) -> Result<Option<(Device, Vec<Evaluation>)>, StoreError> {
        let g = self.lock()?;
        Ok(g.devices
            .get(identifier)
            .filter(|d| !is_expired(d.expires_at, now))
            .map(|d| (d.clone(), evaluations_of(&g.evaluations, identifier))))
    }

    async fn put_evaluations(
        &self,
        identifier: &str,
        evaluations: &[Evaluation],
        audit: &[AuditEvent],
        signals: &[SignalEvent],
    ) -> Result<(), StoreError> {
        let mut g = self.lock()?;
        for e in evaluations {
            g.evaluations
                .insert((identifier.to_string(), e.policy.clone()), e.clone());
        }
        g.audit.extend(audit.iter().cloned());
        g.signals.extend(signals.iter().cloned());
        Ok(())
    }

    async fn non_compliant(
        &self,
        policy: Option<&str>,
    ) -> Result<Vec<(String, Evaluation)>, StoreError> {
        let g = self.lock()?;
        Ok(g.evaluations
            .iter()
            .filter(|((_, p), e)| {
                e.status == ComplianceStatus::NonCompliant && policy.is_none_or(|want| p == want)
            })
            .map(|((serial, _), e)| (serial.clone(), e.clone()))
            .collect())
    }

    async fn devices_page(
        &self,
        after: Option<&str>,
        limit: usize,
        now: UnixTime,
    ) -> Result<(Vec<Device>, Option<String>), StoreError> {
        let g = self.lock()?;
        let page: Vec<Device> = g
            .devices
            .values()
            .filter(|d| after.is_none_or(|a| d.identifier.as_str() > a))
            .filter(|d| !is_expired(d.expires_at, now))
            .take(limit)
            .cloned()
            .collect();
        let next = (page.len() == limit)
            .then(|| page.last().map(|d| d.identifier.clone()))
            .flatten();
        Ok((page, next))
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

    async fn token_and_device(
        &self,
        key_sha256: &str,
        identifier: &str,
        now: UnixTime,
    ) -> Result<(Option<TokenRef>, Option<Device>), StoreError> {
        let token = self.token_by_hash(key_sha256, now).await?;
        Ok((token, self.get_device(identifier, now).await?))
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
        let existed = g.devices.contains_key(&device.identifier);
        let connectors: Vec<&str> = g
            .connections
            .iter()
            .filter(|(d, _)| d == &device.identifier)
            .map(|(_, c)| c.as_str())
            .collect();
        if reenrollment(&grant.existing, existed, &connectors) == Reenrollment::NeedsApproval {
            return Ok(EnrollOutcome::NeedsApproval);
        }
        if let Some(hash) = &grant.enrollment_token {
            if g.enrollment
                .get(hash)
                .is_none_or(|t| t.refusal(now).is_some())
            {
                return Ok(EnrollOutcome::TokenRefused);
            }
        }
        // Every condition holds: the writes, all at once.
        g.connections
            .insert((device.identifier.clone(), token.connector.clone()));
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
        match g.devices.get_mut(&device.identifier) {
            None => {
                g.devices.insert(device.identifier.clone(), device.clone());
            }
            // An enrollment token's owner replaces the existing device's owners.
            Some(existing) if !device.owners.is_empty() => {
                existing.owners = device.owners.clone();
            }
            Some(_) => {}
        }
        g.insert_token(token.clone());
        if let Some(event) = &grant.audit {
            g.audit.push(event.clone());
        }
        Ok(EnrollOutcome::Enrolled { existed, replaced })
    }

    async fn set_device_lock(
        &self,
        identifier: &str,
        lock: Option<&DeviceLock>,
        signal: Option<&SignalEvent>,
    ) -> Result<bool, StoreError> {
        let mut g = self.lock()?;
        match g.devices.get_mut(identifier) {
            Some(d) => d.lock = lock.cloned(),
            None => return Ok(false),
        }
        g.signals.extend(signal.cloned());
        Ok(true)
    }

    async fn set_device_owners(
        &self,
        identifier: &str,
        owners: &[String],
    ) -> Result<bool, StoreError> {
        let mut g = self.lock()?;
        match g.devices.get_mut(identifier) {
            Some(d) => d.owners = owners.to_vec(),
            None => return Ok(false),
        }
        Ok(true)
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
        g.connections.retain(|(d, _)| d != identifier);
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
