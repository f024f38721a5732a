//! Fetching a public document by URL: what the OpenID provider asks of HTTP when it reads an
//! Entra tenant's signing keys (`idp::tenant_keys`). The domain checks the URL with the egress
//! policy first; the adapter connects only to addresses the policy admits (the name is
//! resolved once and those addresses checked, as push delivery does), follows no redirect,
//! uses no proxy, is bounded in time, and reads at most `max_bytes` of the body.

use std::future::Future;

/// Why a fetch failed, in generic terms (never the HTTP client's text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchFailure {
    /// The address is one the egress policy refuses.
    Refused,
    /// Timeout, connection failure, a status other than 200, or a body over the bound.
    Unavailable,
}

/// GETs a document.
pub trait FetchKeys: Send + Sync {
    fn fetch(
        &self,
        url: &str,
        max_bytes: usize,
    ) -> impl Future<Output = Result<Vec<u8>, FetchFailure>> + Send;
}
