//! Device token keys sealed at rest: AES-256-GCM (aws-lc-rs) under a data key that a key
//! vault (KMS `GenerateDataKey` on a dedicated symmetric key) generated and only it can unwrap.
//!
//! The table holds the wrapped data key (one `KEYRING` item) and, per token, `nonce || ciphertext
//! || tag` with the token item's own key (`pk`, `sk`) as associated data, so a sealed key moved
//! to another device or token does not open. Functions unwrap the data key once per cold start
//! and keep it in memory: validating a response costs no KMS call.

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use futures::future::BoxFuture;

use crate::error::StoreError;

/// The first byte of every sealed value: the format (AES-256-GCM, 96-bit random nonce).
const FORMAT_V1: u8 = 1;

/// A new data key: its plaintext (never stored) and its wrapped form (stored).
pub struct NewDataKey {
    pub plaintext: Vec<u8>,
    pub wrapped: Vec<u8>,
}

/// Where the data key comes from: generated (plaintext and wrapped) and unwrapped by a key
/// management service. The plaintext never leaves memory.
pub trait KeyVault: Send + Sync {
    /// A new 256-bit data key.
    fn generate_data_key(&self) -> BoxFuture<'_, Result<NewDataKey, StoreError>>;
    /// The plaintext of a wrapped data key.
    fn unwrap_data_key<'a>(
        &'a self,
        wrapped: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, StoreError>>;
}

/// An unwrapped data key.
pub struct DataKey(RandomizedNonceKey);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        RandomizedNonceKey::new(&AES_256_GCM, bytes)
            .map(DataKey)
            .map_err(|_| StoreError::Corrupt("the data key is not a 256-bit key".into()))
    }

    /// `FORMAT_V1 || nonce || ciphertext || tag` of `plaintext`, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut data = plaintext.to_vec();
        let nonce = self
            .0
            .seal_in_place_append_tag(Aad::from(aad), &mut data)
            .map_err(|_| StoreError::Unavailable("sealing failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + data.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// The plaintext of a sealed value, if it was sealed with this key and `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        let corrupt = || StoreError::Corrupt("a sealed device key does not open".into());
        let (format, rest) = sealed.split_first().ok_or_else(corrupt)?;
        if *format != FORMAT_V1 || rest.len() < NONCE_LEN {
            return Err(corrupt());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt())?;
        let mut data = ciphertext.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(aad), &mut data)
            .map_err(|_| corrupt())?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_aad() {
        let key = DataKey::from_bytes(&[7u8; 32]).expect("32 bytes is a 256-bit key");
        let other = DataKey::from_bytes(&[8u8; 32]).expect("32 bytes is a 256-bit key");
        let sealed = key.seal(b"DEVICE#a\nTOKEN#c#1", b"secret").expect("seal");
        assert_eq!(sealed[0], FORMAT_V1);
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            key.open(b"DEVICE#a\nTOKEN#c#1", &sealed).ok(),
            Some(b"secret".to_vec())
        );
        assert!(key.open(b"DEVICE#b\nTOKEN#c#1", &sealed).is_err());
        assert!(other.open(b"DEVICE#a\nTOKEN#c#1", &sealed).is_err());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(key.open(b"DEVICE#a\nTOKEN#c#1", &tampered).is_err());
        assert!(key.open(b"x", &[]).is_err());
        // Two seals of one value differ (random nonces).
        assert_ne!(key.seal(b"a", b"v").ok(), key.seal(b"a", b"v").ok());
        assert!(DataKey::from_bytes(&[1u8; 16]).is_err());
    }
}
