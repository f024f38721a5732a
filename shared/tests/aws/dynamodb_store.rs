//! The DynamoDB store against moto_server, through the real AWS SDK over HTTP.

use std::sync::Arc;

use super::dynamodb_stage::op;
use crate::aws_env::fresh_store;
use crate::common::T0;
pub(crate) use crate::contract::plan;
use endpoint_core::adapters::dynamodb::schema;
use endpoint_core::adapters::memory::FixedClock;
use endpoint_core::admin;
use endpoint_core::model::{Device, DeviceRef, DeviceToken, PendingChallenge, PlanStatus};
use endpoint_core::ports::{DeviceStore, EnrollmentStore, PlanStore};
use endpoint_core::ports::{Finish, Reserve, SystemRandom};
use endpoint_core::secret::Secret;
use endpoint_core::{CoreError, StoreError};

pub(crate) fn device(serial: &str, expires_at: Option<i64>) -> Device {
    Device {
        lock: None,
        owners: Vec::new(),
        id: "00000000-0000-4000-8000-000000000000".into(),
        identifier: serial.into(),
        name: format!("host-{serial}"),
        created_at: T0,
        expires_at,
    }
}

pub(crate) fn token(
    serial: &str,
    connector: &str,
    id: &str,
    key: &str,
    expires_at: Option<i64>,
) -> DeviceToken {
    DeviceToken {
        id: id.into(),
        device: serial.into(),
        connector: connector.into(),
        key: Secret::new(key),
        created_at: T0,
        expires_at,
    }
}

#[tokio::test]
async fn create_table_is_idempotent_with_ttl_and_index() {
    let store = fresh_store().await;
    assert!(
        !store.create_table().await.unwrap(),
        "second create reports existing"
    );
    assert_eq!(
        store.ttl_attribute().await.unwrap().as_deref(),
        Some(schema::TTL_ATTRIBUTE)
    );
}

#[tokio::test]
async fn plans_round_trip_and_expired_plans_are_filtered_on_read() {
    let store = fresh_store().await;
    let p = plan("p1", T0 + 900);
    store.create_plan(&p).await.unwrap();
    assert_eq!(
        store.create_plan(&p).await,
        Err(StoreError::AlreadyExists("plan p1".into()))
    );
    assert_eq!(store.get_plan("p1", T0).await.unwrap(), Some(p.clone()));
    assert_eq!(
        store.get_plan("p1", T0 + 899).await.unwrap(),
        Some(p.clone()),
        "1 s before expiry"
    );
    assert_eq!(
        store.get_plan("p1", T0 + 900).await.unwrap(),
        None,
        "at expiry, though the item exists"
    );
    assert_eq!(store.get_plan("nope", T0).await.unwrap(), None);

    // An item whose expires_at is already past when written: never served, never updated.
    let old = plan("old", T0 - 1);
    store.create_plan(&old).await.unwrap();
    assert_eq!(store.get_plan("old", T0).await.unwrap(), None);
    let c = PendingChallenge {
        jws: "a.b.c".into(),
        exp: T0 + 300,
    };
    assert!(!store.set_challenge("old", &c, T0).await.unwrap());
    assert!(matches!(
        store.reserve_challenge("old", 10, T0).await.unwrap(),
        Reserve::Refused(Some(_))
    ));
    assert!(!store
        .finish_plan("old", &Finish::Passed(None), None, T0, None, None)
        .await
        .unwrap());
}

