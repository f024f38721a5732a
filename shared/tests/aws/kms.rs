//! The KMS signer against moto_server, through the real AWS SDK over HTTP: every key spec signs
//! challenges that an independent verifier accepts with the JWK this code publishes.

use std::time::{Duration, Instant};

use crate::aws_env::{config, dead_kms, kms};
use crate::common::{verify_independently, T0};
use endpoint_core::adapters::instrument::CallCounter;
use endpoint_core::adapters::kms::KmsSigner;
use endpoint_core::adapters::memory::{FixedClock, MemoryStore};
use endpoint_core::admin;
use endpoint_core::model::{Connector, StageMode};
use endpoint_core::ports::SystemRandom;
use endpoint_core::ports::{ChallengeSigner, Directory};
use endpoint_core::protocol::challenge::CHALLENGE_LIFETIME;
use endpoint_core::protocol::keys::KeySpec;
use endpoint_core::settings::{Env, Settings};
use endpoint_core::stage::{self, Outcome};
use endpoint_core::{CoreError, SignerError};

async fn counted_kms() -> (KmsSigner, CallCounter) {
    let cfg = config().await;
    let counter = CallCounter::default();
    let client = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(&cfg)
            .interceptor(counter.clone())
            .build(),
    );
    (KmsSigner::new(client), counter)
}

