//! Device token keys sealed at rest: AES-256-GCM (ring, a random 96-bit nonce per value) under a data key that a key
//! vault (KMS `GenerateDataKey` on a dedicated symmetric key) generated and only it can unwrap.
//!
//! The table holds the wrapped data key (one `KEYRING` item) and, per token, `nonce || ciphertext
//! || tag` with the token item's own key (`pk`, `sk`) as associated data, so a sealed key moved
//! to another device or token does not open. Functions unwrap the data key once per cold start
//! and keep it in memory: validating a response costs no KMS call.

use futures::future::BoxFuture;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::StoreError;

/// The first byte of every sealed value: the format (AES-256-GCM, 96-bit random nonce). V1
/// values were sealed by the table's first data key (generation 0); V2 values name the data
/// key's generation after the format byte (4 bytes, big-endian, bound as associated data), so
/// a rotation can tell what it has re-sealed and a retired key's values are refused.
const FORMAT_V1: u8 = 1;
const FORMAT_V2: u8 = 2;
const V2_HEADER: usize = 5;

/// The generation of the data key a sealed value was sealed with, if it is a sealed value.
pub fn generation_of(sealed: &[u8]) -> Option<u32> {
    match sealed.first() {
        Some(&FORMAT_V1) => Some(0),
        Some(&FORMAT_V2) => sealed
            .get(1..V2_HEADER)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes),
        _ => None,
    }
}

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

/// An unwrapped data key. Every value is sealed under a fresh random nonce from the OS's CSPRNG
/// (ring's `LessSafeKey` leaves the nonce to the caller: [`DataKey::seal`] is its only caller).
pub struct DataKey(LessSafeKey);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        UnboundKey::new(&AES_256_GCM, bytes)
            .map(|key| DataKey(LessSafeKey::new(key)))
            .map_err(|_| StoreError::Corrupt("the data key is not a 256-bit key".into()))
    }

    /// `FORMAT_V2 || generation || nonce || ciphertext || tag` of `plaintext`, bound to `aad`
    /// and to the header.
    pub fn seal(
        &self,
        generation: u32,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let mut header = vec![FORMAT_V2];
        header.extend_from_slice(&generation.to_be_bytes());
        let mut data = plaintext.to_vec();
        let nonce = self.seal_in_place(&bound(aad, &header), &mut data)?;
        let mut out = Vec::with_capacity(V2_HEADER + NONCE_LEN + data.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// Seals `data` in place under a fresh random nonce (appending the tag); the nonce.
    fn seal_in_place(&self, aad: &[u8], data: &mut Vec<u8>) -> Result<[u8; NONCE_LEN], StoreError> {
        let failed = || StoreError::Unavailable("sealing failed".into());
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| failed())?;
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), data)
            .map_err(|_| failed())?;
        Ok(nonce)
    }

    /// The plaintext of a sealed value, if it was sealed with this key and `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        let corrupt = || StoreError::Corrupt("a sealed device key does not open".into());
        let (aad, rest) = match sealed.first() {
            Some(&FORMAT_V1) => (aad.to_vec(), &sealed[1..]),
            Some(&FORMAT_V2) if sealed.len() >= V2_HEADER => {
                (bound(aad, &sealed[..V2_HEADER]), &sealed[V2_HEADER..])
            }
            _ => return Err(corrupt()),
        };
        if rest.len() < NONCE_LEN {
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

/// The associated data of a V2 value: the item's own key and the header.
fn bound(aad: &[u8], header: &[u8]) -> Vec<u8> {
    [aad, b"\n", header].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_aad() {
        let key = DataKey::from_bytes(&[7u8; 32]).expect("32 bytes is a 256-bit key");
        let other = DataKey::from_bytes(&[8u8; 32]).expect("32 bytes is a 256-bit key");
        let sealed = key
            .seal(3, b"DEVICE#a\nTOKEN#c#1", b"secret")
            .expect("seal");
        assert_eq!(sealed[0], FORMAT_V2);
        assert_eq!(generation_of(&sealed), Some(3));
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
        // The generation is bound: a value relabelled with another one does not open.
        let mut relabelled = sealed.clone();
        relabelled[4] = 4;
        assert_eq!(generation_of(&relabelled), Some(4));
        assert!(key.open(b"DEVICE#a\nTOKEN#c#1", &relabelled).is_err());
        // Two seals of one value differ (random nonces).
        assert_ne!(key.seal(0, b"a", b"v").ok(), key.seal(0, b"a", b"v").ok());
        assert!(DataKey::from_bytes(&[1u8; 16]).is_err());
    }

    #[test]
    fn values_of_the_first_format_still_open_as_generation_zero() {
        // A V1 value as the first release wrote it: format byte, nonce, ciphertext and tag,
        // with the item's key alone as associated data.
        let key = DataKey::from_bytes(&[7u8; 32]).expect("32 bytes is a 256-bit key");
        let mut data = b"secret".to_vec();
        let nonce = key.seal_in_place(b"pk\nsk", &mut data).expect("seal");
        let v1 = [&[FORMAT_V1][..], &nonce, &data].concat();
        assert_eq!(generation_of(&v1), Some(0));
        assert_eq!(key.open(b"pk\nsk", &v1).ok(), Some(b"secret".to_vec()));
        assert_eq!(generation_of(b"x"), None);
    }

    /// Values sealed by the aws-lc-rs implementation (before ring), under a fixed key: the
    /// stored format is unchanged, so every value in a table still opens.
    #[test]
    fn values_sealed_before_the_move_to_ring_still_open() {
        let key = DataKey::from_bytes(&(0u8..32).collect::<Vec<u8>>()).expect("256-bit key");
        let v2 = hex::decode(
            "0200000007e797f558635657e3de6ba1e74011a6aad217275b385a5d2792e30c14b0e5594e9b9865211aae86ea01d2d61b75db47",
        )
        .expect("hex");
        assert_eq!(generation_of(&v2), Some(7));
        assert_eq!(
            key.open(b"DEVICE#d1\nTOKEN#c1#1", &v2).ok(),
            Some(b"device token key \x00\xff".to_vec())
        );
        assert!(key.open(b"DEVICE#d2\nTOKEN#c1#1", &v2).is_err());
        let v1 = hex::decode(
            "018f52f00f45ff96a6bc58e5a886731344df373f4b68ee2fe3d2e559657a3424fa8cf277bf5233f79743",
        )
        .expect("hex");
        assert_eq!(generation_of(&v1), Some(0));
        assert_eq!(
            key.open(b"DEVICE#d0\nTOKEN#c0#1", &v1).ok(),
            Some(b"first release".to_vec())
        );
        // And what ring seals has the same layout: header, 12-byte nonce, ciphertext, 16-byte tag.
        let sealed = key.seal(7, b"a", b"abc").expect("seal");
        assert_eq!(sealed.len(), V2_HEADER + NONCE_LEN + 3 + 16);
    }
}
