//! The OpenID provider's store in memory.

use std::collections::{BTreeMap, HashMap};

use super::MemoryStore;
use crate::error::StoreError;
use crate::model::{is_expired, Grant, OidcClient, UnixTime};
use crate::ports::{GrantKind, OidcStore};

#[derive(Default)]
pub(super) struct OidcItems {
    clients: BTreeMap<String, OidcClient>,
    grants: HashMap<(&'static str, String), Grant>,
    marks: HashMap<String, UnixTime>,
}

impl OidcStore for MemoryStore {
    async fn create_client(&self, c: &OidcClient) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if inner.oidc.clients.contains_key(&c.id) {
            return Err(StoreError::AlreadyExists(format!("client {}", c.id)));
        }
        inner.oidc.clients.insert(c.id.clone(), c.clone());
        Ok(())
    }
    async fn replace_client(&self, c: &OidcClient) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        match inner.oidc.clients.get_mut(&c.id) {
            Some(stored) => {
                *stored = c.clone();
                Ok(())
            }
            None => Err(StoreError::NotFound(format!("client {}", c.id))),
        }
    }
    async fn get_client(&self, id: &str) -> Result<Option<OidcClient>, StoreError> {
        Ok(self.lock()?.oidc.clients.get(id).cloned())
    }
    async fn list_clients(&self) -> Result<Vec<OidcClient>, StoreError> {
        Ok(self.lock()?.oidc.clients.values().cloned().collect())
    }
    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.lock()?.oidc.clients.remove(id).is_some())
    }
    async fn put_grant(
        &self,
        kind: GrantKind,
        hash: &str,
        grant: &Grant,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let key = (kind.as_str(), hash.to_string());
        if inner.oidc.grants.contains_key(&key) {
            return Err(StoreError::AlreadyExists("grant".into()));
        }
        inner.oidc.grants.insert(key, grant.clone());
        Ok(())
    }
    async fn take_grant(
        &self,
        kind: GrantKind,
        hash: &str,
        now: UnixTime,
    ) -> Result<Option<Grant>, StoreError> {
        let mut inner = self.lock()?;
        let taken = inner.oidc.grants.remove(&(kind.as_str(), hash.to_string()));
        Ok(taken.filter(|g| !is_expired(Some(g.expires_at), now)))
    }
    async fn read_grant(
        &self,
        kind: GrantKind,
        hash: &str,
        now: UnixTime,
    ) -> Result<Option<Grant>, StoreError> {
        let inner = self.lock()?;
        let grant = inner.oidc.grants.get(&(kind.as_str(), hash.to_string()));
        Ok(grant
            .filter(|g| !is_expired(Some(g.expires_at), now))
            .cloned())
    }
    async fn mark_once(
        &self,
        marker: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        match inner.oidc.marks.get(marker) {
            Some(until) if !is_expired(Some(*until), now) => Ok(false),
            _ => {
                inner.oidc.marks.insert(marker.to_string(), expires_at);
                Ok(true)
            }
        }
    }
}