/// A connector on `key`, a required stage, a plan: the challenge the plan mints through KMS.
async fn challenge_with(signer: &KmsSigner, key: &str) -> (String, Connector) {
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
    let plan = stage::create_plan(&store, &env, &s.id, None, None)
        .await
        .unwrap()
        .id;
    match stage::executor_get(&store, signer, &env, &plan, None)
        .await
        .unwrap()
    {
        Outcome::Challenge { jws, .. } => (jws, c),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn every_key_spec_signs_challenges_an_independent_verifier_accepts() {
    let signer = kms().await;
    for (spec, alg) in [
        (KeySpec::EccNistP256, "ES256"),
        (KeySpec::EccNistP384, "ES384"),
        (KeySpec::EccNistP521, "ES512"),
        (KeySpec::Rsa2048, "RS256"),
        (KeySpec::Rsa3072, "RS256"),
        (KeySpec::Rsa4096, "RS256"),
    ] {
        let key = signer.create_key(spec, "test").await.unwrap();
        let tags = signer
            .client()
            .list_resource_tags()
            .key_id(&key)
            .send()
            .await
            .unwrap();
        let tag = tags
            .tags()
            .iter()
            .find(|t| t.tag_key() == "endpoint-stage")
            .map(|t| t.tag_value());
        assert_eq!(
            tag,
            Some("challenge"),
            "the tag the functions' IAM policies require"
        );
        let d = signer.describe(&key).await.unwrap();
        assert_eq!(d.alg.as_str(), alg, "{spec:?}");
        let (jws, c) = challenge_with(&signer, &key).await;
        // The JWK as the JWKS route publishes it, and the challenge verified against it.
        let store = MemoryStore::new();
        store.put_connector(&c).await.unwrap();
        let jwks = stage::connector_jwks(&store, &signer, &FixedClock::new(T0), &c.id)
            .await
            .unwrap();
        assert_eq!(jwks.keys.len(), 1);
        let claims = verify_independently(&jws, &jwks.keys[0]);
        assert_eq!(
            claims["exp"].as_i64(),
            Some(T0 + CHALLENGE_LIFETIME),
            "{spec:?}"
        );
    }
}

#[tokio::test]
async fn key_description_is_cached_and_kid_is_stable_across_processes() {
    let (signer, counter) = counted_kms().await;
    let key = signer
        .create_key(KeySpec::EccNistP256, "test")
        .await
        .unwrap();
    counter.reset();
    let first = signer.describe(&key).await.unwrap();
    let again = signer.describe(&key).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(
        counter.calls(),
        ["GetPublicKey"],
        "fetched once per process"
    );

    // A challenge costs exactly one Sign when warm; the JWKS costs no KMS call.
    let (_, c) = challenge_with(&signer, &key).await;
    assert_eq!(counter.count("Sign"), 1);
    assert_eq!(counter.count("GetPublicKey"), 1);
    let store = MemoryStore::new();
    store.put_connector(&c).await.unwrap();
    counter.reset();
    let jwks = stage::connector_jwks(&store, &signer, &FixedClock::new(T0), &c.id)
        .await
        .unwrap();
    assert_eq!(jwks.keys[0].kid, first.kid);
    assert!(
        counter.calls().is_empty(),
        "warm JWKS made KMS calls: {:?}",
        counter.calls()
    );

    // Another process (a new signer) derives the same kid from the same key.
    let other = kms().await;
    assert_eq!(other.describe(&key).await.unwrap().kid, first.kid);
}

#[tokio::test]
async fn keys_may_be_named_by_id_arn_alias_and_alias_arn() {
    let signer = kms().await;
    let id = signer
        .create_key(KeySpec::EccNistP256, "test")
        .await
        .unwrap();
    let alias = format!("alias/endpoint-test-{}", crate::common::rand_suffix());
    signer.set_alias(&alias, &id).await.unwrap();
    let arn = signer
        .client()
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    let alias_arn = arn.replace(&format!("key/{id}"), &alias);
    let kid = signer.describe(&id).await.unwrap().kid;
    for name in [&arn, &alias, &alias_arn] {
        let fresh = kms().await;
        assert_eq!(fresh.describe(name).await.unwrap().kid, kid, "{name}");
        let (jws, _) = challenge_with(&fresh, name).await;
        verify_independently(&jws, &fresh.describe(name).await.unwrap().jwk);
    }
}

#[tokio::test]
async fn missing_and_unusable_keys_are_typed_errors() {
    let signer = kms().await;
    let missing = signer
        .describe("11111111-2222-3333-4444-555555555555")
        .await;
    assert!(
        matches!(missing, Err(SignerError::KeyNotFound(_))),
        "{missing:?}"
    );
    let missing_alias = signer.describe("alias/does-not-exist").await;
    assert!(
        matches!(missing_alias, Err(SignerError::KeyNotFound(_))),
        "{missing_alias:?}"
    );

    // A symmetric ENCRYPT_DECRYPT key cannot sign challenges.
    let sym = signer
        .client()
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    let r = signer.describe(&sym).await;
    assert!(matches!(r, Err(SignerError::KeyUnusable { .. })), "{r:?}");
    // And through the core: a 503, never a panic; the detail (what the log line says) names the
    // signing key, the public message names nothing internal.
    let e: CoreError = missing.unwrap_err().into();
    assert!(e.to_string().contains("signing key"), "{e}");
    let reply = endpoint_core::edge::error_reply(&e);
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.body["message"],
        endpoint_core::edge::UNAVAILABLE_MESSAGE
    );
}

#[tokio::test]
async fn a_dead_emulator_is_unavailable_in_bounded_time() {
    let signer = dead_kms().await;
    let started = Instant::now();
    let r = signer.sign("alias/x", b"m").await;
    assert!(matches!(r, Err(SignerError::Unavailable(_))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// An alias re-pointed at another key: a warm signer keeps the cached key (consistent kid and
/// signature) until the alias refresh period ends, then describes and signs with the new key.
/// Key ids never re-point and stay cached.
#[tokio::test]
async fn an_alias_re_pointed_at_another_key_is_picked_up_after_the_refresh_period() {
    let signer = kms().await;
    let a = signer
        .create_key(KeySpec::EccNistP256, "alias a")
        .await
        .unwrap();
    let b = signer
        .create_key(KeySpec::EccNistP384, "alias b")
        .await
        .unwrap();
    let alias = format!("alias/e2e-rotate-{}", crate::common::rand_suffix());
    signer.set_alias(&alias, &a).await.unwrap();
    let kid_a = signer.describe(&a).await.unwrap().kid;
    let kid_b = signer.describe(&b).await.unwrap().kid;
    assert_eq!(signer.describe(&alias).await.unwrap().kid, kid_a);
    signer.set_alias(&alias, &b).await.unwrap();
    // Within the refresh period: still the key the alias named when it was described.
    assert_eq!(signer.describe(&alias).await.unwrap().kid, kid_a);
    let sig = signer.sign(&alias, b"m").await.unwrap();
    assert_eq!(sig.kid, kid_a, "signature and kid always agree");

    let fresh = signer.clone().with_alias_refresh(Duration::ZERO);
    assert_eq!(fresh.describe(&alias).await.unwrap().kid, kid_b);
    let sig = fresh.sign(&alias, b"m").await.unwrap();
    assert_eq!((sig.kid, sig.alg.as_str()), (kid_b, "ES384"));
    assert!(!endpoint_core::adapters::kms::is_alias(&a));
    assert!(endpoint_core::adapters::kms::is_alias(&alias));
    assert!(endpoint_core::adapters::kms::is_alias(
        "arn:aws:kms:us-east-1:123456789012:alias/x"
    ));
}

/// A challenge key made for a stack carries both tags the functions' IAM policies require.
#[tokio::test]
async fn a_stack_key_is_tagged_as_a_challenge_key_of_that_stack() {
    let signer = crate::aws_env::kms().await;
    let id = signer
        .create_stack_key(KeySpec::EccNistP256, "tagged", Some("endpoint-stage-prod"))
        .await
        .unwrap();
    let tags = signer
        .client()
        .list_resource_tags()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap_or_default();
    let mut pairs: Vec<(String, String)> = tags
        .iter()
        .map(|t| (t.tag_key().to_string(), t.tag_value().to_string()))
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        [
            ("endpoint-stage".to_string(), "challenge".to_string()),
            ("endpoint-stage:stack".into(), "endpoint-stage-prod".into())
        ]
    );
}
