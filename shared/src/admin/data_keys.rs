//! `endpoint-admin key create-data-key`: a challenge key of the `data-key` signing mode (issue
//! 31.4). KMS makes the P-256 key pair and returns its private half only wrapped under the
//! wrapping key; the record is stored under the public key's thumbprint, and the connector
//! names it `datakey:<kid>` like any other key (`connector add-next-key`, `rotate`).

use crate::error::CoreError;
use crate::model::{data_key_reference, DataKeyRecord, UnixTime};
use crate::ports::{DataKeyRecords, DataKeyVault};
use crate::protocol::jwk::Jwk;
use crate::protocol::keys::SigningAlg;

/// A new data key: the reference connectors name it by, and its kid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDataKey {
    pub reference: String,
    pub kid: String,
    pub wrapping_key: String,
}

/// Makes a challenge data key wrapped under `wrapping_key` and stores its record.
pub async fn create_data_key<R: DataKeyRecords, V: DataKeyVault>(
    records: &R,
    vault: &V,
    wrapping_key: &str,
    now: UnixTime,
) -> Result<NewDataKey, CoreError> {
    let pair = vault.generate_key_pair(wrapping_key).await?;
    let (jwk, alg) = Jwk::from_spki_der(&pair.public_key)
        .map_err(|e| CoreError::Unavailable(format!("KMS returned an unusable public key: {e}")))?;
    if alg != SigningAlg::ES256 {
        return Err(CoreError::Unavailable(
            "KMS returned a key pair that is not P-256".into(),
        ));
    }
    let record = DataKeyRecord {
        kid: jwk.kid.clone(),
        public_key: pair.public_key,
        wrapped_private_key: pair.wrapped_private_key,
        wrapping_key: pair.wrapping_key.clone(),
        created_at: now,
    };
    if !records.put_data_key(&record).await? {
        return Err(CoreError::Conflict(format!(
            "a data key with kid {} exists already",
            record.kid
        )));
    }
    Ok(NewDataKey {
        reference: data_key_reference(&record.kid),
        kid: record.kid,
        wrapping_key: pair.wrapping_key,
    })
}
