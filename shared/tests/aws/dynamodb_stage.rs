//! The stage, the port contracts and the audit trail over the DynamoDB store on moto_server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::aws_env::{config, dead_store, fresh_store};
use crate::common::{KEY, T0};
use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::adapters::local_signer::LocalSigner;
use endpoint_core::adapters::memory::FixedClock;
use endpoint_core::admin;
use endpoint_core::model::{FactsSnapshot, PlanStatus, Stage, StageMode};
use endpoint_core::ports::{AuditLog, DeviceStore, Directory, PlanStore};
use endpoint_core::ports::{EnrollGrant, Finish, SystemRandom};
use endpoint_core::protocol::keys::KeySpec;
use endpoint_core::protocol::response::sign_response;
use endpoint_core::settings::{Env, Settings};
use endpoint_core::stage::{self, Outcome};
use endpoint_core::{CoreError, StoreError};

use super::dynamodb_store::plan;

/// 20 concurrent submissions of the valid response `good` to `plan`: one consumption, all see
/// the pass.
async fn twenty_concurrent_submissions(
    store: &Arc<DynamoStore>,
    signer: &Arc<LocalSigner>,
    plan: &str,
    good: &str,
) {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (store, signer, plan, good) = (
            store.clone(),
            signer.clone(),
            plan.to_string(),
            good.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let clock = FixedClock::new(T0);
            let settings = Settings::default();
            let env = Env {
                clock: &clock,
                rng: &SystemRandom,
                settings: &settings,
                caller: &endpoint_core::audit::Caller::UNKNOWN,
            };
            let minter = endpoint_core::minter::SigningMinter {
                store: &*store,
                signer: &*signer,
                env: &env,
            };
            stage::executor_post(&*store, &minter, &env, &plan, Some(&good)).await
        }));
    }
    for t in tasks {
        assert_eq!(
            t.await.unwrap().unwrap(),
            Outcome::Redirect {
                to: "/next".into(),
                compliance: None,
            }
        );
    }
}

