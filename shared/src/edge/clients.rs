//! The AWS clients of a function, built once per cold start from one AWS configuration, outside
//! the handler. Every function's `main` is the same: `aws_config`, then the clients it needs.

#[cfg(feature = "aws")]
use super::config::Base;

/// The standard AWS configuration (region, credentials, `AWS_ENDPOINT_URL*`) with our bounds.
#[cfg(feature = "aws")]
pub async fn aws_config() -> aws_config::SdkConfig {
    crate::adapters::aws::load_config().await
}

/// The DynamoDB store on the function's table.
#[cfg(feature = "dynamodb")]
pub fn dynamo(aws: &aws_config::SdkConfig, base: &Base) -> crate::adapters::dynamodb::DynamoStore {
    crate::adapters::dynamodb::DynamoStore::from_config(aws, &base.config.table)
}

/// The KMS challenge signer (key descriptions cached per process).
#[cfg(feature = "kms")]
pub fn kms(aws: &aws_config::SdkConfig) -> crate::adapters::kms::KmsSigner {
    crate::adapters::kms::KmsSigner::from_config(aws)
}
