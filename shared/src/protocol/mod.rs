//! The wire protocol: challenge and response JWS, JWK/JWKS, the device token hash, and the
//! small encodings they share. No I/O.

pub mod challenge;
pub mod der;
pub mod jwk;
pub mod keys;
pub mod response;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// The audience every device response names.
pub const RESPONSE_AUDIENCE: &str = "goauthentik.io/platform/endpoint";
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

/// The device token hash of the interactive-auth path: lowercase hex SHA-256 of the key.
pub fn device_token_hash(device_token_key: &str) -> String {
    crate::secret::sha256_hex(device_token_key.as_bytes())
}

/// Constant-time equality of two byte strings (the length may leak, the contents do not).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dth_is_lowercase_hex_sha256() {
        // sha256("abc"), the FIPS 180-2 test vector.
        assert_eq!(
            device_token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ct_eq_compares_contents_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }
}
