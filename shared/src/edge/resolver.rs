//! The system's name resolver (`getaddrinfo`), as the `Resolve` port: on the blocking pool,
//! bounded in time. What the Shared Signals function checks a push endpoint's host name with
//! when a stream is created or changed (`egress`).

use std::net::{IpAddr, ToSocketAddrs};
use std::time::Duration;

use crate::ports::{LookupError, Resolve};

/// How long a lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Most addresses kept of one name (as many as the push client tries).
const MAX_ADDRESSES: usize = 16;

/// The operating system's resolver.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, LookupError> {
        // A bracketed IPv6 literal or a name; the port is only there for getaddrinfo's sake.
        let target = (host.to_string(), 443);
        let lookup = tokio::task::spawn_blocking(move || {
            target.to_socket_addrs().map(|addrs| {
                addrs
                    .map(|a| a.ip())
                    .take(MAX_ADDRESSES)
                    .collect::<Vec<IpAddr>>()
            })
        });
        match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
            Err(_) => Err(LookupError::Timeout),
            Ok(Ok(Ok(ips))) if !ips.is_empty() => Ok(ips),
            Ok(_) => Err(LookupError::NotFound),
        }
    }
}
