//! The data key on moto through the real SDK: `sealing rotate` (paged, interrupted and resumed,
//! every device key re-sealed, the old key refused afterwards), functions that have not seen a
//! rotation yet, the bounded cache of a warm function, and reading without `SEALING_KEY_ID`.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue as Av;

use super::dynamodb_stage::op;
use super::dynamodb_store::{device, token};
use crate::aws_env::{config, fresh_store};
use crate::common::T0;
use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::adapters::vault::KmsVault;
use endpoint_core::ports::DeviceStore;

/// A store on `table` whose vault knows no KMS key (it learns it from the data key).
async fn without_key(table: &str, max_age: Duration) -> DynamoStore {
    let cfg = config().await;
    DynamoStore::from_config(&cfg, table)
        .with_sealing(KmsVault::from_config(&cfg, None, table))
        .with_data_key_max_age(max_age)
}

/// The raw `key_sealed` of the device's one token, and that token's item key.
async fn sealed_of(table: &str, serial: &str) -> (Vec<u8>, String) {
    let raw = aws_sdk_dynamodb::Client::new(&config().await);
    let items = raw
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :t)")
        .expression_attribute_values(":pk", Av::S(format!("DEVICE#{serial}")))
        .expression_attribute_values(":t", Av::S("TOKEN#".into()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let item = &items[0];
    let sealed = item["key_sealed"].as_b().unwrap().as_ref().to_vec();
    (sealed, item["sk"].as_s().unwrap().clone())
}

async fn put_sealed(table: &str, serial: &str, sk: &str, sealed: Vec<u8>) {
    aws_sdk_dynamodb::Client::new(&config().await)
        .update_item()
        .table_name(table)
        .key("pk", Av::S(format!("DEVICE#{serial}")))
        .key("sk", Av::S(sk.into()))
        .update_expression("SET key_sealed = :v")
        .expression_attribute_values(":v", Av::B(aws_smithy_types::Blob::new(sealed)))
        .send()
        .await
        .unwrap();
}

async fn keys_of(store: &DynamoStore, serial: &str) -> Vec<String> {
    let d = store.device_with_tokens(serial, T0).await.unwrap().unwrap();
    d.tokens
        .iter()
        .map(|t| t.key.expose().to_string())
        .collect()
}

#[tokio::test]
async fn rotation_reseals_every_key_resumes_and_retires_the_old_data_key() {
    let store = fresh_store().await;
    let table = store.table().to_string();
    let serials = ["R1", "R2", "R3", "R4", "R5"];
    for s in serials {
        let t = token(s, "c1", &format!("t-{s}"), &format!("key-{s}"), None);
        store.enroll(&device(s, None), &t, &op()).await.unwrap();
    }
    let (before, r1_sk) = sealed_of(&table, "R1").await;
    assert_eq!(before[..5], [2, 0, 0, 0, 0], "V2, generation 0");
    // A function that read the keyring before the rotation, and keeps it for an hour.
    let stale = without_key(&table, Duration::from_secs(3600)).await;
    assert_eq!(keys_of(&stale, "R1").await, ["key-R1"]);

    // Interrupted after one page of two devices.
    let mut pages = Vec::new();
    let first = store
        .rotate_data_key(2, Some(1), T0, &mut |r| pages.push(r.clone()))
        .await
        .unwrap();
    assert!(first.started && !first.finished, "{first:?}");
    assert_eq!((first.generation, first.devices, first.resealed), (1, 2, 2));
    assert_eq!(pages.len(), 1, "progress after each page");
    // Meanwhile: the stale function reads a re-sealed key (it reads the keyring again) and
    // enrolls a device (its transaction sees the rotation and seals with the next key).
    assert_eq!(keys_of(&stale, "R1").await, ["key-R1"]);
    let t = token("R6", "c1", "t-R6", "key-R6", None);
    stale.enroll(&device("R6", None), &t, &op()).await.unwrap();
    assert_eq!(sealed_of(&table, "R6").await.0[..5], [2, 0, 0, 0, 1]);
    // A function that read both keys during the rotation.
    let during = without_key(&table, Duration::from_secs(3600)).await;
    let during_short = without_key(&table, Duration::ZERO).await;
    assert_eq!(keys_of(&during, "R5").await, ["key-R5"]);
    assert_eq!(keys_of(&during_short, "R5").await, ["key-R5"]);

    // Resumed: what was done is not done again; then the old key is retired.
    let rest = store
        .rotate_data_key(2, None, T0, &mut |_| {})
        .await
        .unwrap();
    assert!(!rest.started && rest.finished, "{rest:?}");
    assert_eq!((rest.devices, rest.resealed), (6, 3), "R3, R4, R5");
    for s in serials {
        assert_eq!(sealed_of(&table, s).await.0[..5], [2, 0, 0, 0, 1], "{s}");
        let fresh = without_key(&table, Duration::from_secs(3600)).await;
        assert_eq!(keys_of(&fresh, s).await, [format!("key-{s}")]);
    }

    // A value sealed under the retired key (a backup written back) no longer opens: at once
    // for a function that reads the keyring, within the cache's age for one that held both.
    put_sealed(&table, "R1", &r1_sk, before).await;
    let fresh = without_key(&table, Duration::from_secs(3600)).await;
    assert!(keys_of(&fresh, "R1").await.is_empty(), "refused");
    assert!(
        keys_of(&during_short, "R1").await.is_empty(),
        "refused after its max age"
    );
    assert_eq!(
        keys_of(&during, "R1").await,
        ["key-R1"],
        "until its max age"
    );

    // Another rotation goes on from there.
    let again = store
        .rotate_data_key(100, None, T0, &mut |_| {})
        .await
        .unwrap();
    assert_eq!((again.generation, again.finished), (2, true));
    assert_eq!(keys_of(&fresh, "R2").await, ["key-R2"]);
}

#[tokio::test]
async fn without_the_sealing_key_only_the_first_data_key_cannot_be_made() {
    let store = fresh_store().await;
    let table = store.table().to_string();
    // Enrolling and reading work with the data key alone.
    let keyless = without_key(&table, Duration::from_secs(60)).await;
    let t = token("K1", "c1", "t-K1", "key-K1", None);
    keyless
        .enroll(&device("K1", None), &t, &op())
        .await
        .unwrap();
    assert_eq!(keys_of(&store, "K1").await, ["key-K1"]);
    // A new table has no data key: creating it needs the KMS key.
    let cfg = config().await;
    let other = format!("{table}-2");
    let bare = DynamoStore::from_config(&cfg, &other)
        .with_sealing(KmsVault::from_config(&cfg, None, &other));
    bare.create_table().await.unwrap();
    let e = bare.ensure_keyring().await.unwrap_err();
    assert!(e.to_string().contains("SEALING_KEY_ID"), "{e}");
}

/// Audit records of a device from before devices had their own key are found by `audit list
/// --device` once `migrate` gave them that key.
#[tokio::test]
async fn migrate_gives_older_device_audit_records_the_device_key() {
    use endpoint_core::audit::{AuditEvent, AuditKind, AuditQuery, Caller};
    use endpoint_core::ports::AuditLog;
    let store = fresh_store().await;
    let table = store.table().to_string();
    let old = AuditEvent::new(
        AuditKind::CheckIn,
        T0,
        "old",
        "device:OLD-1".into(),
        &Caller::UNKNOWN,
    )
    .device("OLD-1");
    store.record(&old).await.unwrap();
    // As written before: no kind.
    aws_sdk_dynamodb::Client::new(&config().await)
        .update_item()
        .table_name(&table)
        .key(
            "pk",
            Av::S(format!("AUDIT#{}", endpoint_core::audit::utc_day(T0))),
        )
        .key("sk", Av::S(old.id.clone()))
        .update_expression("REMOVE kind")
        .send()
        .await
        .unwrap();
    let query = AuditQuery {
        since: T0 - 10,
        device: Some("OLD-1".into()),
        limit: 10,
        ..Default::default()
    };
    assert!(store
        .audit_events(&query, T0 + 10)
        .await
        .unwrap()
        .is_empty());
    let report = store.migrate().await.unwrap();
    assert_eq!(report.audit_records, 1);
    let found = store.audit_events(&query, T0 + 10).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, old.id);
    assert_eq!(
        store.migrate().await.unwrap().audit_records,
        0,
        "idempotent"
    );
}

