//! The AWS clients of a function, built once per cold start from one AWS configuration, outside
//! the handler. Every function's `main` is the same: `aws_config`, then the clients it needs.

#[cfg(feature = "dynamodb")]
use super::config::Base;

/// The standard AWS configuration (region, credentials, `AWS_ENDPOINT_URL*`) with our bounds.
#[cfg(feature = "aws")]
pub async fn aws_config() -> aws_config::SdkConfig {
    crate::adapters::aws::load_config().await
}

/// The DynamoDB store on the function's table, keeping audit records `AUDIT_RETENTION_DAYS`,
/// settling the signals outbox as this region (`REGION_CODE`: its own epoch of numbers).
/// It cannot read or write device keys: see [`dynamo_sealing`].
#[cfg(feature = "dynamodb")]
pub fn dynamo(aws: &aws_config::SdkConfig, base: &Base) -> crate::adapters::dynamodb::DynamoStore {
    let region = base.config.settings.regions.own.as_deref().unwrap_or("");
    crate::adapters::dynamodb::DynamoStore::from_config(aws, &base.config.table)
        .with_audit_retention_days(base.config.audit_retention_days)
        .with_signal_writer(region)
}

/// The store of the functions that read or write device keys (response validation, enrollment):
/// sealing with the data key of `SEALING_KEY_ID`. Without it, device keys can be neither read nor
/// written (503, with the reason in the log line).
#[cfg(feature = "sealing")]
pub fn dynamo_sealing(
    aws: &aws_config::SdkConfig,
    base: &Base,
) -> crate::adapters::dynamodb::DynamoStore {
    let store = dynamo(aws, base);
    match &base.config.sealing_key {
        Some(key) => store.with_sealing(crate::adapters::vault::KmsVault::from_config(
            aws,
            Some(key),
            &base.config.table,
        )),
        None => {
            tracing::error!(
                "SEALING_KEY_ID is not set: device keys can be neither read nor written"
            );
            store
        }
    }
}

/// The KMS challenge signer (key descriptions cached per process).
#[cfg(feature = "kms")]
pub fn kms(aws: &aws_config::SdkConfig) -> crate::adapters::kms::KmsSigner {
    crate::adapters::kms::KmsSigner::from_config(aws)
}

/// The challenge keys of a function that publishes or signs them: KMS keys, and challenge data
/// keys (`datakey:<kid>`) read from the table. Only the challenge function passes `unwrap`, and
/// only with `CHALLENGE_SIGNING=data-key` is a vault given (its IAM statement is the only one
/// that may `kms:Decrypt` with the data-key encryption context): elsewhere data keys are only
/// described (their public half, for the JWKS and `agent_config/`).
#[cfg(all(feature = "kms", feature = "dynamodb"))]
pub fn challenge_keys(
    aws: &aws_config::SdkConfig,
    base: &Base,
    store: &crate::adapters::dynamodb::DynamoStore,
    unwrap: bool,
) -> FunctionKeys {
    let vault = (unwrap
        && base.config.challenge_signing == crate::model::ChallengeSigning::DataKey)
        .then(|| {
            crate::adapters::kms_data_keys::KmsDataKeyVault::from_config(aws, &base.config.table)
        });
    crate::adapters::data_key_signer::ChallengeKeys {
        kms: kms(aws),
        data_keys: crate::adapters::data_key_signer::DataKeySigner::new(store.clone(), vault),
    }
}

/// The challenge keys a function holds ([`challenge_keys`]).
#[cfg(all(feature = "kms", feature = "dynamodb"))]
pub type FunctionKeys = crate::adapters::data_key_signer::ChallengeKeys<
    crate::adapters::kms::KmsSigner,
    crate::adapters::data_key_signer::DataKeySigner<
        crate::adapters::dynamodb::DynamoStore,
        crate::adapters::kms_data_keys::KmsDataKeyVault,
    >,
>;
