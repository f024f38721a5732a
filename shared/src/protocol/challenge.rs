//! The signed challenge (server -> browser -> agent): header, claims, signing input.

use serde::{Deserialize, Serialize};

use super::b64url;
use crate::model::UnixTime;
use crate::protocol::keys::SigningAlg;

/// A challenge is valid for five minutes after it is minted.
pub const CHALLENGE_LIFETIME: i64 = 300;

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    kid: &'a str,
    typ: &'a str,
}

/// Exactly the claims of the authentik endpoint stage's challenge: no `aud`, `nbf` or `jti`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeClaims {
    pub atc: String,
    pub iss: String,
    pub iat: UnixTime,
    pub exp: UnixTime,
    #[serde(rename = "goauthentik.io/device/check_in")]
    pub check_in: bool,
}

impl ChallengeClaims {
    pub fn new(atc: String, stage_id: &str, now: UnixTime, check_in: bool) -> Self {
        ChallengeClaims {
            atc,
            iss: stage_id.to_string(),
            iat: now,
            exp: now + CHALLENGE_LIFETIME,
            check_in,
        }
    }
}

/// `base64url(header) "." base64url(claims)`: the bytes the key signs.
pub fn signing_input(alg: SigningAlg, kid: &str, claims: &ChallengeClaims) -> String {
    typed_signing_input(alg, kid, "JWT", claims)
}

/// The signing input of any JWS we sign (challenges, device assertions, security event
/// tokens): a header of `alg`, `kid` and `typ`, and the claims.
pub fn typed_signing_input(
    alg: SigningAlg,
    kid: &str,
    typ: &str,
    claims: &impl Serialize,
) -> String {
    let header = Header {
        alg: alg.as_str(),
        kid,
        typ,
    };
    // Structs of strings, integers and JSON values always serialize; anything else would be a
    // bug that must not reach KMS as a `{}` header.
    let h = serde_json::to_vec(&header).expect("a header of three strings serializes");
    let c = serde_json::to_vec(claims).expect("claims of strings, integers and JSON serialize");
    let mut out = b64url(&h);
    out.push('.');
    out.push_str(&b64url(&c));
    out
}

/// The compact JWS: signing input "." base64url(signature).
pub fn assemble(signing_input: &str, signature: &[u8]) -> String {
    let mut out = String::with_capacity(signing_input.len() + 1 + signature.len() * 4 / 3 + 4);
    out.push_str(signing_input);
    out.push('.');
    out.push_str(&b64url(signature));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::b64url_decode;

    #[test]
    fn claims_and_header_are_exactly_the_protocol_ones() -> Result<(), Box<dyn std::error::Error>> {
        let claims = ChallengeClaims::new("a".repeat(40), "stage-1", 1_000, true);
        let input = signing_input(SigningAlg::ES256, "kid-1", &claims);
        let (h, c) = input.split_once('.').ok_or("no dot")?;
        let h: serde_json::Value = serde_json::from_slice(&b64url_decode(h).ok_or("header b64")?)?;
        let c: serde_json::Value = serde_json::from_slice(&b64url_decode(c).ok_or("claims b64")?)?;
        assert_eq!(
            h,
            serde_json::json!({"alg": "ES256", "kid": "kid-1", "typ": "JWT"})
        );
        assert_eq!(
            c,
            serde_json::json!({"atc": "a".repeat(40), "iss": "stage-1", "iat": 1000, "exp": 1300,
                               "goauthentik.io/device/check_in": true})
        );
        Ok(())
    }
}
