//! The `data-key` challenge signing mode (issue 31.4) against moto_server, through the real
//! AWS SDK: KMS makes the key pair (`GenerateDataKeyPairWithoutPlaintext`, emulated by
//! scripts/moto_server.py), the record goes to the table, the private key is unwrapped once per
//! instance with the data-key encryption context, and the challenges it signs verify with a
//! standard JWT library (jsonwebtoken) and an independent P-256 verifier against the JWK the
//! JWKS route publishes.

use crate::aws_env::{config, fresh_store};
use crate::common::{verify_independently, T0};
use endpoint_core::adapters::data_key_signer::{ChallengeKeys, DataKeySigner};
use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::adapters::instrument::CallCounter;
use endpoint_core::adapters::kms::KmsSigner;
use endpoint_core::adapters::kms_data_keys::KmsDataKeyVault;
use endpoint_core::adapters::memory::{FixedClock, MemoryStore};
use endpoint_core::admin;
use endpoint_core::model::{data_key_reference, StageMode, DATA_KEY_PURPOSE};
use endpoint_core::ports::SystemRandom;
use endpoint_core::ports::{ChallengeSigner, DataKeyRecords, DataKeyVault};
use endpoint_core::settings::{Env, Settings};
use endpoint_core::stage::{self, Outcome};
use endpoint_core::SignerError;

type Keys = ChallengeKeys<KmsSigner, DataKeySigner<DynamoStore, KmsDataKeyVault>>;

async fn counted_client() -> (aws_sdk_kms::Client, CallCounter) {
    let cfg = config().await;
    let counter = CallCounter::default();
    let client = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(&cfg)
            .interceptor(counter.clone())
            .build(),
    );
    (client, counter)
}

fn keys(client: &aws_sdk_kms::Client, store: &DynamoStore, unwrap: bool) -> Keys {
    let vault = unwrap.then(|| KmsDataKeyVault::new(client.clone(), store.table()));
    ChallengeKeys {
        kms: KmsSigner::new(client.clone()),
        data_keys: DataKeySigner::new(store.clone(), vault),
    }
}

/// A table, a wrapping key and a data key in it: (store, vault, reference).
async fn data_key(client: &aws_sdk_kms::Client) -> (DynamoStore, KmsDataKeyVault, String) {
    let store = fresh_store().await;
    let vault = KmsDataKeyVault::new(client.clone(), store.table());
    let wrapping = vault
        .create_wrapping_key("test wrapping key")
        .await
        .unwrap();
    let new = admin::create_data_key(&store, &vault, &wrapping, T0)
        .await
        .unwrap();
    assert_eq!(new.reference, data_key_reference(&new.kid));
    (store, vault, new.reference)
}

