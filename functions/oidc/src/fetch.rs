//! A JWKS fetched from an operator-registered URL (a client's `--jwks-uri`, a tenant's
//! `--entra-jwks-uri`): connecting only to addresses the egress policy admits (the name is
//! resolved once and the connection made to exactly the addresses checked; no proxy, no
//! redirect), within [`FETCH_TIMEOUT`] and [`MAX_JWKS_BYTES`], and cached for [`CACHE_FOR`]
//! (a failure for [`RETRY_AFTER`]), so requests naming one client cause at most one fetch a
//! few minutes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use endpoint_core::edge::fetch::checked_agent;
use endpoint_core::egress::EgressPolicy;
use endpoint_core::ports::JwksFetcher;
use endpoint_core::CoreError;
use jsonwebtoken::jwk::JwkSet;
use ureq::unversioned::resolver::DefaultResolver;

pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_JWKS_BYTES: u64 = 64 * 1024;
pub const CACHE_FOR: Duration = Duration::from_secs(300);
pub const RETRY_AFTER: Duration = Duration::from_secs(30);
/// The most URLs cached at once (operators register few).
pub const MAX_CACHED: usize = 256;

type Cached = (Instant, Option<Arc<JwkSet>>);

/// Fetches JWKS documents under an egress policy, with a per-process cache.
pub struct HttpJwks {
    agent: ureq::Agent,
    policy: EgressPolicy,
    cache: Mutex<HashMap<String, Cached>>,
}

impl HttpJwks {
    pub fn new(policy: EgressPolicy) -> Self {
        HttpJwks {
            agent: checked_agent(policy, DefaultResolver::default(), FETCH_TIMEOUT),
            policy,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, url: &str) -> Option<Option<Arc<JwkSet>>> {
        let cache = self.cache.lock().ok()?;
        let (at, value) = cache.get(url)?;
        let fresh = match value {
            Some(_) => at.elapsed() < CACHE_FOR,
            None => at.elapsed() < RETRY_AFTER,
        };
        fresh.then(|| value.clone())
    }

    fn keep(&self, url: &str, value: Option<Arc<JwkSet>>) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(url.to_string(), (Instant::now(), value));
        }
    }
}

fn unavailable() -> CoreError {
    CoreError::Unavailable("The registered keys could not be fetched.".into())
}

impl JwksFetcher for HttpJwks {
    async fn fetch(&self, url: &str) -> Result<JwkSet, CoreError> {
        if let Some(hit) = self.cached(url) {
            return hit.map(|k| (*k).clone()).ok_or_else(unavailable);
        }
        let scheme_ok = url.starts_with("https://")
            || (self.policy == EgressPolicy::AllowLoopback && url.starts_with("http://"));
        if !scheme_ok {
            self.keep(url, None);
            return Err(unavailable());
        }
        let (agent, owned) = (self.agent.clone(), url.to_string());
        let fetched = tokio::task::spawn_blocking(move || -> Option<JwkSet> {
            let mut response = agent.get(&owned).call().ok()?;
            if response.status().as_u16() != 200 {
                return None;
            }
            let text = response
                .body_mut()
                .with_config()
                .limit(MAX_JWKS_BYTES)
                .read_to_string()
                .ok()?;
            serde_json::from_str(&text).ok()
        })
        .await
        .ok()
        .flatten()
        .map(Arc::new);
        if fetched.is_none() {
            tracing::warn!(
                event = "jwks_fetch_failed",
                "a registered JWKS could not be fetched"
            );
        }
        self.keep(url, fetched.clone());
        fetched.map(|k| (*k).clone()).ok_or_else(unavailable)
    }
}
