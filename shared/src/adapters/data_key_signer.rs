//! The challenge signer of the `data-key` mode (issue 31.4), and [`ChallengeKeys`], which sends
//! each key reference to the signer that holds it (`datakey:<kid>` here, anything else to KMS).
//!
//! A data key's record is read once per instance (it never changes: its kid is its public key's
//! thumbprint, checked on read). Its private key is unwrapped once per instance, on first use
//! (one KMS `Decrypt` with the data-key encryption context; concurrent first uses wait for that
//! one call), parsed into ring's key type and the plaintext zeroed at once ([`Plaintext`]).
//! KMS's PKCS#8 document (RFC 5958) may or may not carry the public key inside its
//! ECPrivateKey: ring reads the first kind as it is; for the second, the private scalar is read
//! (RustCrypto's `p256`, zeroed on drop) and ring builds the pair from it and the public key it
//! derives, checking that they agree ([`key_pair`]). Signing is then
//! local: no KMS call per challenge, so the KMS ECC request quota no longer bounds logins.
//!
//! Without a vault (the JWKS and agent functions) the signer only describes keys: they publish
//! the public half and can never open the private one.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use p256::pkcs8::DecodePrivateKey;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use zeroize::Zeroizing;

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
        let pair = key_pair(plaintext.expose())
            .map_err(|_| unusable(reference, "the unwrapped private key is not a P-256 key"))?;
        drop(plaintext);
        let spki = p256_spki(pair.public_key().as_ref());
        let matches = Jwk::from_spki_der(&spki).is_ok_and(|(jwk, _)| jwk.kid == kid);
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

/// The DER prefix of a P-256 public key's SubjectPublicKeyInfo (id-ecPublicKey, prime256v1, a
/// 66-byte BIT STRING): followed by the 65-byte uncompressed point, it is the whole document.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The SubjectPublicKeyInfo (DER) of a P-256 public key given as its uncompressed point.
pub fn p256_spki(point: &[u8]) -> Vec<u8> {
    [&P256_SPKI_PREFIX[..], point].concat()
}

/// A P-256 signing key pair from a PKCS#8 private key document (RFC 5958), with or without the
/// public key inside its ECPrivateKey: ring requires it, so without it the private scalar is
/// read and ring checks it against the public key derived from it.
pub fn key_pair(pkcs8: &[u8]) -> Result<EcdsaKeyPair, &'static str> {
    let rng = SystemRandom::new();
    if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng) {
        return Ok(pair);
    }
    let secret =
        p256::SecretKey::from_pkcs8_der(pkcs8).map_err(|_| "not a P-256 PKCS#8 private key")?;
    let scalar = Zeroizing::new(secret.to_bytes());
    let point =
        p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
    EcdsaKeyPair::from_private_key_and_public_key(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &scalar[..],
        point.as_bytes(),
        &rng,
    )
    .map_err(|_| "the private key and its public key do not agree")
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

#[cfg(test)]
mod tests {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use p256::pkcs8::EncodePublicKey;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    use super::*;

    /// A signature by `pair` verifies under `point` (uncompressed), and only there.
    fn signs_for(pair: &EcdsaKeyPair, point: &[u8]) -> bool {
        let signature = pair
            .sign(&SystemRandom::new(), b"challenge")
            .expect("signing");
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .verify(b"challenge", signature.as_ref())
            .is_ok()
    }

    /// RFC 5958 PrivateKeyInfo { version 0, id-ecPublicKey + prime256v1, ECPrivateKey { 1,
    /// scalar } }: no public key inside, which RFC 5915 allows and ring refuses on its own.
    fn pkcs8_without_public_key(scalar: &[u8; 32]) -> Vec<u8> {
        let prefix = [
            0x30, 0x41, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d,
            0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x27,
            0x30, 0x25, 0x02, 0x01, 0x01, 0x04, 0x20,
        ];
        [&prefix[..], scalar].concat()
    }

    #[test]
    fn a_pkcs8_key_with_its_public_key_is_read() {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generation");
        let pair = key_pair(doc.as_ref()).expect("a P-256 key");
        let secret = p256::SecretKey::from_pkcs8_der(doc.as_ref()).expect("PKCS#8");
        let point = secret.public_key().to_encoded_point(false);
        assert_eq!(pair.public_key().as_ref(), point.as_bytes());
        assert!(signs_for(&pair, point.as_bytes()));
    }

    #[test]
    fn a_pkcs8_key_without_its_public_key_is_read_too() {
        let scalar = [0x5a; 32];
        let doc = pkcs8_without_public_key(&scalar);
        let rng = SystemRandom::new();
        assert!(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &doc, &rng).is_err(),
            "ring alone refuses it: the fallback is what reads it"
        );
        let pair = key_pair(&doc).expect("a P-256 key");
        let expected = p256::SecretKey::from_slice(&scalar)
            .expect("a scalar")
            .public_key();
        let point = expected.to_encoded_point(false);
        assert_eq!(pair.public_key().as_ref(), point.as_bytes());
        assert!(signs_for(&pair, point.as_bytes()));
        let other = p256::SecretKey::from_slice(&[0x5b; 32])
            .expect("a scalar")
            .public_key()
            .to_encoded_point(false);
        assert!(!signs_for(&pair, other.as_bytes()));
    }

    #[test]
    fn what_is_not_a_p256_private_key_is_refused() {
        assert!(key_pair(b"").is_err());
        assert!(key_pair(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
        // The zero scalar is no key.
        assert!(key_pair(&pkcs8_without_public_key(&[0; 32])).is_err());
        // A P-384 key is not a challenge data key.
        let rng = SystemRandom::new();
        let p384 =
            EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
                .expect("generation");
        assert!(key_pair(p384.as_ref()).is_err());
    }

    #[test]
    fn the_spki_of_a_point_is_the_standard_encoding() {
        let public = p256::SecretKey::from_slice(&[0x21; 32])
            .expect("a scalar")
            .public_key();
        let der = public.to_public_key_der().expect("SPKI");
        assert_eq!(
            p256_spki(public.to_encoded_point(false).as_bytes()),
            der.as_bytes()
        );
    }
}