#[tokio::test]
async fn challenge_reservations_are_bounded_and_conditional() {
    let store = Arc::new(fresh_store().await);
    store.create_plan(&plan("p", T0 + 900)).await.unwrap();
    // 12 concurrent reservations against a budget of 5: exactly 5 granted, counted 1..=5.
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.reserve_challenge("p", 5, T0).await.unwrap() })
        })
        .collect();
    let mut granted = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Reserve::Granted(p) => granted.push(p.challenges_issued),
            Reserve::Refused(Some(p)) => assert_eq!(p.challenges_issued, 5, "refused at the limit"),
            Reserve::Refused(None) => panic!("the plan exists"),
        }
    }
    granted.sort();
    assert_eq!(granted, [1, 2, 3, 4, 5]);

    // Storing the challenge needs a pending, unexpired plan; no item is ever created.
    let c = PendingChallenge {
        jws: "one".into(),
        exp: T0 + 300,
    };
    assert!(store.set_challenge("p", &c, T0).await.unwrap());
    assert_eq!(
        store
            .get_plan("p", T0)
            .await
            .unwrap()
            .unwrap()
            .pending_challenge,
        Some(c.clone())
    );
    assert!(
        !store.set_challenge("p", &c, T0 + 900).await.unwrap(),
        "expired"
    );
    assert!(!store.set_challenge("missing", &c, T0).await.unwrap());
    assert_eq!(
        store.reserve_challenge("missing", 5, T0).await.unwrap(),
        Reserve::Refused(None)
    );
    assert_eq!(
        store.get_plan("missing", T0).await.unwrap(),
        None,
        "no item is created"
    );

    // A final plan refuses and is returned as stored.
    store.create_plan(&plan("done", T0 + 900)).await.unwrap();
    assert!(store
        .finish_plan("done", &Finish::Denied("x".into()), None, T0, None, None)
        .await
        .unwrap());
    match store.reserve_challenge("done", 5, T0).await.unwrap() {
        Reserve::Refused(Some(p)) => {
            assert_eq!((p.status, p.challenges_issued), (PlanStatus::Denied, 0))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn finish_plan_passes_denies_and_consumes_once() {
    let store = fresh_store().await;
    store.create_plan(&plan("p", T0 + 900)).await.unwrap();
    let c = PendingChallenge {
        jws: "jws-1".into(),
        exp: T0 + 300,
    };
    store.set_challenge("p", &c, T0).await.unwrap();
    let dev = DeviceRef {
        id: None,
        identifier: "S1".into(),
        name: "host".into(),
    };
    assert!(!store
        .finish_plan(
            "p",
            &Finish::Passed(Some(dev.clone())),
            Some("other"),
            T0,
            None,
            None
        )
        .await
        .unwrap());
    assert!(store
        .finish_plan(
            "p",
            &Finish::Passed(Some(dev.clone())),
            Some("jws-1"),
            T0,
            None,
            None
        )
        .await
        .unwrap());
    assert!(!store
        .finish_plan(
            "p",
            &Finish::Passed(Some(dev.clone())),
            Some("jws-1"),
            T0,
            None,
            None
        )
        .await
        .unwrap());
    let got = store.get_plan("p", T0).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.device, got.pending_challenge),
        (PlanStatus::Passed, Some(dev), None)
    );

    store.create_plan(&plan("d", T0 + 900)).await.unwrap();
    assert!(store
        .finish_plan(
            "d",
            &Finish::Denied("Too many attempts".into()),
            None,
            T0,
            None,
            None
        )
        .await
        .unwrap());
    let got = store.get_plan("d", T0).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.denial.as_deref()),
        (PlanStatus::Denied, Some("Too many attempts"))
    );
}

#[tokio::test]
async fn twenty_concurrent_consumers_of_one_challenge_have_exactly_one_winner() {
    let store = Arc::new(fresh_store().await);
    store.create_plan(&plan("race", T0 + 900)).await.unwrap();
    let c = PendingChallenge {
        jws: "the-challenge".into(),
        exp: T0 + 300,
    };
    store.set_challenge("race", &c, T0).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let dev = DeviceRef {
                id: None,
                identifier: format!("S{i}"),
                name: "n".into(),
            };
            store
                .finish_plan(
                    "race",
                    &Finish::Passed(Some(dev)),
                    Some("the-challenge"),
                    T0,
                    None,
                    None,
                )
                .await
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(
        store.get_plan("race", T0).await.unwrap().unwrap().status,
        PlanStatus::Passed
    );
}

// Stages and connectors: the directory contract (tests/contract, run below).

