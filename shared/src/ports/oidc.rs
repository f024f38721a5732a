//! The OpenID provider's storage: its clients, and the single-use things it hands out (codes,
//! access tokens, the `jti`s of client assertions, each plan's one return), each by the hash of
//! its secret and with its expiry (reads filter expired items: TTL deletes late).

use std::future::Future;

use crate::error::{CoreError, StoreError};
use crate::model::{Grant, OidcClient, UnixTime};
use jsonwebtoken::jwk::JwkSet;

/// Clients and grants of the OpenID provider.
pub trait OidcStore: Send + Sync {
    /// Creates a client; `AlreadyExists` if the id is taken.
    fn create_client(&self, c: &OidcClient) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Replaces an existing client (`NotFound` if it is gone).
    fn replace_client(&self, c: &OidcClient)
        -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get_client(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<OidcClient>, StoreError>> + Send;
    fn list_clients(&self) -> impl Future<Output = Result<Vec<OidcClient>, StoreError>> + Send;
    /// `Ok(false)` if it did not exist.
    fn delete_client(&self, id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores a grant under `hash` (a code's or an access token's SHA-256, with `kind` telling
    /// which); fails with `AlreadyExists` if taken.
    fn put_grant(
        &self,
        kind: GrantKind,
        hash: &str,
        grant: &Grant,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Takes a code's grant: answers it and removes it in one conditional write, so that of
    /// two concurrent redemptions one gets it and the other `None`. Expired: `None`.
    fn take_grant(
        &self,
        kind: GrantKind,
        hash: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<Grant>, StoreError>> + Send;
    /// Reads a grant without taking it (access tokens); expired: `None`.
    fn read_grant(
        &self,
        kind: GrantKind,
        hash: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<Grant>, StoreError>> + Send;

    /// Marks `marker` used until `expires_at`: `Ok(true)` the first time, `Ok(false)` while an
    /// unexpired mark exists (a replayed client assertion `jti`, a plan's second return). One
    /// conditional write.
    fn mark_once(
        &self,
        marker: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// What a stored grant is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantKind {
    Code,
    AccessToken,
}

impl GrantKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::Code => "CODE",
            GrantKind::AccessToken => "ACCESS",
        }
    }
}

/// Fetches a JWKS from a URL an operator registered (a client's `--jwks-uri`, a tenant's
/// `--entra-jwks-uri`): only to addresses the egress policy admits, bounded in time and size,
/// and cached by the implementation so that one client cannot make it fetch on every request.
pub trait JwksFetcher: Send + Sync {
    fn fetch(&self, url: &str) -> impl Future<Output = Result<JwkSet, CoreError>> + Send;
}
