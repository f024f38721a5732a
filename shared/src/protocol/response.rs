//! Validation of the device's response (agent -> browser -> server).
//!
//! Differences from the reference (the authentik endpoint stage), all deliberate:
//! only HS512; `iss` and `aud` checked; `exp`, `nbf`, `iat` checked with a leeway against the
//! injected clock; `atc` compared in constant time with the whole pending challenge, whose own
//! `exp` is enforced; expired devices and tokens never match; every token of (device, connector)
//! is tried; a missing or mistyped claim is an invalid response, never a panic; the input length
//! is bounded; an unknown device costs the same HMAC work as a known one.

use jsonwebtoken::{crypto, Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::Value;

use super::{b64url_decode, ct_eq, RESPONSE_AUDIENCE};
use crate::model::{is_expired, DeviceRef, DeviceWithTokens, UnixTime};

/// Longest response accepted. A response embeds the whole challenge; an RSA-4096 challenge is
/// about 1 KiB, so 16 KiB leaves ample room and bounds the work.
pub const MAX_RESPONSE_LEN: usize = 16 * 1024;
/// Default clock-skew leeway on `exp`, `nbf`, `iat`.
pub const DEFAULT_LEEWAY: i64 = 30;

/// Why a response is invalid. Safe to log: it carries no part of the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("response too long")]
    TooLong,
    #[error("response is not a compact JWS")]
    Malformed,
    #[error("response header is not HS512")]
    WrongAlgorithm,
    #[error("a claim is missing or has the wrong type")]
    BadClaims,
    #[error("device unknown, expired or without token for this connector")]
    UnknownDevice,
    #[error("signature does not verify with any token of the device")]
    BadSignature,
    #[error("issuer does not match the device")]
    WrongIssuer,
    #[error("audience is not the endpoint audience")]
    WrongAudience,
    #[error("response expired")]
    Expired,
    #[error("response not valid yet")]
    NotYetValid,
    #[error("no challenge is pending")]
    NoPendingChallenge,
    #[error("challenge expired")]
    ChallengeExpired,
    #[error("atc does not match the pending challenge")]
    ChallengeMismatch,
}

impl Invalid {
    /// A stable snake-case class for logs and the audit trail.
    pub fn class(&self) -> &'static str {
        match self {
            Invalid::TooLong => "too_long",
            Invalid::Malformed => "malformed",
            Invalid::WrongAlgorithm => "wrong_algorithm",
            Invalid::BadClaims => "bad_claims",
            Invalid::UnknownDevice => "unknown_device",
            Invalid::BadSignature => "bad_signature",
            Invalid::WrongIssuer => "wrong_issuer",
            Invalid::WrongAudience => "wrong_audience",
            Invalid::Expired => "expired",
            Invalid::NotYetValid => "not_yet_valid",
            Invalid::NoPendingChallenge => "no_pending_challenge",
            Invalid::ChallengeExpired => "challenge_expired",
            Invalid::ChallengeMismatch => "challenge_mismatch",
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: Value,
}

/// The claims as sent: each field kept raw so a wrong type is an `Invalid`, not a panic.
/// A duplicated claim makes deserialization fail (serde rejects duplicate fields).
#[derive(Deserialize)]
struct RawClaims {
    iss: Option<Value>,
    aud: Option<Value>,
    atc: Option<Value>,
    exp: Option<Value>,
    iat: Option<Value>,
    nbf: Option<Value>,
}

/// A response whose shape is valid; not yet verified.
#[derive(Debug, Clone)]
pub struct ParsedResponse {
    signing_input_len: usize,
    signature: String,
    issuer: String,
    audience_ok: bool,
    atc: String,
    exp: i64,
    iat: Option<i64>,
    nbf: Option<i64>,
}

/// What the response must match.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The plan's pending challenge (whole compact JWS) and its `exp`, if any.
    pub challenge: Option<(&'a str, UnixTime)>,
    pub connector: &'a str,
    pub now: UnixTime,
    pub leeway: i64,
}

fn number(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 1e15)
                .map(|f| f as i64)
        }),
        _ => None,
    }
}

fn string(v: Option<Value>) -> Result<String, Invalid> {
    match v {
        Some(Value::String(s)) => Ok(s),
        _ => Err(Invalid::BadClaims),
    }
}

