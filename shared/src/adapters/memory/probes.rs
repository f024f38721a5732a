//! `/health`'s ports in memory, for fast tests of the health decision: a table that answers or
//! fails on demand and keys that are enabled or not, each counting the calls it was asked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{SignerError, StoreError};
use crate::ports::{KeyStatus, KeyUse, TableProbe};

#[derive(Default)]
struct State {
    table_fails: AtomicBool,
    /// key -> (its use, enabled); a key not here does not exist.
    keys: Mutex<HashMap<String, (KeyUse, bool)>>,
    table_reads: AtomicUsize,
    key_reads: AtomicUsize,
}

/// A table and a key service in one; clones share their state.
#[derive(Clone, Default)]
pub struct MemoryHealth {
    state: Arc<State>,
}

impl MemoryHealth {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the table's reads fail (`true`) or answer again.
    pub fn set_table_fails(&self, fails: bool) {
        self.state.table_fails.store(fails, Ordering::SeqCst);
    }

    /// Adds or replaces a key, enabled or not.
    pub fn set_key(&self, key: &str, usage: KeyUse, enabled: bool) {
        if let Ok(mut keys) = self.state.keys.lock() {
            keys.insert(key.to_string(), (usage, enabled));
        }
    }

    /// How many table reads and key descriptions were asked.
    pub fn calls(&self) -> (usize, usize) {
        (
            self.state.table_reads.load(Ordering::SeqCst),
            self.state.key_reads.load(Ordering::SeqCst),
        )
    }
}

impl TableProbe for MemoryHealth {
    async fn probe_table(&self) -> Result<(), StoreError> {
        self.state.table_reads.fetch_add(1, Ordering::SeqCst);
        if self.state.table_fails.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the table does not answer".into()));
        }
        Ok(())
    }
}

impl KeyStatus for MemoryHealth {
    async fn key_usable(&self, key: &str, usage: KeyUse) -> Result<bool, SignerError> {
        self.state.key_reads.fetch_add(1, Ordering::SeqCst);
        let keys = self
            .state
            .keys
            .lock()
            .map_err(|_| SignerError::Unavailable("poisoned".into()))?;
        match keys.get(key) {
            None => Err(SignerError::KeyNotFound(key.to_string())),
            Some((made_for, enabled)) => Ok(*enabled && *made_for == usage),
        }
    }
}
