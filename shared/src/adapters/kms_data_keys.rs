//! The vault of challenge data keys on AWS KMS (feature `kms`): `GenerateDataKeyPairWithoutPlaintext`
//! (ECC_NIST_P256) makes a key pair whose private half KMS returns only wrapped under a
//! symmetric key, and `Decrypt` unwraps it, both with the data-key encryption context
//! (`purpose`, `table`), which the wrapping key's policy demands and only the challenge
//! function's IAM statement allows for `Decrypt` (template.yaml).

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeyPairSpec;
use aws_sdk_kms::Client;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::aws::{classify, Failure};
use crate::error::SignerError;
use crate::model::{DataKeyRecord, Plaintext, DATA_KEY_PURPOSE, DATA_KEY_TABLE};
use crate::ports::{DataKeyVault, WrappedKeyPair};

/// Makes and unwraps challenge data keys of one table.
#[derive(Debug, Clone)]
pub struct KmsDataKeyVault {
    client: Client,
    table: String,
}

fn vault_error<
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
>(
    op: &'static str,
    key: &str,
    e: &SdkError<E, R>,
) -> SignerError {
    match classify(e) {
        Failure::Throttled => {
            tracing::warn!(op, "kms throttled after retries");
            SignerError::Throttled
        }
        Failure::Unreachable(why) => {
            tracing::warn!(op, why = %why, "kms unreachable");
            SignerError::Unavailable(why)
        }
        Failure::Service(code) => {
            tracing::warn!(op, code = %code, "kms error on a challenge data key");
            SignerError::KeyUnusable {
                key: key.to_string(),
                reason: format!("the wrapping key refused it ({code})"),
            }
        }
    }
}

impl KmsDataKeyVault {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        KmsDataKeyVault {
            client,
            table: table.into(),
        }
    }

    pub fn from_config(config: &aws_config::SdkConfig, table: &str) -> Self {
        let conf = aws_sdk_kms::config::Builder::from(config)
            .interceptor(super::aws::CallTimer)
            .build();
        Self::new(Client::from_conf(conf), table)
    }

    /// Creates a symmetric key to wrap challenge data keys (local stacks and tests; deployed,
    /// the stack's `ChallengeWrappingKey`, a multi-Region key); returns its key id.
    pub async fn create_wrapping_key(&self, description: &str) -> Result<String, SignerError> {
        let out = self
            .client
            .create_key()
            .key_spec(aws_sdk_kms::types::KeySpec::SymmetricDefault)
            .key_usage(aws_sdk_kms::types::KeyUsageType::EncryptDecrypt)
            .multi_region(true)
            .description(description)
            .send()
            .await
            .map_err(|e| vault_error("CreateKey", "(new key)", &e))?;
        out.key_metadata()
            .map(|m| m.key_id().to_string())
            .ok_or_else(|| SignerError::Unavailable("KMS returned no key metadata".into()))
    }
}

impl DataKeyVault for KmsDataKeyVault {
    async fn generate_key_pair(&self, wrapping_key: &str) -> Result<WrappedKeyPair, SignerError> {
        let out = self
            .client
            .generate_data_key_pair_without_plaintext()
            .key_id(wrapping_key)
            .key_pair_spec(DataKeyPairSpec::EccNistP256)
            .encryption_context(DATA_KEY_PURPOSE.0, DATA_KEY_PURPOSE.1)
            .encryption_context(DATA_KEY_TABLE, &self.table)
            .send()
            .await
            .map_err(|e| vault_error("GenerateDataKeyPairWithoutPlaintext", wrapping_key, &e))?;
        match (out.public_key, out.private_key_ciphertext_blob) {
            (Some(public), Some(wrapped)) => Ok(WrappedKeyPair {
                public_key: public.into_inner(),
                wrapped_private_key: wrapped.into_inner(),
                wrapping_key: out.key_id.unwrap_or_else(|| wrapping_key.to_string()),
            }),
            _ => Err(SignerError::Unavailable(
                "GenerateDataKeyPairWithoutPlaintext answered without a key pair".into(),
            )),
        }
    }

    async fn unwrap_private_key(&self, record: &DataKeyRecord) -> Result<Plaintext, SignerError> {
        let reference = crate::model::data_key_reference(&record.kid);
        // The key's id without the ARN's region: a multi-Region key (`mrk-...`) resolves to this
        // region's replica, so a record wrapped in one region unwraps in every region.
        let key_id = record.wrapping_key.rsplit('/').next().unwrap_or_default();
        let out = self
            .client
            .decrypt()
            .key_id(key_id)
            .ciphertext_blob(Blob::new(record.wrapped_private_key.clone()))
            .encryption_context(DATA_KEY_PURPOSE.0, DATA_KEY_PURPOSE.1)
            .encryption_context(DATA_KEY_TABLE, &self.table)
            .send()
            .await
            .map_err(|e| vault_error("Decrypt", &reference, &e))?;
        out.plaintext
            .map(|p| Plaintext::new(p.into_inner()))
            .ok_or_else(|| SignerError::Unavailable("Decrypt answered nothing".into()))
    }
}
