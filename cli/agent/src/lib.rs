//! The device side of the protocol, as the authentik platform agent does it: enrollment through
//! the agent API, challenge verification against the connector's JWKS (`kid`, `alg`, signature,
//! `exp` with 60 s leeway), and the HS512 response.

pub mod native;

use std::path::Path;
use std::time::Duration;

use endpoint_core::edge::routes;
use endpoint_core::protocol::challenge::ChallengeClaims;
use endpoint_core::protocol::jwk::{Jwk, Jwks};
use endpoint_core::protocol::{b64url_decode, response::sign_response};
use p521::ecdsa::signature::Verifier;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The agent's leeway on a challenge's `exp`.
pub const CHALLENGE_LEEWAY: i64 = 60;

/// What `enroll` keeps (the device token key is a secret: the file is written 0600).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub server: String,
    pub serial: String,
    pub name: String,
    pub token: String,
    pub jwks_challenge: Option<Jwks>,
}

/// A new file at `path` (failing if anything, a symlink included, is there), owner-only.
fn private_new_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

impl State {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read the state file {}: {e} (run `endpoint-agent enroll` first)",
                path.display()
            )
        })?;
        serde_json::from_str(&text)
            .map_err(|e| format!("the state file {} is not valid: {e}", path.display()))
    }

    /// Writes the state (it holds the device token key) readable by its owner only: a new
    /// file created with `O_CREAT|O_EXCL` and mode 0600 from the start (never a moment with
    /// wider permissions, never through a symlink planted at its name), then renamed over
    /// `path` (which replaces a symlink there rather than writing through it).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        use std::io::Write;
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let failed = |e: std::io::Error| format!("cannot write {}: {e}", tmp.display());
        let mut file = match private_new_file(&tmp) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Left by a crash, or planted: remove the entry itself (never its target).
                std::fs::remove_file(&tmp).map_err(failed)?;
                private_new_file(&tmp).map_err(failed)?
            }
            other => other.map_err(failed)?,
        };
        file.write_all(text.as_bytes()).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// A minimal JSON-over-HTTP client (any status is returned, not turned into an error).
pub struct Http {
    agent: ureq::Agent,
    base: String,
}

impl Http {
    pub fn new(server: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Http {
            agent,
            base: server.trim_end_matches('/').to_string(),
        }
    }

    fn finish(
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, Value), String> {
        let mut resp = resp.map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("cannot read the answer: {e}"))?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .map_err(|_| format!("the server answered {status} with a body that is not JSON"))?
        };
        Ok((status, body))
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<(u16, Value), String> {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::finish(req.call())
    }

    pub fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Result<(u16, Value), String> {
        let mut req = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::finish(req.send(body.to_string()))
    }
}

fn expect_ok(what: &str, (status, body): (u16, Value)) -> Result<Value, String> {
    if (200..300).contains(&status) {
        Ok(body)
    } else {
        let msg = body.get("message").and_then(Value::as_str).unwrap_or("");
        Err(format!("{what} failed with {status} {msg}")
            .trim_end()
            .to_string())
    }
}

/// `enroll/` with the enrollment token, then `agent_config/` with the new device token.
pub fn enroll(
    server: &str,
    enrollment_token: &str,
    serial: &str,
    name: &str,
) -> Result<State, String> {
    let http = Http::new(server);
    let auth = format!("Bearer {enrollment_token}");
    let body = json!({"device_serial": serial, "device_name": name});
    let answer = expect_ok(
        "enroll",
        http.post(routes::ENROLL.template, &[("authorization", &auth)], &body)?,
    )?;
    let token = answer
        .get("token")
        .and_then(Value::as_str)
        .ok_or("enroll answered without a token")?
        .to_string();
    let mut state = State {
        server: server.to_string(),
        serial: serial.to_string(),
        name: name.to_string(),
        token,
        jwks_challenge: None,
    };
    refresh_config(&mut state, server)?;
    Ok(state)
}

/// `agent_config/`: refreshes the connector's challenge keys (`endpoint-agent refresh`).
pub fn refresh_config(state: &mut State, server: &str) -> Result<Value, String> {
    let http = Http::new(server);
    let auth = format!("Bearer+agent {}", state.token);
    let config = expect_ok(
        "agent_config",
        http.get(routes::AGENT_CONFIG.template, &[("authorization", &auth)])?,
    )?;
    state.jwks_challenge = match config.get("jwks_challenge") {
        Some(Value::Null) | None => None,
        Some(v) => Some(
            serde_json::from_value(v.clone())
                .map_err(|e| format!("jwks_challenge is not a JWKS: {e}"))?,
        ),
    };
    Ok(config)
}

/// `check_in/` with a facts document (the simulator's stand-in for the real agent's check-in).
/// The document is sent as it is: the server checks it.
pub fn check_in(state: &State, server: &str, facts: &[u8]) -> Result<(), String> {
    let document: Value =
        serde_json::from_slice(facts).map_err(|e| format!("the facts are not JSON: {e}"))?;
    let http = Http::new(server);
    let auth = format!("Bearer+agent {}", state.token);
    expect_ok(
        "check_in",
        http.post(
            routes::CHECK_IN.template,
            &[("authorization", &auth)],
            &document,
        )?,
    )?;
    Ok(())
}

fn coordinate(jwk: &Jwk, v: &Option<String>) -> Result<Vec<u8>, String> {
    v.as_deref()
        .and_then(b64url_decode)
        .ok_or_else(|| format!("key {} lacks a coordinate", jwk.kid))
}

