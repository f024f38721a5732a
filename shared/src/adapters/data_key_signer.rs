//! The challenge signer of the `data-key` mode (issue 31.4), and [`ChallengeKeys`], which sends
//! each key reference to the signer that holds it (`datakey:<kid>` here, anything else to KMS).
//!
//! A data key's record is read once per instance (it never changes: its kid is its public key's
//! thumbprint, checked on read). Its private key is unwrapped once per instance, on first use
//! (one KMS `Decrypt` with the data-key encryption context; concurrent first uses wait for that
//! one call), parsed into aws-lc's key type and the plaintext zeroed at once
//! ([`Plaintext`]); aws-lc cleanses the parsed key's memory when it is freed. Signing is then
//! local: no KMS call per challenge, so the KMS ECC request quota no longer bounds logins.
//!
//! Without a vault (the JWKS and agent functions) the signer only describes keys: they publish
//! the public half and can never open the private one.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

use crate::error::SignerError;
use crate::model::{data_key_kid, DataKeyRecord, DATA_KEY_PREFIX};
use crate::ports::{ChallengeSigner, DataKeyRecords, DataKeyVault, JoseSignature, KeyDescription};
use crate::protocol::jwk::Jwk;
use crate::protocol::keys::SigningAlg;

struct Public {
    record: DataKeyRecord,
    description: KeyDescription,
}

struct Inner<R, V> {
    records: R,
    vault: Option<V>,
    public: RwLock<HashMap<String, Arc<Public>>>,
    private: RwLock<HashMap<String, Arc<EcdsaKeyPair>>>,
    /// Held while a private key is unwrapped: one `Decrypt` per key and instance.
    unwrapping: futures::lock::Mutex<()>,
}

/// Describes challenge data keys from their records and, with a vault, signs with them.
pub struct DataKeySigner<R, V> {
    inner: Arc<Inner<R, V>>,
}

impl<R, V> Clone for DataKeySigner<R, V> {
    fn clone(&self) -> Self {
        DataKeySigner {
            inner: self.inner.clone(),
        }
    }
}

fn unusable(key: &str, reason: &str) -> SignerError {
    SignerError::KeyUnusable {
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

impl<R: DataKeyRecords, V: DataKeyVault> DataKeySigner<R, V> {
    /// A signer that can unwrap private keys (the challenge function).
    pub fn new(records: R, vault: Option<V>) -> Self {
        DataKeySigner {
            inner: Arc::new(Inner {
                records,
                vault,
                public: RwLock::new(HashMap::new()),
                private: RwLock::new(HashMap::new()),
                unwrapping: futures::lock::Mutex::new(()),
            }),
        }
    }

    /// How many private keys this instance holds unwrapped (tests and benchmarks).
    pub fn unwrapped_keys(&self) -> usize {
        self.inner.private.read().map(|p| p.len()).unwrap_or(0)
    }

    async fn public(&self, reference: &str) -> Result<Arc<Public>, SignerError> {
        let kid = data_key_kid(reference)
            .ok_or_else(|| SignerError::KeyNotFound(reference.to_string()))?;
        if let Some(p) = self
            .inner
            .public
            .read()
            .ok()
            .and_then(|m| m.get(kid).cloned())
        {
            return Ok(p);
        }
        let record = self
            .inner
            .records
            .get_data_key(kid)
            .await
            .map_err(|e| SignerError::Unavailable(e.to_string()))?
            .ok_or_else(|| SignerError::KeyNotFound(reference.to_string()))?;
        let (jwk, alg) = Jwk::from_spki_der(&record.public_key)
            .map_err(|e| unusable(reference, &e.to_string()))?;
        if alg != SigningAlg::ES256 {
            return Err(unusable(reference, "a challenge data key is a P-256 key"));
        }
        if jwk.kid != kid || record.kid != kid {
            return Err(unusable(
                reference,
                "the record's public key does not match its kid",
            ));
        }
        let public = Arc::new(Public {
            record,
            description: KeyDescription {
                alg,
                kid: jwk.kid.clone(),
                jwk,
            },
        });
        if let Ok(mut m) = self.inner.public.write() {
            m.insert(kid.to_string(), public.clone());
        }
        Ok(public)
    }

    fn cached_private(&self, kid: &str) -> Option<Arc<EcdsaKeyPair>> {
        self.inner.private.read().ok()?.get(kid).cloned()
    }

    async fn private(
        &self,
        reference: &str,
        public: &Public,
    ) -> Result<Arc<EcdsaKeyPair>, SignerError> {
        let kid = public.description.kid.as_str();
        if let Some(pair) = self.cached_private(kid) {
            return Ok(pair);
        }
        let vault = self.inner.vault.as_ref().ok_or_else(|| {
            unusable(
                reference,
                "this function cannot unwrap challenge data keys (only the challenge function, with ChallengeSigning=data-key)",
            )
        })?;
        let _one = self.inner.unwrapping.lock().await;
        if let Some(pair) = self.cached_private(kid) {
            return Ok(pair);
        }
        let mut plaintext = vault.unwrap_private_key(&public.record).await?;
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, plaintext.expose())
                .map_err(|_| unusable(reference, "the unwrapped private key is not a P-256 key"))?;
        drop(plaintext);
        let spki = pair
            .public_key()
            .as_der()
            .map_err(|_| unusable(reference, "the public key cannot be encoded"))?;
        let matches = Jwk::from_spki_der(spki.as_ref()).is_ok_and(|(jwk, _)| jwk.kid == kid);
        if !matches {
            return Err(unusable(
                reference,
                "the unwrapped private key is not the record's key pair",
            ));
        }
        let pair = Arc::new(pair);
        if let Ok(mut m) = self.inner.private.write() {
            m.insert(kid.to_string(), pair.clone());
        }
        Ok(pair)
    }
}

impl<R: DataKeyRecords, V: DataKeyVault> ChallengeSigner for DataKeySigner<R, V> {
    async fn describe(&self, key: &str) -> Result<KeyDescription, SignerError> {
        Ok(self.public(key).await?.description.clone())
    }

    async fn sign(&self, key: &str, message: &[u8]) -> Result<JoseSignature, SignerError> {
        let public = self.public(key).await?;
        let pair = self.private(key, &public).await?;
        let signature = pair
            .sign(&SystemRandom::new(), message)
            .map_err(|_| SignerError::Unavailable("local signing failed".into()))?;
        Ok(JoseSignature {
            alg: public.description.alg,
            kid: public.description.kid.clone(),
            signature: signature.as_ref().to_vec(),
        })
    }
}

/// The challenge keys of a function: data keys (`datakey:<kid>`) through `data_keys`, every
/// other reference (KMS key ids, ARNs, aliases) through `kms`. A connector may name one kind
/// as its signing key and the other as its next key: moving between the modes is a rotation.
#[derive(Clone)]
pub struct ChallengeKeys<K, D> {
    pub kms: K,
    pub data_keys: D,
}

impl<K: ChallengeSigner, D: ChallengeSigner> ChallengeSigner for ChallengeKeys<K, D> {
    async fn describe(&self, key: &str) -> Result<KeyDescription, SignerError> {
        if key.starts_with(DATA_KEY_PREFIX) {
            self.data_keys.describe(key).await
        } else {
            self.kms.describe(key).await
        }
    }

    async fn sign(&self, key: &str, message: &[u8]) -> Result<JoseSignature, SignerError> {
        if key.starts_with(DATA_KEY_PREFIX) {
            self.data_keys.sign(key, message).await
        } else {
            self.kms.sign(key, message).await
        }
    }
}
