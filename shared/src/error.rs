//! Typed errors of the core and its ports. `edge::error_class` is the one table that maps them
//! to the contract's status codes, `{"error","message"}` codes and log labels.
//!
//! Messages never carry a secret, a token, a challenge or a response JWT, and never an AWS
//! error string: adapters reduce SDK errors to these variants (with a short classification)
//! and log the detail themselves without secrets.

/// What a storage adapter can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store did not answer, timed out or failed (after the SDK's retries).
    #[error("the data store is unavailable ({0})")]
    Unavailable(String),
    /// The store kept throttling after the SDK's retries.
    #[error("the data store is throttling requests")]
    Throttled,
    /// A stored item lacks a field or has one of the wrong type.
    #[error("a stored item could not be read ({0})")]
    Corrupt(String),
    /// A create found the item already there.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// An update named an item that does not exist.
    #[error("{0} not found")]
    NotFound(String),
}

/// What a challenge signer can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    #[error("the challenge signing key {0} does not exist")]
    KeyNotFound(String),
    /// Disabled, pending deletion, not a SIGN_VERIFY key, or of a spec the protocol has no `alg` for.
    #[error("the challenge signing key {key} cannot be used: {reason}")]
    KeyUnusable { key: String, reason: String },
    #[error("the signing service is unavailable ({0})")]
    Unavailable(String),
    #[error("the signing service is throttling requests")]
    Throttled,
}

/// Errors of core operations, one-to-one with the contract's non-outcome errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    /// Missing or wrong credentials where the protocol says 401 (the Shared Signals routes).
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0} was not found")]
    NotFound(String),
    #[error("The request body is larger than {} KiB, the most this route accepts.", .0 / 1024)]
    PayloadTooLarge(usize),
    /// A request that conflicts with the current configuration or state (a required stage
    /// without a key, rotating without a next key, a duplicate): 409 `conflict`.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Throttled(String),
    #[error("{0}")]
    Unavailable(String),
    /// A per-client abuse limit: 429 with `Retry-After` this many seconds.
    #[error("Too many requests; try again in {0} seconds.")]
    RateLimited(u32),
    /// Two writers raced on one item and this one lost: the operation retries on fresh state
    /// (the stage operations do, three times), and only if it keeps losing is it a 503.
    #[error("the item changed while it was being updated; try again")]
    LostRace,
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Throttled => {
                CoreError::Throttled("The data store is busy; try again shortly.".into())
            }
            StoreError::Unavailable(why) => CoreError::Unavailable(format!(
                "The data store is unavailable ({why}); try again shortly."
            )),
            StoreError::Corrupt(_) => {
                CoreError::Unavailable("Stored data could not be read.".into())
            }
            StoreError::AlreadyExists(what) => {
                CoreError::Conflict(format!("{what} already exists"))
            }
            StoreError::NotFound(what) => CoreError::NotFound(what),
        }
    }
}

impl From<SignerError> for CoreError {
    fn from(e: SignerError) -> Self {
        match e {
            SignerError::Throttled => {
                CoreError::Throttled("The signing service is busy; try again shortly.".into())
            }
            SignerError::Unavailable(why) => CoreError::Unavailable(format!(
                "The signing service is unavailable ({why}); try again shortly."
            )),
            SignerError::KeyNotFound(_) => CoreError::Unavailable(
                "The connector's challenge signing key does not exist.".into(),
            ),
            SignerError::KeyUnusable { reason, .. } => CoreError::Unavailable(format!(
                "The connector's challenge signing key cannot be used: {reason}."
            )),
        }
    }
}
