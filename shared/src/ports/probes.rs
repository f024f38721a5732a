//! What `/health` asks of the outside: that the table answers a read, and
//! what the key service says of a key's state, without any cryptographic call.

use std::future::Future;

use crate::error::{SignerError, StoreError};

/// What a key is for: a challenge key signs, a data key's wrapping key decrypts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyUse {
    Sign,
    Wrap,
}

/// One cheap read of the table: a consistent `GetItem` of a fixed key that holds no item.
pub trait TableProbe: Send + Sync {
    fn probe_table(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Whether a key is enabled and made for `usage`, as the key service describes it
/// (`DescribeKey`: no `Sign`, no `Decrypt`, so never a call of the cryptographic quota).
pub trait KeyStatus: Send + Sync {
    fn key_usable(
        &self,
        key: &str,
        usage: KeyUse,
    ) -> impl Future<Output = Result<bool, SignerError>> + Send;
}
