//! Challenge data keys in memory (the `data-key` mode's ports), for fast tests of the signer:
//! records in a map, and a vault whose "wrapped" private key is an opaque handle to a key pair
//! it generated, counting its unwraps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

use crate::adapters::data_key_signer::p256_spki;
use crate::error::{SignerError, StoreError};
use crate::model::{DataKeyRecord, Plaintext};
use crate::ports::{DataKeyRecords, DataKeyVault, WrappedKeyPair};

#[derive(Default)]
struct State {
    records: HashMap<String, DataKeyRecord>,
    /// handle -> (wrapping key, PKCS#8 private key)
    private: HashMap<Vec<u8>, (String, Vec<u8>)>,
}

/// Records and vault in one; clones share their state.
#[derive(Clone, Default)]
pub struct MemoryDataKeys {
    state: Arc<Mutex<State>>,
    unwraps: Arc<AtomicUsize>,
}

impl MemoryDataKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many private keys the vault unwrapped.
    pub fn unwraps(&self) -> usize {
        self.unwraps.load(Ordering::SeqCst)
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, State>, SignerError> {
        self.state
            .lock()
            .map_err(|_| SignerError::Unavailable("memory vault poisoned".into()))
    }
}

impl DataKeyRecords for MemoryDataKeys {
    async fn get_data_key(&self, kid: &str) -> Result<Option<DataKeyRecord>, StoreError> {
        let state = self
            .state
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store poisoned".into()))?;
        Ok(state.records.get(kid).cloned())
    }

    async fn put_data_key(&self, record: &DataKeyRecord) -> Result<bool, StoreError> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store poisoned".into()))?;
        if state.records.contains_key(&record.kid) {
            return Ok(false);
        }
        state.records.insert(record.kid.clone(), record.clone());
        Ok(true)
    }
}

impl DataKeyVault for MemoryDataKeys {
    async fn generate_key_pair(&self, wrapping_key: &str) -> Result<WrappedKeyPair, SignerError> {
        let failed = || SignerError::Unavailable("key generation failed".into());
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| failed())?
            .as_ref()
            .to_vec();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .map_err(|_| failed())?;
        let public_key = p256_spki(pair.public_key().as_ref());
        let mut state = self.state()?;
        let handle = format!("wrapped-{}", state.private.len()).into_bytes();
        state
            .private
            .insert(handle.clone(), (wrapping_key.to_string(), pkcs8));
        Ok(WrappedKeyPair {
            public_key,
            wrapped_private_key: handle,
            wrapping_key: wrapping_key.to_string(),
        })
    }

    async fn unwrap_private_key(&self, record: &DataKeyRecord) -> Result<Plaintext, SignerError> {
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        let state = self.state()?;
        match state.private.get(&record.wrapped_private_key) {
            Some((key, pkcs8)) if *key == record.wrapping_key => Ok(Plaintext::new(pkcs8.clone())),
            _ => Err(SignerError::KeyUnusable {
                key: record.kid.clone(),
                reason: "the vault cannot unwrap it".into(),
            }),
        }
    }
}
