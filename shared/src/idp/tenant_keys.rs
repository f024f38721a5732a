//! An Entra tenant's signing keys, which an `id_token_hint` is verified against: parsed from a
//! JWKS document (the operator's file, or `https://login.microsoftonline.com/{tid}/discovery/v2.0/keys`
//! fetched through [`FetchKeys`]), and cached per cold start.
//!
//! Bounds: a document of at most [`MAX_JWKS_BYTES`] with at most [`MAX_JWKS_KEYS`] keys; only
//! RSA keys of 2048 bits or more meant for signatures (`use` absent or `sig`, `alg` absent or
//! `RS256`) are kept, other keys are skipped (Entra publishes RSA keys without `alg`). A fetch
//! goes only where the egress policy admits (`egress`), and is kept for [`KEYS_TTL`] seconds;
//! a hint signed by a key the cached set does not have refetches the set at most once per
//! [`REFETCH_INTERVAL`] (Entra rolls its keys over without notice).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonwebtoken::DecodingKey;
use serde::Deserialize;

use crate::egress::Egress;
use crate::model::UnixTime;
use crate::ports::Resolve;
pub use crate::ports::{FetchFailure, FetchKeys};
use crate::protocol::b64url_decode;

/// Largest JWKS document read (Entra's, with a certificate per key, is about 10 KiB).
pub const MAX_JWKS_BYTES: usize = 128 * 1024;
/// Most keys read from one document.
pub const MAX_JWKS_KEYS: usize = 64;
/// Smallest RSA modulus accepted, in bytes (2048 bits).
pub const MIN_RSA_MODULUS_BYTES: usize = 256;
/// How long a fetched key set is used before it is fetched again (seconds).
pub const KEYS_TTL: i64 = 3600;
/// Least time between two fetches of one URL (seconds): what an unknown `kid` can cause.
pub const REFETCH_INTERVAL: i64 = 300;
/// How long a key set stays usable while its URL cannot be fetched (seconds): Entra's own
/// metadata cache.
pub const MAX_STALE: i64 = 86_400;

/// One RSA signing key.
#[derive(Clone)]
pub struct TenantKey {
    pub kid: Option<String>,
    pub key: DecodingKey,
}

impl std::fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantKey").field("kid", &self.kid).finish()
    }
}

/// A tenant's RSA signing keys.
#[derive(Clone, Debug, Default)]
pub struct TenantKeys {
    pub keys: Vec<TenantKey>,
}

impl TenantKeys {
    /// The key a token's header names: by `kid`; a header without `kid` is accepted only
    /// when the set has exactly one key.
    pub fn find(&self, kid: Option<&str>) -> Option<&TenantKey> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }
}

/// Why a JWKS document gives no keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    #[error("the JWKS document is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("the JWKS document is not a JSON object with a keys array")]
    Malformed,
    #[error("the JWKS document has more than {MAX_JWKS_KEYS} keys")]
    TooManyKeys,
    #[error("the JWKS document has no RSA signing key of 2048 bits or more")]
    NoUsableKey,
    #[error("the JWKS URL is not one the provider may fetch")]
    Refused,
    #[error("the JWKS could not be fetched")]
    Unavailable,
}

#[derive(Deserialize)]
struct Document {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawKey {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

/// The RSA signing keys of a JWKS document (its bytes: a file's contents or a fetch's body).
pub fn parse_jwks(document: &[u8]) -> Result<TenantKeys, KeysError> {
    if document.len() > MAX_JWKS_BYTES {
        return Err(KeysError::TooLarge);
    }
    let doc: Document = serde_json::from_slice(document).map_err(|_| KeysError::Malformed)?;
    if doc.keys.len() > MAX_JWKS_KEYS {
        return Err(KeysError::TooManyKeys);
    }
    let keys: Vec<TenantKey> = doc
        .keys
        .into_iter()
        .filter_map(|v| serde_json::from_value::<RawKey>(v).ok())
        .filter(|k| k.kty == "RSA")
        .filter(|k| k.use_.as_deref().is_none_or(|u| u == "sig"))
        .filter(|k| k.alg.as_deref().is_none_or(|a| a == "RS256"))
        .filter_map(|k| {
            let (n, e) = (k.n?, k.e?);
            let modulus = b64url_decode(&n)?;
            let significant = modulus.iter().skip_while(|b| **b == 0).count();
            if significant < MIN_RSA_MODULUS_BYTES {
                return None;
            }
            let key = DecodingKey::from_rsa_components(&n, &e).ok()?;
            Some(TenantKey { kid: k.kid, key })
        })
        .collect();
    if keys.is_empty() {
        return Err(KeysError::NoUsableKey);
    }
    Ok(TenantKeys { keys })
}

struct Cached {
    keys: Arc<TenantKeys>,
    fetched_at: UnixTime,
}

/// Tenant key sets fetched by URL, kept per cold start (one per Lambda instance).
pub struct KeysCache<F, R> {
    fetcher: F,
    egress: Egress<R>,
    cached: Mutex<HashMap<String, Cached>>,
}

impl<F: FetchKeys, R: Resolve> KeysCache<F, R> {
    pub fn new(fetcher: F, egress: Egress<R>) -> Self {
        KeysCache {
            fetcher,
            egress,
            cached: Mutex::new(HashMap::new()),
        }
    }

    /// The fetcher (tests reach their stand-in through it).
    pub fn fetcher(&self) -> &F {
        &self.fetcher
    }

    /// The key set of `url` able to check a token signed by `kid`: the cached one while it is
    /// fresh and has the key; else fetched again (an unknown `kid` at most once per
    /// [`REFETCH_INTERVAL`]). A failed refetch falls back to a cached set up to [`MAX_STALE`].
    pub async fn keys_for(
        &self,
        url: &str,
        kid: Option<&str>,
        now: UnixTime,
    ) -> Result<Arc<TenantKeys>, KeysError> {
        let cached = self.cached(url);
        if let Some(c) = &cached {
            let fresh = now - c.1 < KEYS_TTL;
            let has_key = c.0.find(kid).is_some();
            let may_refetch = now - c.1 >= REFETCH_INTERVAL;
            if fresh && (has_key || !may_refetch) {
                return Ok(c.0.clone());
            }
        }
        match self.fetch(url).await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                if let Ok(mut m) = self.cached.lock() {
                    m.insert(
                        url.to_string(),
                        Cached {
                            keys: keys.clone(),
                            fetched_at: now,
                        },
                    );
                }
                Ok(keys)
            }
            Err(e) => cached
                .filter(|c| now - c.1 < MAX_STALE)
                .map(|c| c.0)
                .ok_or(e),
        }
    }

    fn cached(&self, url: &str) -> Option<(Arc<TenantKeys>, UnixTime)> {
        let m = self.cached.lock().ok()?;
        m.get(url).map(|c| (c.keys.clone(), c.fetched_at))
    }

    async fn fetch(&self, url: &str) -> Result<TenantKeys, KeysError> {
        let url = self
            .egress
            .admit(url)
            .await
            .map_err(|_| KeysError::Refused)?;
        let body = self
            .fetcher
            .fetch(&url, MAX_JWKS_BYTES)
            .await
            .map_err(|f| match f {
                FetchFailure::Refused => KeysError::Refused,
                FetchFailure::Unavailable => KeysError::Unavailable,
            })?;
        parse_jwks(&body)
    }
}
