//! What the `data-key` signing mode needs from the outside (issue 31.4): where the records of
//! challenge data keys live (the table) and the key management service that makes and unwraps
//! them (KMS).

use std::future::Future;

use crate::error::{SignerError, StoreError};
use crate::model::{DataKeyRecord, Plaintext};

/// The records of challenge data keys (`DATAKEY#<kid>`), which never change once written.
pub trait DataKeyRecords: Send + Sync {
    fn get_data_key(
        &self,
        kid: &str,
    ) -> impl Future<Output = Result<Option<DataKeyRecord>, StoreError>> + Send;

    /// Writes a new record; `false` if one with its kid exists (never overwritten).
    fn put_data_key(
        &self,
        record: &DataKeyRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// A new key pair from the key management service: the public key (DER SPKI) and the private
/// key wrapped under the wrapping key (its plaintext never leaves the service).
#[derive(Clone, Debug)]
pub struct WrappedKeyPair {
    pub public_key: Vec<u8>,
    pub wrapped_private_key: Vec<u8>,
    /// The wrapping key's ARN, as the service resolved it.
    pub wrapping_key: String,
}

/// Makes and unwraps challenge data keys, always with the data-key encryption context.
pub trait DataKeyVault: Send + Sync {
    /// A new P-256 key pair whose private half is wrapped under `wrapping_key`.
    fn generate_key_pair(
        &self,
        wrapping_key: &str,
    ) -> impl Future<Output = Result<WrappedKeyPair, SignerError>> + Send;

    /// The private key (DER PKCS#8) of a record, zeroed when dropped.
    fn unwrap_private_key(
        &self,
        record: &DataKeyRecord,
    ) -> impl Future<Output = Result<Plaintext, SignerError>> + Send;
}
