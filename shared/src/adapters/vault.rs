//! The key vault of device token keys on AWS KMS: a dedicated symmetric key generates the
//! table's data key (`GenerateDataKey`) and unwraps it (`Decrypt`), bound to the table by the
//! encryption context. Behind the `sealing` feature (the functions that read or write device keys,
//! and the CLIs): the store seals with it.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::Client;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::aws::{classify, Failure};

/// The key vault of device token keys: a dedicated symmetric KMS key (`SEALING_KEY_ID`) that
/// generates and unwraps the table's data key, bound to the table by the encryption context.
/// Unwrapping needs no key id (a symmetric ciphertext names its key), so a vault without one
/// works for everything but creating the first data key; it learns the key from the data key
/// it unwraps, which is what `sealing rotate` generates the next one under.
#[derive(Debug)]
pub struct KmsVault {
    client: Client,
    key_id: std::sync::Mutex<Option<String>>,
    table: String,
}

impl KmsVault {
    pub fn new(client: Client, key_id: impl Into<String>, table: impl Into<String>) -> Self {
        Self::with_key(client, Some(key_id.into()), table)
    }

    /// A vault whose key is given, or (`None`) learned from the first data key it unwraps.
    pub fn with_key(client: Client, key_id: Option<String>, table: impl Into<String>) -> Self {
        KmsVault {
            client,
            key_id: std::sync::Mutex::new(key_id),
            table: table.into(),
        }
    }

    fn key_id(&self) -> Option<String> {
        self.key_id.lock().ok().and_then(|k| k.clone())
    }

    pub fn from_config(config: &aws_config::SdkConfig, key_id: Option<&str>, table: &str) -> Self {
        let conf = aws_sdk_kms::config::Builder::from(config)
            .interceptor(super::aws::CallTimer)
            .build();
        Self::with_key(Client::from_conf(conf), key_id.map(str::to_string), table)
    }

    /// Creates a symmetric (ENCRYPT_DECRYPT) KMS key for sealing; returns its key id. Deployed,
    /// the stack creates it (`SealingKey`); this is for local stacks and tests. A multi-Region
    /// primary key: the data key it wraps unwraps in any region that has a replica
    /// ([`KmsVault::replicate_key`]).
    pub async fn create_key(
        config: &aws_config::SdkConfig,
        description: &str,
    ) -> Result<String, crate::error::StoreError> {
        let out = Client::new(config)
            .create_key()
            .key_spec(aws_sdk_kms::types::KeySpec::SymmetricDefault)
            .key_usage(aws_sdk_kms::types::KeyUsageType::EncryptDecrypt)
            .description(description)
            .multi_region(true)
            .send()
            .await
            .map_err(|e| vault_error("CreateKey", &e))?;
        out.key_metadata()
            .map(|m| m.key_id().to_string())
            .ok_or_else(|| {
                crate::error::StoreError::Unavailable("KMS returned no key metadata".into())
            })
    }

    /// Replicates the multi-Region sealing key `key_id` into `region` (`ReplicateKey`, called
    /// in the primary key's region); an existing replica is left as it is.
    pub async fn replicate_key(
        config: &aws_config::SdkConfig,
        key_id: &str,
        region: &str,
    ) -> Result<(), crate::error::StoreError> {
        let r = Client::new(config)
            .replicate_key()
            .key_id(key_id)
            .replica_region(region)
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error().and_then(|s| s.code())
                    == Some("AlreadyExistsException") =>
            {
                Ok(())
            }
            Err(e) => Err(vault_error("ReplicateKey", &e)),
        }
    }

    const PURPOSE: (&'static str, &'static str) = ("purpose", "endpoint-stage device token keys");
}

fn vault_error<
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
>(
    op: &'static str,
    e: &SdkError<E, R>,
) -> crate::error::StoreError {
    use crate::error::StoreError;
    match classify(e) {
        Failure::Throttled => {
            tracing::warn!(op, "kms throttled after retries");
            StoreError::Throttled
        }
        Failure::Unreachable(why) => {
            tracing::warn!(op, why = %why, "kms unreachable");
            StoreError::Unavailable(why)
        }
        Failure::Service(code) => {
            tracing::warn!(op, code = %code, "kms error on the sealing key");
            StoreError::Unavailable(format!("the sealing key cannot be used ({code})"))
        }
    }
}

impl super::sealing::KeyVault for KmsVault {
    fn generate_data_key(
        &self,
    ) -> futures::future::BoxFuture<'_, Result<super::sealing::NewDataKey, crate::error::StoreError>>
    {
        Box::pin(async move {
            let key_id = self.key_id().ok_or_else(|| {
                crate::error::StoreError::Unavailable(
                    "creating the table's first data key needs the sealing key (SEALING_KEY_ID or --sealing-key)".into(),
                )
            })?;
            let out = self
                .client
                .generate_data_key()
                .key_id(key_id)
                .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
                .encryption_context(Self::PURPOSE.0, Self::PURPOSE.1)
                .encryption_context("table", &self.table)
                .send()
                .await
                .map_err(|e| vault_error("GenerateDataKey", &e))?;
            match (out.plaintext, out.ciphertext_blob) {
                (Some(p), Some(c)) => Ok(super::sealing::NewDataKey {
                    plaintext: p.into_inner(),
                    wrapped: c.into_inner(),
                }),
                _ => Err(crate::error::StoreError::Unavailable(
                    "GenerateDataKey answered without a key".into(),
                )),
            }
        })
    }

    fn unwrap_data_key<'a>(
        &'a self,
        wrapped: &'a [u8],
    ) -> futures::future::BoxFuture<'a, Result<Vec<u8>, crate::error::StoreError>> {
        Box::pin(async move {
            let out = self
                .client
                .decrypt()
                .set_key_id(self.key_id())
                .ciphertext_blob(Blob::new(wrapped.to_vec()))
                .encryption_context(Self::PURPOSE.0, Self::PURPOSE.1)
                .encryption_context("table", &self.table)
                .send()
                .await
                .map_err(|e| vault_error("Decrypt", &e))?;
            if let (Some(learned), Ok(mut key)) = (out.key_id(), self.key_id.lock()) {
                key.get_or_insert_with(|| learned.to_string());
            }
            out.plaintext.map(|p| p.into_inner()).ok_or_else(|| {
                crate::error::StoreError::Unavailable("Decrypt answered nothing".into())
            })
        })
    }
}
