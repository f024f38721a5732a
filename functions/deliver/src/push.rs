//! The HTTP side of push delivery: a SET POSTed to the receiver's endpoint, connecting only to
//! addresses the egress policy admits. The name is resolved once, by the checked resolver of
//! [`checked_agent`] (`edge::fetch`, shared with the JWKS fetches), and
//! the client connects to exactly the addresses it checked (no second lookup a changed DNS
//! answer could slip through); no proxy, no redirect. Failures reach the stream's status only
//! as [`PushFailure`]'s generic terms.

use std::io::ErrorKind;
use std::time::Duration;

use endpoint_core::delivery::Pusher;
use endpoint_core::edge::fetch::{checked_agent, is_refused};
use endpoint_core::egress::{EgressPolicy, PushFailure};
use ureq::unversioned::resolver::{DefaultResolver, Resolver};

/// How long one POST to a receiver may take, by default.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

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
        HttpPusher {
            agent: checked_agent(policy, inner, timeout),
        }
    }
}

/// A client error in generic terms.
fn generic(e: &ureq::Error) -> PushFailure {
    match e {
        ureq::Error::Timeout(_) => PushFailure::Timeout,
        ureq::Error::HostNotFound => PushFailure::NameNotResolved,
        e if is_refused(e) => PushFailure::RefusedAddress,
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
