//! JWK and JWKS of challenge keys, with RFC 7638 thumbprints as `kid`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::b64url;
use super::der::{parse_spki, Curve, PublicKeyInfo};
use crate::protocol::keys::SigningAlg;

/// A public JWK as the JWKS route and `agent_config`'s `jwks_challenge` publish it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub e: Option<String>,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// Why a public key cannot serve as a challenge key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the public key is not a P-256, P-384, P-521 or RSA SubjectPublicKeyInfo")]
    Unsupported,
    #[error("RSA keys must have at least 2048 bits")]
    RsaTooShort,
}

impl Jwk {
    /// The JWK, algorithm and thumbprint `kid` of an SPKI DER public key.
    pub fn from_spki_der(der: &[u8]) -> Result<(Jwk, SigningAlg), KeyError> {
        match parse_spki(der).ok_or(KeyError::Unsupported)? {
            PublicKeyInfo::Ec { curve, x, y } => {
                let alg = match curve {
                    Curve::P256 => SigningAlg::ES256,
                    Curve::P384 => SigningAlg::ES384,
                    Curve::P521 => SigningAlg::ES512,
                };
                let (crv, x, y) = (curve.jwk_name(), b64url(&x), b64url(&y));
                let kid = thumbprint(&format!(
                    r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#
                ));
                Ok((
                    Jwk {
                        kty: "EC".into(),
                        crv: Some(crv.into()),
                        x: Some(x),
                        y: Some(y),
                        n: None,
                        e: None,
                        kid,
                        alg: alg.as_str().into(),
                        use_: "sig".into(),
                    },
                    alg,
                ))
            }
            PublicKeyInfo::Rsa { n, e } => {
                if n.len() < 256 {
                    return Err(KeyError::RsaTooShort);
                }
                let (n, e) = (b64url(&n), b64url(&e));
                let kid = thumbprint(&format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#));
                Ok((
                    Jwk {
                        kty: "RSA".into(),
                        crv: None,
                        x: None,
                        y: None,
                        n: Some(n),
                        e: Some(e),
                        kid,
                        alg: SigningAlg::RS256.as_str().into(),
                        use_: "sig".into(),
                    },
                    SigningAlg::RS256,
                ))
            }
        }
    }
}

/// RFC 7638: base64url SHA-256 of the canonical JSON of the required members.
fn thumbprint(canonical_json: &str) -> String {
    b64url(&Sha256::digest(canonical_json.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example_thumbprint() {
        // The RSA key of RFC 7638 section 3.1 and its published thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let canonical = format!(r#"{{"e":"AQAB","kty":"RSA","n":"{n}"}}"#);
        assert_eq!(
            thumbprint(&canonical),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn garbage_is_unsupported() {
        assert_eq!(Jwk::from_spki_der(b"not der"), Err(KeyError::Unsupported));
    }
}
