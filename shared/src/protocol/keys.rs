//! The vocabulary of challenge keys: the JOSE algorithms the protocol signs with, and the key
//! kinds, named like KMS key specs.

/// The JOSE algorithm of a challenge key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigningAlg {
    RS256,
    ES256,
    ES384,
    ES512,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::ES384 => "ES384",
            SigningAlg::ES512 => "ES512",
        }
    }

    /// Length of the JOSE `r||s` signature for EC algorithms.
    pub fn ec_signature_len(self) -> Option<usize> {
        match self {
            SigningAlg::ES256 => Some(64),
            SigningAlg::ES384 => Some(96),
            SigningAlg::ES512 => Some(132),
            SigningAlg::RS256 => None,
        }
    }
}

/// The key kinds the protocol knows, named like KMS key specs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySpec {
    EccNistP256,
    EccNistP384,
    EccNistP521,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl KeySpec {
    pub const ALL: [KeySpec; 6] = [
        KeySpec::EccNistP256,
        KeySpec::EccNistP384,
        KeySpec::EccNistP521,
        KeySpec::Rsa2048,
        KeySpec::Rsa3072,
        KeySpec::Rsa4096,
    ];

    pub fn kms_name(self) -> &'static str {
        match self {
            KeySpec::EccNistP256 => "ECC_NIST_P256",
            KeySpec::EccNistP384 => "ECC_NIST_P384",
            KeySpec::EccNistP521 => "ECC_NIST_P521",
            KeySpec::Rsa2048 => "RSA_2048",
            KeySpec::Rsa3072 => "RSA_3072",
            KeySpec::Rsa4096 => "RSA_4096",
        }
    }
}

impl std::str::FromStr for KeySpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        KeySpec::ALL
            .into_iter()
            .find(|k| k.kms_name() == s)
            .ok_or_else(|| format!("unknown key spec {s:?}"))
    }
}