#[tokio::test]
async fn enrollment_replaces_tokens_and_keeps_the_index_in_step() {
    let store = fresh_store().await;
    let k1 = "k1".repeat(64);
    let k2 = "k2".repeat(64);
    store
        .enroll(
            &device("S1", None),
            &token("S1", "c1", "t1", &k1, None),
            &op(),
        )
        .await
        .unwrap();
    store
        .enroll(
            &device("S1", None),
            &token("S1", "c2", "tc2", "other-connector", None),
            &op(),
        )
        .await
        .unwrap();
    let h1 = Secret::new(&k1).sha256_hex();
    assert_eq!(
        store
            .token_by_hash(&h1, T0)
            .await
            .unwrap()
            .unwrap()
            .token_id,
        "t1"
    );

    // Re-enrollment on c1: the old token and its index entry are gone; c2's token stays.
    let mut renamed = device("S1", None);
    renamed.name = "renamed".into();
    renamed.created_at = T0 + 50;
    store
        .enroll(&renamed, &token("S1", "c1", "t2", &k2, None), &op())
        .await
        .unwrap();
    let d = store.device_with_tokens("S1", T0).await.unwrap().unwrap();
    let mut toks: Vec<(&str, &str)> = d
        .tokens
        .iter()
        .map(|t| (t.connector.as_str(), t.id.as_str()))
        .collect();
    toks.sort();
    assert_eq!(toks, [("c1", "t2"), ("c2", "tc2")]);
    assert_eq!(
        d.device.name, "host-S1",
        "the name is kept on re-enrollment (as on the reference)"
    );
    assert_eq!(
        d.device.created_at, T0,
        "created_at is kept on re-enrollment"
    );
    assert_eq!(store.token_by_hash(&h1, T0).await.unwrap(), None);
    let r = store
        .token_by_hash(&Secret::new(&k2).sha256_hex(), T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.device.as_str(), r.connector.as_str(), r.token_id.as_str()),
        ("S1", "c1", "t2")
    );
    assert_eq!(
        d.tokens.iter().find(|t| t.id == "t2").unwrap().key.expose(),
        k2
    );
}

#[tokio::test]
async fn expired_devices_and_tokens_are_filtered_on_read() {
    let store = fresh_store().await;
    store
        .enroll(
            &device("S1", Some(T0 + 100)),
            &token("S1", "c1", "t1", "key-1", Some(T0 + 50)),
            &op(),
        )
        .await
        .unwrap();
    let h = Secret::new("key-1").sha256_hex();
    assert_eq!(
        store
            .device_with_tokens("S1", T0 + 49)
            .await
            .unwrap()
            .unwrap()
            .tokens
            .len(),
        1
    );
    assert_eq!(
        store
            .device_with_tokens("S1", T0 + 51)
            .await
            .unwrap()
            .unwrap()
            .tokens
            .len(),
        0
    );
    assert!(store.token_by_hash(&h, T0 + 49).await.unwrap().is_some());
    assert!(store.token_by_hash(&h, T0 + 51).await.unwrap().is_none());
    assert!(store.get_device("S1", T0 + 99).await.unwrap().is_some());
    assert!(store.get_device("S1", T0 + 101).await.unwrap().is_none());
    assert!(store
        .device_with_tokens("S1", T0 + 101)
        .await
        .unwrap()
        .is_none());
    assert!(store.list_devices(T0 + 101).await.unwrap().is_empty());
    assert_eq!(store.list_devices(T0).await.unwrap().len(), 1);
}