#[tokio::test]
async fn a_rotation_racing_enrollments_strands_no_key() {
    let store = fresh_store().await;
    let table = store.table().to_string();
    // LISTED is in the device index; LAGGING was enrolled just before the rotation and the
    // index does not show it yet (its `kind` removed, as a lagging index reads); EXPIRED is
    // expired at the rotation's time but still in the table. All three sealed under 0.
    for (s, expires_at) in [
        ("LISTED", None),
        ("LAGGING", None),
        ("EXPIRED", Some(T0 + 50)),
    ] {
        let t = token(s, "c1", &format!("t-{s}"), &format!("key-{s}"), None);
        store
            .enroll(&device(s, expires_at), &t, &op())
            .await
            .unwrap();
    }
    aws_sdk_dynamodb::Client::new(&config().await)
        .update_item()
        .table_name(&table)
        .key("pk", Av::S("DEVICE#LAGGING".into()))
        .key("sk", Av::S("DEVICE".into()))
        .update_expression("REMOVE kind")
        .send()
        .await
        .unwrap();
    // Enrollments race the rotation, by a function that read the keyring before it began.
    let stale = without_key(&table, Duration::from_secs(3600)).await;
    assert_eq!(keys_of(&stale, "LISTED").await, ["key-LISTED"]);
    let racing = ["RACE1", "RACE2", "RACE3", "RACE4"];
    let enrollments = async {
        for s in racing {
            let t = token(s, "c1", &format!("t-{s}"), &format!("key-{s}"), None);
            stale.enroll(&device(s, None), &t, &op()).await.unwrap();
        }
    };
    let mut progress = |_: &endpoint_core::adapters::dynamodb::RotationReport| {};
    let rotation = store.rotate_data_key(1, None, T0 + 100, &mut progress);
    let (report, ()) = futures::join!(rotation, enrollments);
    let report = report.unwrap();
    assert!(report.finished, "{report:?}");
    // Nothing is left under the retired key: every key opens for a function that reads the
    // keyring afresh (which no longer holds generation 0).
    let fresh = without_key(&table, Duration::from_secs(3600)).await;
    for s in ["LISTED", "LAGGING", "EXPIRED"].into_iter().chain(racing) {
        assert_eq!(sealed_of(&table, s).await.0[..5], [2, 0, 0, 0, 1], "{s}");
        assert_eq!(keys_of(&fresh, s).await, [format!("key-{s}")], "{s}");
    }
}