/// `n` challenges of one plan-per-challenge flow on a connector signing with `key`; the
/// connector (for its JWKS) and the challenges.
async fn challenges<K: ChallengeSigner>(
    signer: &K,
    key: &str,
    n: usize,
) -> (MemoryStore, String, Vec<String>) {
    let store = MemoryStore::new();
    let clock = FixedClock::new(T0);
    let settings = Settings::default();
    let env = Env {
        clock: &clock,
        rng: &SystemRandom,
        settings: &settings,
        caller: &endpoint_core::audit::Caller::UNKNOWN,
    };
    let c = admin::create_connector(
        &store,
        &endpoint_core::ports::SystemClock,
        &SystemRandom,
        admin::NewConnector {
            name: "c".into(),
            challenge_key: Some(key.into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let s = admin::create_stage(&store, &SystemRandom, &c.id, StageMode::Required, &[])
        .await
        .unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let plan = stage::create_plan(&store, &env, &s.id, None, None)
            .await
            .unwrap()
            .id;
        match stage::executor_get(&store, signer, &env, &plan, None)
            .await
            .unwrap()
        {
            Outcome::Challenge { jws, .. } => out.push(jws),
            other => panic!("{other:?}"),
        }
    }
    (store, c.id, out)
}

#[tokio::test]
async fn data_key_challenges_verify_with_jsonwebtoken_and_cost_one_decrypt_per_instance() {
    let (client, counter) = counted_client().await;
    let (table, _, reference) = data_key(&client).await;
    let signer = keys(&client, &table, true);
    counter.reset();
    let (store, connector, jwss) = challenges(&signer, &reference, 25).await;
    assert_eq!(
        counter.calls(),
        ["Decrypt"],
        "25 challenges: one unwrap, no KMS Sign"
    );
    assert_eq!(signer.data_keys.unwrapped_keys(), 1);

    // The JWKS as a function that cannot unwrap publishes it (the JWKS and agent functions).
    let publisher = keys(&client, &table, false);
    let jwks = stage::connector_jwks(&store, &publisher, &FixedClock::new(T0), &connector)
        .await
        .unwrap();
    assert_eq!(jwks.keys.len(), 1);
    let jwk = &jwks.keys[0];
    assert_eq!(Some(jwk.kid.as_str()), reference.strip_prefix("datakey:"));
    let decoding = jsonwebtoken::DecodingKey::from_ec_components(
        jwk.x.as_deref().unwrap(),
        jwk.y.as_deref().unwrap(),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.validate_aud = false;
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    for jws in &jwss {
        let header = jsonwebtoken::decode_header(jws).unwrap();
        assert_eq!(header.kid.as_deref(), Some(jwk.kid.as_str()));
        let token = jsonwebtoken::decode::<serde_json::Value>(jws, &decoding, &validation).unwrap();
        assert_eq!(token.claims["exp"].as_i64(), Some(T0 + 300));
        verify_independently(jws, jwk);
    }
    // A tampered challenge does not verify (the check above can fail).
    let mut flipped = jwss[0].clone().into_bytes();
    let at = flipped.len() - 5;
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    assert!(jsonwebtoken::decode::<serde_json::Value>(&flipped, &decoding, &validation).is_err());

    // A new instance unwraps once, however many first requests arrive together.
    let cold = keys(&client, &table, true);
    counter.reset();
    let signs: Vec<_> = (0..8).map(|_| cold.sign(&reference, b"x.y")).collect();
    for s in futures::future::join_all(signs).await {
        s.unwrap();
    }
    assert_eq!(counter.count("Decrypt"), 1, "{:?}", counter.calls());
    assert_eq!(counter.count("Sign"), 0);
}

#[tokio::test]
async fn a_data_key_opens_only_with_its_encryption_context_and_its_own_record() {
    let (client, _) = counted_client().await;
    let (table, vault, reference) = data_key(&client).await;
    let kid = reference.strip_prefix("datakey:").unwrap();
    let record = table.get_data_key(kid).await.unwrap().unwrap();

    // Control: the right context opens it.
    assert!(vault.unwrap_private_key(&record).await.is_ok());
    // Another table's context (the `table` entry differs): refused by KMS.
    let other_table = KmsDataKeyVault::new(client.clone(), "another-table");
    assert!(matches!(
        other_table.unwrap_private_key(&record).await,
        Err(SignerError::KeyUnusable { .. })
    ));
    // The device-token sealing context, or none at all: refused.
    for context in [
        vec![
            ("purpose", "endpoint-stage device token keys"),
            ("table", table.table()),
        ],
        vec![],
    ] {
        let mut decrypt = client
            .decrypt()
            .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(
                record.wrapped_private_key.clone(),
            ));
        for (k, v) in context {
            decrypt = decrypt.encryption_context(k, v);
        }
        assert!(
            decrypt.send().await.is_err(),
            "a wrong context opens nothing"
        );
    }
    let right = client
        .decrypt()
        .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(
            record.wrapped_private_key.clone(),
        ))
        .encryption_context(DATA_KEY_PURPOSE.0, DATA_KEY_PURPOSE.1)
        .encryption_context("table", table.table())
        .send()
        .await;
    assert!(right.is_ok(), "the data-key context opens it");

    // A record whose wrapped private key is another key's: the signer refuses to sign.
    let wrapping = record.wrapping_key.clone();
    let second = admin::create_data_key(&table, &vault, &wrapping, T0)
        .await
        .unwrap();
    let second_record = table.get_data_key(&second.kid).await.unwrap().unwrap();
    let swapped = endpoint_core::model::DataKeyRecord {
        kid: "swapped".into(),
        wrapped_private_key: second_record.wrapped_private_key,
        ..record.clone()
    };
    let memory = endpoint_core::adapters::memory::MemoryDataKeys::new();
    memory
        .put_data_key(&endpoint_core::model::DataKeyRecord {
            kid: record.kid.clone(),
            ..swapped
        })
        .await
        .unwrap();
    let mixed = DataKeySigner::new(memory, Some(vault.clone()));
    match mixed.sign(&reference, b"x.y").await {
        Err(SignerError::KeyUnusable { reason, .. }) => {
            assert!(reason.contains("not the record's key pair"), "{reason}")
        }
        other => panic!("{other:?}"),
    }

    // A function without the vault describes the key and cannot sign with it.
    let publisher = keys(&client, &table, false);
    assert_eq!(
        publisher.describe(&reference).await.unwrap().kid,
        record.kid
    );
    assert!(matches!(
        publisher.sign(&reference, b"x.y").await,
        Err(SignerError::KeyUnusable { .. })
    ));
    // An unknown data key is not found.
    assert!(matches!(
        publisher.describe("datakey:unknown").await,
        Err(SignerError::KeyNotFound(_))
    ));
}