#[tokio::test]
async fn parallel_re_enrollments_leave_exactly_one_token() {
    let store = Arc::new(fresh_store().await);
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .enroll(
                    &device("S1", None),
                    &token("S1", "c1", &format!("t{i}"), &format!("key-{i}"), None),
                    &op(),
                )
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let d = store.device_with_tokens("S1", T0).await.unwrap().unwrap();
    assert_eq!(
        d.tokens.len(),
        1,
        "{:?}",
        d.tokens.iter().map(|t| &t.id).collect::<Vec<_>>()
    );
    let live: Vec<usize> = futures::future::join_all((0..6).map(|i| {
        let store = store.clone();
        async move {
            store
                .token_by_hash(&Secret::new(format!("key-{i}")).sha256_hex(), T0)
                .await
                .unwrap()
                .map(|_| i)
        }
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    assert_eq!(live.len(), 1, "exactly one index entry survives");
    assert_eq!(format!("t{}", live[0]), d.tokens[0].id);
}

/// A new connector named `c`.
async fn connector(
    store: &endpoint_core::adapters::dynamodb::DynamoStore,
) -> endpoint_core::model::Connector {
    admin::create_connector(
        store,
        &endpoint_core::ports::SystemClock,
        &SystemRandom,
        admin::NewConnector {
            name: "c".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// An enrollment sent again after its answer was lost (the same device token: token ids are
/// new for every enrollment) is done once: no error, one token, one use of its enrollment token.
#[tokio::test]
async fn an_enrollment_sent_again_is_done_once() {
    let store = fresh_store().await;
    let clock = FixedClock::new(T0);
    let c = connector(&store).await;
    let new = |connector: &str| admin::NewEnrollmentToken {
        connector: connector.into(),
        name: "laptops".into(),
        lifetime: Some(3600),
        max_uses: None,
        serial: None,
        owner: None,
    };
    let (_, key) = admin::create_enrollment_token(&store, &clock, &SystemRandom, new(&c.id))
        .await
        .unwrap();
    let grant = endpoint_core::ports::EnrollGrant {
        existing: endpoint_core::model::ExistingSerial::Approved,
        enrollment_token: Some(key.sha256_hex()),
        now: T0,
        audit: None,
    };
    let (d, t) = (
        device("AGAIN", None),
        token("AGAIN", &c.id, "t1", "k1", None),
    );
    let first = store.enroll(&d, &t, &grant).await.unwrap();
    let again = store.enroll(&d, &t, &grant).await.unwrap();
    assert_eq!(
        first,
        endpoint_core::ports::EnrollOutcome::Enrolled {
            existed: false,
            replaced: false
        }
    );
    assert!(
        matches!(again, endpoint_core::ports::EnrollOutcome::Enrolled { .. }),
        "{again:?}"
    );
    let tokens = store
        .device_with_tokens("AGAIN", T0)
        .await
        .unwrap()
        .unwrap()
        .tokens;
    assert_eq!(tokens.len(), 1);
    let used = store
        .enrollment_token_by_hash(&key.sha256_hex())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(used.uses, 1, "counted once");
}

#[tokio::test]
async fn revoke_and_delete() {
    let store = fresh_store().await;
    store
        .enroll(
            &device("S1", None),
            &token("S1", "c1", "t1", "key-1", None),
            &op(),
        )
        .await
        .unwrap();
    assert_eq!(store.revoke_tokens("S1", "c1").await.unwrap(), 1);
    assert_eq!(store.revoke_tokens("S1", "c1").await.unwrap(), 0);
    assert!(store
        .token_by_hash(&Secret::new("key-1").sha256_hex(), T0)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .device_with_tokens("S1", T0)
        .await
        .unwrap()
        .unwrap()
        .tokens
        .is_empty());
    store
        .enroll(
            &device("S1", None),
            &token("S1", "c1", "t2", "key-2", None),
            &op(),
        )
        .await
        .unwrap();
    assert!(store.delete_device("S1").await.unwrap());
    assert!(!store.delete_device("S1").await.unwrap());
    assert!(store.get_device("S1", T0).await.unwrap().is_none());
    assert!(store
        .token_by_hash(&Secret::new("key-2").sha256_hex(), T0)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn enrollment_tokens_by_hash_with_expiry() {
    let store = fresh_store().await;
    let clock = FixedClock::new(T0);
    let c = connector(&store).await;
    let new = |connector: &str| admin::NewEnrollmentToken {
        connector: connector.into(),
        name: "laptops".into(),
        lifetime: Some(3600),
        max_uses: None,
        serial: None,
        owner: None,
    };
    let (t, key) = admin::create_enrollment_token(&store, &clock, &SystemRandom, new(&c.id))
        .await
        .unwrap();
    assert_eq!(key.expose().len(), 60);
    assert_ne!(t.key_sha256, key.expose(), "only the hash is stored");
    let got = store
        .enrollment_token_by_hash(&key.sha256_hex())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, t);
    assert_eq!(got.expires_at, Some(T0 + 3600));
    assert!(store
        .enrollment_token_by_hash(&"0".repeat(64))
        .await
        .unwrap()
        .is_none());
    let unknown = admin::create_enrollment_token(&store, &clock, &SystemRandom, new("nope")).await;
    assert!(matches!(unknown, Err(CoreError::NotFound(_))));
}
