//! `RolloutStore` in memory: the next key a device last fetched is kept on its token's index
//! entry, as the table keeps it on the token index item.

use super::MemoryStore;
use crate::error::StoreError;
use crate::model::{is_expired, ConfigFetch, UnixTime};
use crate::ports::RolloutStore;

impl RolloutStore for MemoryStore {
    async fn record_config_fetch(
        &self,
        key_sha256: &str,
        connector: &str,
        next_key: &str,
        at: UnixTime,
    ) -> Result<(), StoreError> {
        let mut g = self.lock()?;
        let Some(t) = g.token_index.get_mut(key_sha256) else {
            return Ok(());
        };
        if t.connector == connector {
            t.config_next_key = Some(next_key.to_string());
            g.config_fetched_at.insert(key_sha256.to_string(), at);
        }
        Ok(())
    }

    async fn config_fetches(
        &self,
        connector: &str,
        now: UnixTime,
    ) -> Result<Vec<ConfigFetch>, StoreError> {
        let g = self.lock()?;
        let mut out: Vec<ConfigFetch> = g
            .token_index
            .iter()
            .filter(|(_, t)| t.connector == connector && !is_expired(t.expires_at, now))
            .map(|(hash, t)| ConfigFetch {
                device: t.device.clone(),
                next_key: t.config_next_key.clone(),
                at: g.config_fetched_at.get(hash).copied(),
            })
            .collect();
        out.sort_by(|a, b| a.device.cmp(&b.device));
        Ok(out)
    }
}
