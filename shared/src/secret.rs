//! A wrapper for secrets (device token keys, enrollment token keys) that never prints itself.

use std::fmt;

use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256: the one hashing helper. Secrets are stored and looked up only as this.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A secret string. `Debug` and `Display` print a placeholder, so a secret that ends up in a
/// `tracing` field or an error message by mistake does not leak. Read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself: call this only where the value must leave the process (a signature
    /// key, a CLI's one-time output) or be hashed.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Lowercase hex SHA-256 of the secret: the form under which it may be stored and logged.
    pub fn sha256_hex(&self) -> String {
        sha256_hex(self.0.as_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_lowercase_hex() {
        // sha256("abc"), the FIPS 180-2 test vector.
        assert_eq!(
            Secret::new("abc").sha256_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn secret_never_formats_its_value() {
        let s = Secret::new("hunter2-very-secret");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2-very-secret");
    }
}