/// The whole stage over DynamoDB (the local signer stands in for KMS here; aws_kms tests KMS).
#[tokio::test]
async fn the_stage_end_to_end_over_dynamodb() {
    let store = Arc::new(fresh_store().await);
    let mut signer = LocalSigner::new();
    signer.generate(KEY, KeySpec::EccNistP256).unwrap();
    let signer = Arc::new(signer);
    let clock = FixedClock::new(T0);
    let settings = Settings::default();
    let env = Env {
        clock: &clock,
        rng: &SystemRandom,
        settings: &settings,
        caller: &endpoint_core::audit::Caller::UNKNOWN,
    };
    let c = admin::create_connector(
        &*store,
        &endpoint_core::ports::SystemClock,
        &SystemRandom,
        admin::NewConnector {
            name: "c".into(),
            challenge_key: Some(KEY.into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let s = admin::create_stage(&*store, &SystemRandom, &c.id, StageMode::Required, &[])
        .await
        .unwrap();
    let (_, key) = admin::enroll_device(&*store, &clock, &SystemRandom, &c.id, "SERIAL1", "host")
        .await
        .unwrap();

    // Invalid, then valid: a retry challenge, then the pass.
    let plan = stage::create_plan(&*store, &env, &s.id, Some("/next"), None)
        .await
        .unwrap()
        .id;
    let Outcome::Challenge { jws, .. } = stage::executor_get(&*store, &*signer, &env, &plan, None)
        .await
        .unwrap()
    else {
        panic!()
    };
    let bad = sign_response("SERIAL1", "wrong", &jws, T0);
    let minter = endpoint_core::minter::SigningMinter {
        store: &*store,
        signer: &*signer,
        env: &env,
    };
    let Outcome::Challenge {
        jws,
        invalid_response: true,
        ..
    } = stage::executor_post(&*store, &minter, &env, &plan, Some(&bad))
        .await
        .unwrap()
    else {
        panic!()
    };
    let good = sign_response("SERIAL1", key.expose(), &jws, T0);

    twenty_concurrent_submissions(&store, &signer, &plan, &good).await;
    let p = stage::read_plan(&*store, &clock, &plan).await.unwrap();
    assert_eq!(p.status, PlanStatus::Passed);
    assert_eq!(p.device.unwrap().identifier, "SERIAL1");
    assert_eq!(p.challenges_issued, 2);
}

#[tokio::test]
async fn a_missing_table_and_a_dead_emulator_are_typed_errors_in_bounded_time() {
    let cfg = config().await;
    let missing = DynamoStore::from_config(&cfg, "no-such-table");
    assert_eq!(
        missing.get_plan("p", T0).await,
        Err(StoreError::Unavailable("table not found".into()))
    );

    let dead = dead_store().await;
    let started = Instant::now();
    let r = dead.get_plan("p", T0).await;
    assert!(
        matches!(&r, Err(StoreError::Unavailable(why)) if why == "connection failed"),
        "{r:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded: {:?}",
        started.elapsed()
    );
    // Through the core: a 503-class error, never a panic.
    let e: CoreError = dead
        .put_stage(&Stage {
            redirect_origins: None,
            audiences: Vec::new(),
            help: None,
            policy: None,
            id: "s".into(),
            connector: "c".into(),
            mode: StageMode::Optional,
        })
        .await
        .unwrap_err()
        .into();
    assert!(matches!(e, CoreError::Unavailable(_)));
    assert_eq!(endpoint_core::edge::error_reply(&e).status, 503);
}

/// Facts snapshots are stored compressed in one item (a DynamoDB item holds at most 400 KB):
/// the raw item holds the deflate bytes as a binary attribute and the truncated flag, and a
/// 1.6 MiB document that cannot fit comes back as the bounded subset, marked truncated.
#[tokio::test]
async fn facts_snapshots_are_stored_compressed_and_marked_when_truncated() {
    use endpoint_core::facts;
    let store = fresh_store().await;
    let desktop: Vec<serde_json::Value> = (0..4000)
        .map(|i| serde_json::json!({"id": i, "name": format!("/usr/bin/app --instance {i} --profile default"), "user": "alice"}))
        .collect();
    let doc = serde_json::json!({"hardware": {"serial": "VMware-56 4d"}, "processes": desktop});
    let stored = facts::store(&facts::Facts::from(doc.clone()));
    assert!(!stored.truncated);
    let snapshot = FactsSnapshot {
        device: "VMware-56 4d".into(),
        connector: "c1".into(),
        facts_deflate: stored.deflate.clone(),
        truncated: false,
        created_at: T0,
        expires_at: T0 + 100,
    };
    store.put_facts(&snapshot).await.unwrap();
    let back = store
        .latest_facts("VMware-56 4d", T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, snapshot);
    assert_eq!(
        facts::load(&back.facts_deflate).map(|f| f.to_value()),
        Some(doc)
    );

    // The raw item: binary deflate bytes, no plain JSON attribute.
    let cfg = crate::aws_env::config().await;
    let raw = aws_sdk_dynamodb::Client::new(&cfg)
        .get_item()
        .table_name(store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("FACTS#VMware-56 4d".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("SNAPSHOT#c1".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(raw["facts_deflate"].as_b().is_ok());
    assert!(!raw.contains_key("facts"));
    assert_eq!(raw["truncated"].as_bool(), Ok(&false));
}

/// An incompressible document: the bounded subset, marked truncated, still one item.
#[tokio::test]
async fn incompressible_facts_are_stored_as_a_bounded_subset() {
    use endpoint_core::facts;
    let store = fresh_store().await;
    let noise: Vec<serde_json::Value> = (0u32..3000)
        .map(|i| {
            let mut s = String::new();
            let mut block = <sha2::Sha256 as sha2::Digest>::digest(i.to_le_bytes());
            while s.len() < 500 {
                s.push_str(&hex::encode(block));
                block = <sha2::Sha256 as sha2::Digest>::digest(block);
            }
            serde_json::json!({"name": s, "source": "deb"})
        })
        .collect();
    let stored = facts::store(&facts::Facts::from(
        serde_json::json!({"hardware": {"serial": "T"}, "software": noise}),
    ));
    assert!(stored.truncated);
    store
        .put_facts(&FactsSnapshot {
            device: "T".into(),
            connector: "c1".into(),
            facts_deflate: stored.deflate,
            truncated: true,
            created_at: T0,
            expires_at: T0 + 100,
        })
        .await
        .unwrap();
    let back = store.latest_facts("T", T0).await.unwrap().unwrap();
    assert!(back.truncated);
    assert!(back.facts_deflate.len() <= facts::MAX_STORED_FACTS);
}

// ---- the port contracts (tests/contract), the same functions port_contract.rs runs against
// the in-memory store.

#[tokio::test]
async fn dynamodb_plans_keep_the_plan_contract() {
    crate::contract::plans(&fresh_store().await).await;
}

#[tokio::test]
async fn dynamodb_directory_keeps_the_directory_contract() {
    crate::contract::directory(&fresh_store().await).await;
}

#[tokio::test]
async fn dynamodb_devices_keep_the_device_contract() {
    crate::contract::devices(&fresh_store().await).await;
}

#[tokio::test]
async fn dynamodb_enrollments_keep_the_enrollment_contract() {
    crate::contract::enrollments(&fresh_store().await).await;
}

#[tokio::test]
async fn dynamo_enrollment_grants_keep_the_contract() {
    crate::contract::enrollment_grants(&fresh_store().await).await;
}

#[tokio::test]
async fn dynamo_device_lock_keeps_the_contract() {
    crate::contract::device_lock(&fresh_store().await).await;
}

#[tokio::test]
async fn dynamo_device_owners_keep_the_contract() {
    crate::contract::device_owners(&fresh_store().await).await;
}

#[tokio::test]
async fn dynamo_outbox_keeps_the_contract() {
    crate::contract::outbox(&fresh_store().await).await;
}

#[tokio::test]
async fn dynamo_plans_keep_one_assertion() {
    crate::contract::kept_assertions(&fresh_store().await).await;
}

#[tokio::test]
async fn dynamo_reads_the_token_and_its_device_together() {
    crate::contract::token_and_device(&fresh_store().await).await;
}

#[tokio::test]
async fn dynamo_oidc_store_keeps_the_contract() {
    crate::contract::oidc_store(&fresh_store().await).await;
}

#[tokio::test]
async fn dynamo_streams_keep_the_contract() {
    crate::contract::streams(&fresh_store().await).await;
}

/// A push stream's authorization header is sealed at rest (bound to its item), reads back
/// through the store, and survives a rotation of the data key.
#[tokio::test]
async fn dynamo_a_push_streams_authorization_header_is_sealed_at_rest() {
    use endpoint_core::model::{DeliveryMethod, Stream};
    use endpoint_core::ports::SignalStore;
    let store = fresh_store().await;
    let stream = Stream {
        method: DeliveryMethod::Push,
        endpoint_url: Some("https://receiver.example/e".into()),
        authorization_header: Some("Bearer the-receivers-secret".into()),
        ..crate::contract::signals::stream("sealed", "r")
    };
    assert!(store.create_stream(&stream, 10).await.unwrap());
    let raw = aws_sdk_dynamodb::Client::new(&config().await)
        .get_item()
        .table_name(store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("STREAM#sealed".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("STREAM".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let text = format!("{raw:?}");
    assert!(!text.contains("the-receivers-secret"), "{text}");
    assert!(raw["auth_sealed"].as_b().is_ok());
    let read = store.get_stream("sealed").await.unwrap().unwrap();
    assert_eq!(
        read.authorization_header.as_deref(),
        Some("Bearer the-receivers-secret")
    );
    let report = store
        .rotate_data_key(10, None, T0, &mut |_| {})
        .await
        .unwrap();
    assert!(report.finished && report.resealed >= 1, "{report:?}");
    let read = store.get_stream("sealed").await.unwrap().unwrap();
    assert_eq!(
        read.authorization_header.as_deref(),
        Some("Bearer the-receivers-secret"),
        "re-sealed under the new data key"
    );
}

#[tokio::test]
async fn dynamo_audit_keeps_the_contract() {
    crate::contract::audit(&fresh_store().await).await;
}

#[tokio::test]
async fn dynamodb_rollout_keeps_the_rollout_contract() {
    crate::contract::rollout(&fresh_store().await).await;
}

/// An operator's enrollment grant at T0.
pub(crate) fn op() -> EnrollGrant {
    EnrollGrant {
        existing: endpoint_core::model::ExistingSerial::Approved,
        enrollment_token: None,
        now: T0,
        audit: None,
    }
}

/// An audit record DynamoDB refuses (here: larger than an item may be) never stops a plan from
/// ending: the transaction fails on the record, the plan ends alone, the failure is logged.
#[tokio::test]
async fn an_audit_record_that_cannot_be_written_never_stops_a_plan_ending() {
    use endpoint_core::audit::{AuditEvent, AuditKind, AuditQuery, Caller};
    let store = fresh_store().await;
    store.create_plan(&plan("big", T0 + 100)).await.unwrap();
    let oversized = AuditEvent::new(
        AuditKind::StagePassed,
        T0,
        "x",
        "anonymous".into(),
        &Caller::UNKNOWN,
    )
    .plan("big")
    .reason("r".repeat(450 * 1024));
    assert!(store
        .finish_plan(
            "big",
            &Finish::Passed(None),
            None,
            T0,
            Some(&oversized),
            None
        )
        .await
        .unwrap());
    assert_eq!(
        store.get_plan("big", T0).await.unwrap().map(|p| p.status),
        Some(PlanStatus::Passed)
    );
    let q = AuditQuery {
        since: T0 - 10,
        limit: 10,
        ..Default::default()
    };
    assert!(store.audit_events(&q, T0 + 1).await.unwrap().is_empty());
    // A plan that someone else ended is not ended again, record or not.
    assert!(!store
        .finish_plan(
            "big",
            &Finish::Denied("x".into()),
            None,
            T0,
            Some(&oversized),
            None
        )
        .await
        .unwrap());
}
