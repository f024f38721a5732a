//! The HTTP side of push delivery: a SET POSTed to the receiver's endpoint, connecting only to
//! addresses the egress policy admits. The name is resolved once, by [`CheckedResolver`], and
//! the client connects to exactly the addresses it checked (no second lookup a changed DNS
//! answer could slip through); no proxy, no redirect. Failures reach the stream's status only
//! as [`PushFailure`]'s generic terms.

use std::fmt;
use std::io::ErrorKind;
use std::time::Duration;

use endpoint_core::delivery::Pusher;
use endpoint_core::egress::{EgressPolicy, PushFailure};
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// How long one POST to a receiver may take, by default.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

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

/// POSTs a SET (`application/secevent+jwt`) with a blocking client on the blocking pool.
pub struct HttpPusher {
    agent: ureq::Agent,
}

impl HttpPusher {
    /// A pusher under `policy`, resolving with the system's resolver.
    pub fn new(policy: EgressPolicy) -> Self {
        Self::with_resolver(policy, DefaultResolver::default(), PUSH_TIMEOUT)
    }

    /// A pusher under `policy` whose names `inner` resolves, each POST bounded by `timeout`.
    pub fn with_resolver(policy: EgressPolicy, inner: impl Resolver, timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .max_redirects(0)
            // A proxy would resolve the name itself, past the check: none, whatever the
            // environment says.
            .proxy(None)
            .build();
        let resolver = CheckedResolver { policy, inner };
        HttpPusher {
            agent: ureq::Agent::with_parts(config, DefaultConnector::default(), resolver),
        }
    }
}

/// A client error in generic terms.
fn generic(e: &ureq::Error) -> PushFailure {
    match e {
        ureq::Error::Timeout(_) => PushFailure::Timeout,
        ureq::Error::HostNotFound => PushFailure::NameNotResolved,
        ureq::Error::Other(inner) if inner.is::<RefusedAddress>() => PushFailure::RefusedAddress,
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => PushFailure::Tls,
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => PushFailure::ConnectionRefused,
            ErrorKind::TimedOut => PushFailure::Timeout,
            // What rustls reports a failed handshake as.
            ErrorKind::InvalidData => PushFailure::Tls,
            _ => PushFailure::ConnectionFailed,
        },
        _ => PushFailure::ConnectionFailed,
    }
}

impl Pusher for HttpPusher {
    async fn push(
        &self,
        url: &str,
        authorization: Option<&str>,
        set: &str,
    ) -> Result<u16, PushFailure> {
        let (agent, url) = (self.agent.clone(), url.to_string());
        let (auth, set) = (authorization.map(str::to_string), set.to_string());
        tokio::task::spawn_blocking(move || {
            let mut req = agent
                .post(&url)
                .header("content-type", "application/secevent+jwt")
                .header("accept", "application/json");
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            match req.send(set) {
                Ok(r) => Ok(r.status().as_u16()),
                Err(e) => {
                    let failure = generic(&e);
                    // The detail for the operator's log only (the receiver sees `failure`);
                    // never the URL, which may carry the receiver's secret.
                    let detail = match &e {
                        ureq::Error::BadUri(_) => "bad uri".to_string(),
                        other => other.to_string(),
                    };
                    tracing::warn!(event = "push_error", failure = %failure, error = %detail, "push failed");
                    Err(failure)
                }
            }
        })
        .await
        .map_err(|_| PushFailure::ConnectionFailed)?
    }
}
