//! The provider's public keys and discovery document.
//!
//! Entra wants every JWK to carry `x5c`: the RSA key's JWK carries a self-signed X.509
//! certificate of the same key, signed in KMS by that key (so no private key ever leaves KMS).
//! The certificate is built here, in DER, rather than with a certificate crate: rcgen's remote
//! signer is synchronous (KMS is not), and the certificate is one fixed shape of a few
//! fields. It is deterministic: its serial is derived from the public key, its validity fixed
//! (from 2026-01-01 to 9999-12-31, RFC 5280's "no well-defined expiration"), and RSASSA-PKCS1-v1_5
//! signatures are deterministic, so every function instance publishes the same bytes (and a
//! warm instance signs it once: the edge caches the JWKS).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::CoreError;
use crate::ports::ChallengeSigner;
use crate::protocol::b64url_decode;
use crate::protocol::keys::SigningAlg;

use super::id_token::IdKeys;

/// The subject and issuer common name of the RSA key's certificate.
pub const CERT_COMMON_NAME: &str = "endpoint-stage OpenID provider ID token key";

/// The discovery document (OpenID Connect Discovery 1.0), exactly the contract's fields.
pub fn discovery(issuer: &str, paths: &DiscoveryPaths) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}{}", paths.authorize),
        "token_endpoint": format!("{issuer}{}", paths.token),
        "userinfo_endpoint": format!("{issuer}{}", paths.userinfo),
        "jwks_uri": format!("{issuer}{}", paths.jwks),
        "scopes_supported": ["openid", "profile", "email"],
        "response_types_supported": ["code", "id_token"],
        "response_modes_supported": ["query", "form_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
        "claims_parameter_supported": true,
    })
}

/// The endpoints' paths (the edge's routes).
#[derive(Clone, Copy, Debug)]
pub struct DiscoveryPaths {
    pub authorize: &'static str,
    pub token: &'static str,
    pub userinfo: &'static str,
    pub jwks: &'static str,
}

/// The provider's JWKS: the RSA key with `x5c` (one KMS `Sign` for its certificate) and the
/// P-256 key, each if configured.
pub async fn provider_jwks<K: ChallengeSigner>(
    signer: &K,
    keys: &IdKeys,
) -> Result<Value, CoreError> {
    let mut out = Vec::new();
    if let Some(key) = &keys.rsa {
        let d = signer.describe(key).await?;
        if d.alg != SigningAlg::RS256 {
            return Err(CoreError::Unavailable(
                "The RS256 ID token key is not an RSA key.".into(),
            ));
        }
        let (n, e) = match (&d.jwk.n, &d.jwk.e) {
            (Some(n), Some(e)) => (b64url_decode(n), b64url_decode(e)),
            _ => (None, None),
        };
        let (Some(n), Some(e)) = (n, e) else {
            return Err(CoreError::Unavailable(
                "The RS256 ID token key has no RSA public key.".into(),
            ));
        };
        let tbs = tbs_certificate(&spki_rsa(&n, &e));
        let signature = signer.sign(key, &tbs).await?;
        let cert = certificate(&tbs, &signature.signature);
        let mut jwk =
            serde_json::to_value(&d.jwk).map_err(|_| CoreError::Unavailable("jwk".into()))?;
        jwk["x5c"] = json!([STANDARD.encode(&cert)]);
        jwk["x5t#S256"] = json!(crate::protocol::b64url(&Sha256::digest(&cert)));
        out.push(jwk);
    }
    if let Some(key) = &keys.ec {
        let d = signer.describe(key).await?;
        if d.alg != SigningAlg::ES256 {
            return Err(CoreError::Unavailable(
                "The ES256 ID token key is not a P-256 key.".into(),
            ));
        }
        out.push(serde_json::to_value(&d.jwk).map_err(|_| CoreError::Unavailable("jwk".into()))?);
    }
    if out.is_empty() {
        return Err(CoreError::NotFound("ID token key".into()));
    }
    Ok(json!({ "keys": out }))
}

/// A DER TLV.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// A positive INTEGER of big-endian unsigned bytes.
fn uint(bytes: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    let mut v = if trimmed.is_empty() { vec![0] } else { trimmed };
    if v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    tlv(0x02, &v)
}

const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const SHA256_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

fn algorithm(oid: &[u8]) -> Vec<u8> {
    seq(&[&tlv(0x06, oid), &[0x05, 0x00]])
}

/// The SubjectPublicKeyInfo of an RSA key.
pub fn spki_rsa(n: &[u8], e: &[u8]) -> Vec<u8> {
    let key = seq(&[&uint(n), &uint(e)]);
    let mut bits = vec![0u8];
    bits.extend(key);
    seq(&[&algorithm(RSA_ENCRYPTION), &tlv(0x03, &bits)])
}

/// The to-be-signed part of the key's self-signed certificate.
pub fn tbs_certificate(spki: &[u8]) -> Vec<u8> {
    let digest = Sha256::digest(spki);
    let mut serial = digest[..16].to_vec();
    serial[0] = (serial[0] & 0x7f) | 0x01;
    let name = seq(&[&tlv(
        0x31,
        &seq(&[
            &tlv(0x06, COMMON_NAME),
            &tlv(0x0c, CERT_COMMON_NAME.as_bytes()),
        ]),
    )]);
    let validity = seq(&[&tlv(0x17, b"260101000000Z"), &tlv(0x18, b"99991231235959Z")]);
    let version = tlv(0xa0, &tlv(0x02, &[2]));
    seq(&[
        &version,
        &tlv(0x02, &serial),
        &algorithm(SHA256_WITH_RSA),
        &name,
        &validity,
        &name,
        spki,
    ])
}

/// The certificate: `tbs`, its algorithm and its signature.
pub fn certificate(tbs: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(signature);
    seq(&[tbs, &algorithm(SHA256_WITH_RSA), &tlv(0x03, &bits)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_and_integers() {
        assert_eq!(tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = tlv(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(uint(&[0x00, 0x80]), vec![0x02, 2, 0x00, 0x80]);
        assert_eq!(uint(&[0x01, 0x00, 0x01]), vec![0x02, 3, 1, 0, 1]);
    }
}
