//! The AWS clients of a function, built once per cold start from one AWS configuration, outside
//! the handler. Every function's `main` is the same: `aws_config`, then the clients it needs.

#[cfg(feature = "aws")]
use super::config::Base;

/// The standard AWS configuration (region, credentials, `AWS_ENDPOINT_URL*`) with our bounds.
#[cfg(feature = "aws")]
pub async fn aws_config() -> aws_config::SdkConfig {
    crate::adapters::aws::load_config().await
}

/// The DynamoDB store on the function's table, sealing device token keys with the data key of
/// `SEALING_KEY_ID` (if set) and keeping audit records `AUDIT_RETENTION_DAYS`.
#[cfg(feature = "dynamodb")]
pub fn dynamo(aws: &aws_config::SdkConfig, base: &Base) -> crate::adapters::dynamodb::DynamoStore {
    let c = &base.config;
    crate::adapters::dynamodb::DynamoStore::configured(
        aws,
        &c.table,
        c.sealing_key.as_deref(),
        c.audit_retention_days,
    )
}

/// The KMS challenge signer (key descriptions cached per process).
#[cfg(feature = "kms")]
pub fn kms(aws: &aws_config::SdkConfig) -> crate::adapters::kms::KmsSigner {
    crate::adapters::kms::KmsSigner::from_config(aws)
}