impl ParsedResponse {
    /// Checks the shape: length, three base64url segments, an HS512 header, typed claims.
    pub fn parse(response: &str) -> Result<Self, Invalid> {
        if response.len() > MAX_RESPONSE_LEN {
            return Err(Invalid::TooLong);
        }
        let mut parts = response.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Invalid::Malformed);
        };
        let header: Header = b64url_decode(h)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(Invalid::Malformed)?;
        if header.alg != Value::String("HS512".into()) {
            return Err(Invalid::WrongAlgorithm);
        }
        // HS512 signatures are 64 bytes: 86 base64url characters.
        if s.len() != 86 || b64url_decode(s).is_none() {
            return Err(Invalid::Malformed);
        }
        let claims: RawClaims = b64url_decode(c)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(Invalid::BadClaims)?;
        let issuer = string(claims.iss)?;
        let atc = string(claims.atc)?;
        let audience_ok = match claims.aud {
            Some(Value::String(a)) => a == RESPONSE_AUDIENCE,
            Some(Value::Array(list)) => {
                if !list.iter().all(Value::is_string) {
                    return Err(Invalid::BadClaims);
                }
                list.iter().any(|a| a.as_str() == Some(RESPONSE_AUDIENCE))
            }
            _ => return Err(Invalid::BadClaims),
        };
        let exp = claims
            .exp
            .as_ref()
            .and_then(number)
            .ok_or(Invalid::BadClaims)?;
        let opt = |v: &Option<Value>| match v {
            None => Ok(None),
            Some(v) => number(v).map(Some).ok_or(Invalid::BadClaims),
        };
        let iat = opt(&claims.iat)?;
        let nbf = opt(&claims.nbf)?;
        Ok(ParsedResponse {
            signing_input_len: h.len() + 1 + c.len(),
            signature: s.to_string(),
            issuer,
            audience_ok,
            atc,
            exp,
            iat,
            nbf,
        })
    }

    /// The `iss` claim (the device identifier), read before verification to find the device.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Verifies `response` (the same string that was parsed) against the device found for its
    /// issuer, and the plan's expectation. Returns the device on success.
    pub fn verify(
        &self,
        response: &str,
        device: Option<&DeviceWithTokens>,
        expected: &Expected<'_>,
    ) -> Result<DeviceRef, Invalid> {
        let message = response
            .as_bytes()
            .get(..self.signing_input_len)
            .ok_or(Invalid::Malformed)?;
        let now = expected.now;
        let device = device.filter(|d| !is_expired(d.device.expires_at, now));
        let mut candidates = device
            .map(|d| {
                d.tokens
                    .iter()
                    .filter(|t| t.connector == expected.connector && !is_expired(t.expires_at, now))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let verified = if candidates.is_empty() {
            // Same HMAC work as a known device with one token, so that an unknown device does
            // not answer faster (a timing oracle for enrolled serials).
            let _ = hs512_verify(&self.signature, message, UNKNOWN_DEVICE_KEY);
            None
        } else {
            candidates
                .retain(|t| hs512_verify(&self.signature, message, t.key.expose().as_bytes()));
            candidates.first().copied()
        };
        let Some(device) = device else {
            return Err(Invalid::UnknownDevice);
        };
        if verified.is_none() {
            return Err(
                if device
                    .tokens
                    .iter()
                    .any(|t| t.connector == expected.connector)
                {
                    Invalid::BadSignature
                } else {
                    Invalid::UnknownDevice
                },
            );
        }
        if self.issuer != device.device.identifier {
            return Err(Invalid::WrongIssuer);
        }
        if !self.audience_ok {
            return Err(Invalid::WrongAudience);
        }
        let leeway = expected.leeway;
        if self.exp <= now - leeway {
            return Err(Invalid::Expired);
        }
        if self.nbf.is_some_and(|nbf| nbf > now + leeway)
            || self.iat.is_some_and(|iat| iat > now + leeway)
        {
            return Err(Invalid::NotYetValid);
        }
        let Some((challenge, challenge_exp)) = expected.challenge else {
            return Err(Invalid::NoPendingChallenge);
        };
        if now >= challenge_exp {
            return Err(Invalid::ChallengeExpired);
        }
        if !ct_eq(self.atc.as_bytes(), challenge.as_bytes()) {
            return Err(Invalid::ChallengeMismatch);
        }
        Ok(DeviceRef::from(&device.device))
    }
}

/// A fixed key no device has (device token keys are 128 alphanumeric characters).
const UNKNOWN_DEVICE_KEY: &[u8] =
    b"endpoint-stage: no device token has this key; it only evens out timing";

/// HS512 verification of `signature` (base64url) over `message`, in constant time.
fn hs512_verify(signature: &str, message: &[u8], key: &[u8]) -> bool {
    let key = DecodingKey::from_secret(key);
    crypto::verify(signature, message, &key, Algorithm::HS512).unwrap_or(false)
}

/// Parses and verifies in one call (for callers that already hold the device).
pub fn validate(
    response: &str,
    device: Option<&DeviceWithTokens>,
    expected: &Expected<'_>,
) -> Result<DeviceRef, Invalid> {
    ParsedResponse::parse(response)?.verify(response, device, expected)
}

/// The claims a real agent puts in its response.
#[derive(serde::Serialize)]
struct AgentClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    atc: &'a str,
    iat: i64,
    exp: i64,
}

/// Signs a response exactly as the authentik platform agent does: header
/// `{"typ":"JWT","alg":"HS512"}`, HMAC key = the UTF-8 bytes of the device token key,
/// `iss` = serial, `aud` = the endpoint audience, `atc` = the whole challenge, `exp` = iat + 300.
/// Used by the device simulator, tests and benchmarks.
pub fn sign_response(
    device_identifier: &str,
    device_token_key: &str,
    challenge: &str,
    now: i64,
) -> String {
    let claims = AgentClaims {
        iss: device_identifier,
        aud: RESPONSE_AUDIENCE,
        atc: challenge,
        iat: now,
        exp: now + 300,
    };
    let header = jsonwebtoken::Header::new(Algorithm::HS512);
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(device_token_key.as_bytes()),
    )
    .expect("HS512 over claims of strings and integers always encodes")
}
