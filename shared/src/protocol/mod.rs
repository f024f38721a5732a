//! The wire protocol: challenge and response JWS, JWK/JWKS, the device token hash, and the
//! small encodings they share. No I/O.

pub mod challenge;
pub mod der;
pub mod jwk;
pub mod response;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ports::Random;

/// The audience every device response names.
pub const RESPONSE_AUDIENCE: &str = "goauthentik.io/platform/endpoint";
/// The challenge claim that asks the agent to check in first.
pub const CHECK_IN_CLAIM: &str = "goauthentik.io/device/check_in";
/// The header of the interactive-auth path.
pub const DTH_HEADER: &str = "X-Authentik-Platform-Auth-DTH";
/// Length of a challenge's `atc` nonce.
pub const ATC_LEN: usize = 40;

pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

pub fn b64url_decode(data: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(data).ok()
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The device token hash of the interactive-auth path: lowercase hex SHA-256 of the key.
pub fn device_token_hash(device_token_key: &str) -> String {
    sha256_hex(device_token_key.as_bytes())
}

/// Constant-time equality of two byte strings (the length may leak, the contents do not).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `len` characters of `[A-Za-z0-9]`, uniformly distributed (rejection sampling).
pub fn random_alnum(rng: &impl Random, len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        rng.fill(&mut buf);
        for &b in buf.iter() {
            // 248 = 4 * 62: bytes at or above it would bias the distribution.
            if b < 248 && out.len() < len {
                out.push(ALNUM[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// An identifier with at least `bytes * 8` random bits, in `[A-Za-z0-9]` only: URL-safe, and
/// never starting with `-` (an id is often a command-line argument).
pub fn random_id(rng: &impl Random, bytes: usize) -> String {
    // log2(62) = 5.954 bits per character.
    let chars = (bytes * 8 * 1000).div_ceil(5954);
    random_alnum(rng, chars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::SeqRandom;

    #[test]
    fn dth_is_lowercase_hex_sha256() {
        // sha256("abc"), the FIPS 180-2 test vector.
        assert_eq!(
            device_token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn random_alnum_has_the_right_alphabet_and_length() {
        let rng = crate::ports::SystemRandom;
        let a = random_alnum(&rng, ATC_LEN);
        let b = random_alnum(&rng, ATC_LEN);
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn random_alnum_rejects_biased_bytes() {
        // A source that only yields 0xFF must never be mapped to a character: with a counter
        // that walks all bytes, every output char comes from a byte below 248.
        let rng = SeqRandom::new(0);
        let s = random_alnum(&rng, 500);
        assert_eq!(s.len(), 500);
        assert!(s.bytes().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn random_id_is_url_safe_and_long_enough() {
        let id = random_id(&crate::ports::SystemRandom, 16);
        assert_eq!(id.len(), 22);
        assert!(id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn ct_eq_compares_contents_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }
}