/// Device tokens enrolled before the token index listed them by connector are listed once
/// `migrate` gave them their `kind`, so `connector rotate` waits for their devices too.
#[tokio::test]
async fn migrate_lists_older_device_tokens_by_connector() {
    use endpoint_core::ports::RolloutStore;
    use endpoint_core::secret::sha256_hex;
    let store = fresh_store().await;
    let table = store.table().to_string();
    let t = token("OLD-T", "c1", "t-old", "key-OLD-T", None);
    store
        .enroll(&device("OLD-T", None), &t, &op())
        .await
        .unwrap();
    assert_eq!(store.config_fetches("c1", T0).await.unwrap().len(), 1);
    // As written before: no kind.
    aws_sdk_dynamodb::Client::new(&config().await)
        .update_item()
        .table_name(&table)
        .key(
            "pk",
            Av::S(format!("TOKENHASH#{}", sha256_hex(b"key-OLD-T"))),
        )
        .key("sk", Av::S("TOKENHASH".into()))
        .update_expression("REMOVE kind")
        .send()
        .await
        .unwrap();
    assert!(store.config_fetches("c1", T0).await.unwrap().is_empty());
    assert_eq!(store.migrate().await.unwrap().device_tokens, 1);
    let listed = store.config_fetches("c1", T0).await.unwrap();
    assert_eq!(
        listed.iter().map(|f| f.device.as_str()).collect::<Vec<_>>(),
        ["OLD-T"]
    );
    assert_eq!(
        store.migrate().await.unwrap().device_tokens,
        0,
        "idempotent"
    );
}
