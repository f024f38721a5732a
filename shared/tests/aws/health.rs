//! `/health`'s decision over the real adapters against moto_server: the table's read and the
//! key's `DescribeKey` through the AWS SDK; a key disabled in KMS, a symmetric key, a missing
//! key and a table that does not exist each make the region unavailable, in generic terms.

use crate::aws_env::{config, fresh_store, kms, sealing_key};
use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::adapters::memory::FixedClock;
use endpoint_core::health::{Check, CheckState, Health};
use endpoint_core::protocol::keys::KeySpec;

async fn report(store: &DynamoStore, key: &str) -> endpoint_core::health::Report {
    let signer = kms().await;
    Health::new(Some(key.into()))
        .report(store, &signer, store, &FixedClock::new(1_000_000))
        .await
}

#[tokio::test]
async fn health_checks_the_table_and_the_key_through_the_sdk() {
    let store = fresh_store().await;
    let signer = kms().await;
    let key = signer
        .create_key(KeySpec::EccNistP256, "health")
        .await
        .unwrap();
    let ok = report(&store, &key).await;
    assert!(ok.healthy(), "{ok:?}");

    // Disabled in KMS (moto still signs with it: DescribeKey is what sees it).
    signer
        .client()
        .disable_key()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    let disabled = report(&store, &key).await;
    assert_eq!(
        disabled.state(Check::ChallengeKey),
        Some(CheckState::Unusable)
    );
    assert_eq!(disabled.state(Check::Table), Some(CheckState::Ok));

    // A key that cannot sign, and one that does not exist.
    let symmetric = sealing_key().await;
    assert_eq!(
        report(&store, &symmetric).await.state(Check::ChallengeKey),
        Some(CheckState::Unusable)
    );
    assert_eq!(
        report(&store, "alias/no-such-key")
            .await
            .state(Check::ChallengeKey),
        Some(CheckState::Missing)
    );

    // A table that does not exist: the read fails, the region is unavailable.
    let gone = DynamoStore::from_config(&config().await, "no-such-table");
    let missing_table = report(&gone, &key).await;
    assert_eq!(
        missing_table.state(Check::Table),
        Some(CheckState::Unavailable)
    );
}
