//! Name resolution: what the domain asks of DNS when it checks where the transmitter may
//! connect (`egress`). The system resolver is `edge::resolver::SystemResolver`; tests use
//! `adapters::memory::StaticResolver`.

use std::future::Future;
use std::net::IpAddr;

/// Why a name has no addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupError {
    /// The name does not exist, or has no address.
    NotFound,
    /// The resolver did not answer in time.
    Timeout,
}

/// Resolves a host name to its addresses (both families).
pub trait Resolve: Send + Sync {
    fn lookup(&self, host: &str) -> impl Future<Output = Result<Vec<IpAddr>, LookupError>> + Send;
}

impl<T: Resolve + ?Sized> Resolve for &T {
    fn lookup(&self, host: &str) -> impl Future<Output = Result<Vec<IpAddr>, LookupError>> + Send {
        (**self).lookup(host)
    }
}
