//! The HTTP side of [`FetchKeys`]: a GET that connects only to addresses the egress policy
//! admits. The name is resolved once, by [`CheckedResolver`], and the client connects to
//! exactly the addresses it checked (no second lookup a changed DNS answer could slip
//! through); no proxy, no redirect, bounded in time, at most `max_bytes` of the body read.
//! Failures are [`FetchFailure`]'s generic terms; the detail goes to the log only.

use std::fmt;
use std::time::Duration;

use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::egress::EgressPolicy;
use crate::ports::{FetchFailure, FetchKeys};

/// How long one fetch may take, by default (an Entra sign-in waits for it).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// What the resolver answers for a name whose addresses the policy refuses.
#[derive(Debug)]
struct RefusedAddress;

impl fmt::Display for RefusedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("refused address")
    }
}

impl std::error::Error for RefusedAddress {}

/// A resolver that answers a name's addresses only if the policy admits every one of them
/// (`inner` does the lookup: the system's, or a test's fixed answer).
#[derive(Debug)]
pub struct CheckedResolver<R> {
    pub policy: EgressPolicy,
    pub inner: R,
}

impl<R: Resolver> Resolver for CheckedResolver<R> {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addrs = self.inner.resolve(uri, config, timeout)?;
        match self.policy.admits_all(addrs.iter().map(|a| a.ip())) {
            Ok(()) => Ok(addrs),
            Err(_) => Err(ureq::Error::Other(Box::new(RefusedAddress))),
        }
    }
}

/// A blocking client under `policy` whose names `inner` resolves (only to addresses the policy
/// admits), each request bounded by `timeout`; no redirect, no proxy. Every outbound request of
/// the stack to an address a client or an operator named goes through one of these (push
/// delivery, JWKS fetches). Build once per cold start.
pub fn checked_agent(policy: EgressPolicy, inner: impl Resolver, timeout: Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .max_redirects(0)
        // A proxy would resolve the name itself, past the check: none, whatever the
        // environment says.
        .proxy(None)
        .build();
    let resolver = CheckedResolver { policy, inner };
    ureq::Agent::with_parts(config, DefaultConnector::default(), resolver)
}

/// Whether a client error is the policy's refusal of the name's addresses.
pub fn is_refused(e: &ureq::Error) -> bool {
    matches!(e, ureq::Error::Other(inner) if inner.is::<RefusedAddress>())
}

/// GETs documents with a blocking client on the blocking pool. Build once per cold start.
pub struct HttpFetcher {
    agent: ureq::Agent,
}

impl HttpFetcher {
    /// A fetcher under `policy`, resolving with the system's resolver.
    pub fn new(policy: EgressPolicy) -> Self {
        Self::with_resolver(policy, DefaultResolver::default(), FETCH_TIMEOUT)
    }

    /// A fetcher under `policy` whose names `inner` resolves, each GET bounded by `timeout`.
    pub fn with_resolver(policy: EgressPolicy, inner: impl Resolver, timeout: Duration) -> Self {
        HttpFetcher {
            agent: checked_agent(policy, inner, timeout),
        }
    }
}

impl FetchKeys for HttpFetcher {
    async fn fetch(&self, url: &str, max_bytes: usize) -> Result<Vec<u8>, FetchFailure> {
        let (agent, url) = (self.agent.clone(), url.to_string());
        tokio::task::spawn_blocking(move || {
            let failed = |e: &ureq::Error| {
                let refused = is_refused(e);
                // The detail for the operator's log only.
                tracing::warn!(event = "fetch_error", error = %e, "fetch failed");
                if refused {
                    FetchFailure::Refused
                } else {
                    FetchFailure::Unavailable
                }
            };
            let mut response = agent
                .get(&url)
                .header("accept", "application/json")
                .call()
                .map_err(|e| failed(&e))?;
            if response.status().as_u16() != 200 {
                tracing::warn!(
                    event = "fetch_error",
                    status = response.status().as_u16(),
                    "fetch failed"
                );
                return Err(FetchFailure::Unavailable);
            }
            response
                .body_mut()
                .with_config()
                .limit(max_bytes as u64)
                .read_to_vec()
                .map_err(|e| failed(&e))
        })
        .await
        .map_err(|_| FetchFailure::Unavailable)?
    }
}
