//! Challenge keys of the `data-key` signing mode (`ChallengeSigning=data-key`, issue 31.4): a
//! P-256 key pair that KMS made (`GenerateDataKeyPairWithoutPlaintext`), whose private half is
//! stored wrapped under a symmetric KMS key and unwrapped by the challenge function alone (the
//! encryption context below, which only its IAM statement may use), once per instance.
//!
//! A connector names such a key `datakey:<kid>` wherever it names a KMS key (signing key, next
//! key, retired keys), so the rollout steps (`connector add-next-key`, `rotate`) are the same.
//! The record (`DATAKEY#<kid>`) holds the public key, which every function that publishes keys
//! reads, and the wrapped private key, which only the challenge function can open.

use zeroize::Zeroize;

use super::UnixTime;

/// How the challenge function signs (`CHALLENGE_SIGNING`, the template's `ChallengeSigning`):
/// `kms` (every challenge one KMS `Sign`) or `data-key` (connectors may also name data keys,
/// which the challenge function unwraps once per instance and signs with locally).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChallengeSigning {
    #[default]
    Kms,
    DataKey,
}

impl ChallengeSigning {
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "" | "kms" => Some(ChallengeSigning::Kms),
            "data-key" => Some(ChallengeSigning::DataKey),
            _ => None,
        }
    }
}

/// The prefix of a data key's reference: `datakey:<kid>`.
pub const DATA_KEY_PREFIX: &str = "datakey:";
/// The encryption context every wrap and unwrap of a challenge data key carries (with the
/// table's name as `table`): the wrapping key's policy refuses any other, and only the challenge
/// function's IAM statement allows `kms:Decrypt` with it.
pub const DATA_KEY_PURPOSE: (&str, &str) = ("purpose", "endpoint-stage challenge signing key");
/// The context entry naming the table the key belongs to.
pub const DATA_KEY_TABLE: &str = "table";
/// Longest kid accepted in a reference (an RFC 7638 SHA-256 thumbprint is 43 characters).
pub const MAX_KID_LEN: usize = 64;

/// The kid of a data key reference (`datakey:<kid>`), if `reference` is one.
pub fn data_key_kid(reference: &str) -> Option<&str> {
    reference
        .strip_prefix(DATA_KEY_PREFIX)
        .filter(|kid| is_kid(kid))
}

/// Whether `kid` can be a key's thumbprint (base64url, bounded).
pub fn is_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The reference a connector names a data key by.
pub fn data_key_reference(kid: &str) -> String {
    format!("{DATA_KEY_PREFIX}{kid}")
}

/// A challenge data key as stored: public, plus the private half wrapped by KMS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataKeyRecord {
    /// RFC 7638 thumbprint of the public key (the JWS `kid`).
    pub kid: String,
    /// The public key, DER SubjectPublicKeyInfo.
    pub public_key: Vec<u8>,
    /// The private key (DER PKCS#8) encrypted by KMS under `wrapping_key` with the context
    /// [`DATA_KEY_PURPOSE`] and the table's name.
    pub wrapped_private_key: Vec<u8>,
    /// The symmetric KMS key that wrapped it (ARN).
    pub wrapping_key: String,
    pub created_at: UnixTime,
}

/// Plaintext key material that is overwritten with zeros when dropped: the unwrapped private
/// key between KMS's answer and its parsing. `B` is where the bytes live (`Vec<u8>` in
/// production; a test lends a buffer of its own to see it zeroed).
pub struct Plaintext<B: AsMut<[u8]> = Vec<u8>>(B);

impl<B: AsMut<[u8]>> Plaintext<B> {
    pub fn new(bytes: B) -> Self {
        Plaintext(bytes)
    }

    /// The bytes, for parsing them (never for copying them elsewhere).
    pub fn expose(&mut self) -> &[u8] {
        self.0.as_mut()
    }
}

impl<B: AsMut<[u8]>> Drop for Plaintext<B> {
    fn drop(&mut self) {
        self.0.as_mut().zeroize();
    }
}

impl<B: AsMut<[u8]>> std::fmt::Debug for Plaintext<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Plaintext(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_is_zeroed_when_dropped() {
        let mut buffer = [0x5au8; 138];
        {
            let mut secret = Plaintext::new(&mut buffer[..]);
            assert!(secret.expose().iter().all(|b| *b == 0x5a));
            assert_eq!(format!("{secret:?}"), "Plaintext(..)");
        }
        assert!(
            buffer.iter().all(|b| *b == 0),
            "dropped key material is zeroed"
        );
        // A Vec-backed one (production's) drops without panicking and zeroes the same way.
        let mut owned = Plaintext::new(vec![7u8; 32]);
        assert_eq!(owned.expose(), &[7u8; 32]);
    }

    #[test]
    fn references_name_a_kid() {
        let kid = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
        assert_eq!(data_key_kid(&data_key_reference(kid)), Some(kid));
        assert_eq!(data_key_kid("alias/endpoint-stage-challenge"), None);
        assert_eq!(data_key_kid("datakey:"), None);
        assert_eq!(data_key_kid("datakey:a/b"), None);
        assert_eq!(data_key_kid(&format!("datakey:{}", "a".repeat(65))), None);
    }
}
