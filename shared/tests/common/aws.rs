//! Helpers for the tests against moto_server through the real AWS SDK. `make test` starts moto
//! (scripts/with-moto.sh) and exports AWS_ENDPOINT_URL; without it these tests fail loudly
//! rather than skip, so a CI run can never pass them silently.
#![allow(dead_code)]

use endpoint_core::adapters::aws::load_config;
use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::adapters::kms::KmsSigner;

pub use crate::emulator_env::require_emulator;

pub async fn config() -> aws_config::SdkConfig {
    require_emulator();
    load_config().await
}

/// A fresh table with a unique name, created through the adapter (the same code as `init`).
pub async fn fresh_store() -> DynamoStore {
    let cfg = config().await;
    let name = format!(
        "test-{}",
        endpoint_core::ports::random_alnum(&endpoint_core::ports::SystemRandom, 10)
    );
    let key = sealing_key().await;
    let store = DynamoStore::from_config(&cfg, &name).with_sealing(
        endpoint_core::adapters::vault::KmsVault::from_config(&cfg, Some(&key), &name),
    );
    assert!(
        store.create_table().await.expect("create table"),
        "new table"
    );
    assert!(
        store.ensure_keyring().await.expect("data key"),
        "new data key"
    );
    store
}

/// A new symmetric KMS key for sealing device token keys.
pub async fn sealing_key() -> String {
    endpoint_core::adapters::vault::KmsVault::create_key(&config().await, "test sealing key")
        .await
        .expect("create sealing key")
}

pub async fn kms() -> KmsSigner {
    KmsSigner::from_config(&config().await)
}

/// The URL of a closed port on loopback: an emulator that is not running. Set it on the
/// service's own config builder, which takes precedence over `AWS_ENDPOINT_URL`.
pub fn dead_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
}

pub async fn dead_store() -> DynamoStore {
    let cfg = config().await;
    let conf = aws_sdk_dynamodb::config::Builder::from(&cfg)
        .endpoint_url(dead_endpoint())
        .build();
    DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(conf), "t")
}

pub async fn dead_kms() -> KmsSigner {
    let cfg = config().await;
    let conf = aws_sdk_kms::config::Builder::from(&cfg)
        .endpoint_url(dead_endpoint())
        .build();
    KmsSigner::new(aws_sdk_kms::Client::from_conf(conf))
}