/// Verifies a challenge as the agent does: header `kid` required and found in `jwks`, the
/// key's `alg` equal to the header's, the signature, and `exp` (60 s leeway). Returns the claims.
pub fn verify_challenge(jws: &str, jwks: &Jwks, now: i64) -> Result<ChallengeClaims, String> {
    let mut parts = jws.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the challenge is not a compact JWS".into());
    };
    let header: Value = b64url_decode(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("the challenge header is not JSON")?;
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or("the challenge has no kid")?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or("the challenge has no alg")?;
    let jwk = jwks
        .keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| format!("no published key has kid {kid}"))?;
    if jwk.alg != alg {
        return Err(format!(
            "the challenge says {alg} but key {kid} is {}",
            jwk.alg
        ));
    }
    let sig = b64url_decode(s).ok_or("the challenge signature is not base64url")?;
    let message = format!("{h}.{c}");
    let verified = match alg {
        "ES256" | "ES384" | "ES512" => {
            let point = [
                vec![4u8],
                coordinate(jwk, &jwk.x)?,
                coordinate(jwk, &jwk.y)?,
            ]
            .concat();
            match alg {
                "ES256" | "ES384" => {
                    let algorithm = if alg == "ES256" {
                        &signature::ECDSA_P256_SHA256_FIXED
                    } else {
                        &signature::ECDSA_P384_SHA384_FIXED
                    };
                    UnparsedPublicKey::new(algorithm, point)
                        .verify(message.as_bytes(), &sig)
                        .is_ok()
                }
                // ring has no P-521: RustCrypto's p521 verifies ES512 (r || s, 66 bytes each).
                _ => match (
                    p521::ecdsa::VerifyingKey::from_sec1_bytes(&point),
                    p521::ecdsa::Signature::from_slice(&sig),
                ) {
                    (Ok(key), Ok(sig)) => key.verify(message.as_bytes(), &sig).is_ok(),
                    _ => false,
                },
            }
        }
        "RS256" => {
            let key = RsaPublicKeyComponents {
                n: coordinate(jwk, &jwk.n)?,
                e: coordinate(jwk, &jwk.e)?,
            };
            key.verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                message.as_bytes(),
                &sig,
            )
            .is_ok()
        }
        other => return Err(format!("unsupported challenge alg {other}")),
    };
    if !verified {
        return Err("the challenge signature does not verify".into());
    }
    let claims: ChallengeClaims = b64url_decode(c)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("the challenge claims are not the expected JSON")?;
    if claims.exp + CHALLENGE_LEEWAY < now {
        return Err("the challenge has expired".into());
    }
    Ok(claims)
}

/// Verifies `challenge` against the keys the last configuration fetch stored and signs the
/// response. Like the real agent, an unknown `kid` is refused: keys are only learnt at
/// enrollment and on `refresh` (real agents: at start, or hourly), never on demand.
pub fn respond(state: &State, challenge: &str, now: i64) -> Result<String, String> {
    let jwks = state.jwks_challenge.as_ref().ok_or(
        "the connector published no challenge key at the last configuration fetch (endpoint-agent refresh)",
    )?;
    verify_challenge(challenge, jwks, now)?;
    Ok(sign_response(&state.serial, &state.token, challenge, now))
}

/// The whole browser + agent side of one plan: GET the executor, answer each challenge, POST,
/// until a final outcome (at most `max_rounds` challenges). Returns the final outcome JSON.
pub fn login(
    state: &State,
    server: &str,
    plan: &str,
    now: impl Fn() -> i64,
    max_rounds: usize,
) -> Result<Value, String> {
    let http = Http::new(server);
    let executor = routes::EXECUTOR_GET.path(&[plan]);
    let mut outcome = expect_ok("GET executor", http.get(&executor, &[])?)?;
    for _ in 0..max_rounds {
        if outcome.get("component").and_then(Value::as_str) != Some("ak-stage-endpoint-agent") {
            return Ok(outcome);
        }
        let challenge = outcome
            .get("challenge")
            .and_then(Value::as_str)
            .ok_or("the challenge outcome has no challenge")?
            .to_string();
        let response = respond(state, &challenge, now())?;
        let body = json!({"component": "ak-stage-endpoint-agent", "response": response});
        outcome = expect_ok("POST executor", http.post(&executor, &[], &body)?)?;
    }
    Err(format!("no final outcome after {max_rounds} challenges"))
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::path::PathBuf;

    use super::State;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("endpoint-agent-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    }

    fn state() -> State {
        State {
            server: "http://127.0.0.1:9000".into(),
            serial: "S1".into(),
            name: "host".into(),
            token: "device-token-key".into(),
            jwks_challenge: None,
        }
    }

    #[test]
    fn the_state_file_is_owner_only_and_never_written_through_a_symlink() {
        let dir = scratch("state");
        let path = dir.join("state.json");
        state().save(&path).expect("saved");
        let mode = std::fs::metadata(&path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(State::load(&path).expect("loads").token, "device-token-key");

        // A symlink planted at the temporary name and one at the state file's name: neither
        // target is written; the state file becomes a regular file.
        let victim = dir.join("victim");
        std::fs::write(&victim, "untouched").expect("victim");
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        symlink(&victim, &tmp).expect("symlink at the temporary name");
        std::fs::remove_file(&path).expect("removed");
        symlink(&victim, &path).expect("symlink at the state file");
        state().save(&path).expect("saved");
        assert_eq!(
            std::fs::read_to_string(&victim).expect("victim"),
            "untouched"
        );
        let meta = std::fs::symlink_metadata(&path).expect("exists");
        assert!(meta.file_type().is_file(), "a regular file, not the link");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
