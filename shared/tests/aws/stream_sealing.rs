//! A push stream's sealed authorization header survives a data key rotation whatever the
//! writers: a function that read the keyring before the rotation began (its data key cached for
//! minutes) and writes the stream during or after it seals again under the keyring's current
//! data key (the keyring is checked in the write's transaction), and the rotation's consistent
//! sweep re-seals a stream that the kind index does not list yet.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue as Av;

use crate::aws_env::{config, fresh_store};
use crate::common::T0;
use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::adapters::vault::KmsVault;
use endpoint_core::model::{DeliveryMethod, Stream};
use endpoint_core::ports::SignalStore;

const HEADER: &str = "Bearer the-receivers-secret";

fn push_stream(id: &str) -> Stream {
    Stream {
        method: DeliveryMethod::Push,
        endpoint_url: Some("https://receiver.example/e".into()),
        authorization_header: Some(HEADER.into()),
        ..crate::contract::signals::stream(id, &format!("r-{id}"))
    }
}

/// Another function's store on the same table, with its own keyring cache (kept an hour).
async fn other_function(table: &str) -> DynamoStore {
    let cfg = config().await;
    DynamoStore::from_config(&cfg, table)
        .with_sealing(KmsVault::from_config(&cfg, None, table))
        .with_data_key_max_age(Duration::from_secs(3600))
}

/// The data key generation that seals the stream's header in the table.
async fn sealed_generation(table: &str, id: &str) -> u8 {
    let item = aws_sdk_dynamodb::Client::new(&config().await)
        .get_item()
        .table_name(table)
        .key("pk", Av::S(format!("STREAM#{id}")))
        .key("sk", Av::S("STREAM".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    // The sealed value starts with its format byte, then the generation (big-endian u32).
    item["auth_sealed"].as_b().unwrap().as_ref()[4]
}

#[tokio::test]
async fn a_stale_writer_and_a_lagging_index_strand_no_stream_header_in_a_rotation() {
    let store = fresh_store().await;
    let table = store.table().to_string();
    assert!(store.create_stream(&push_stream("kept"), 10).await.unwrap());
    assert!(store
        .create_stream(&push_stream("lagging"), 10)
        .await
        .unwrap());
    let plain = Stream {
        authorization_header: None,
        ..push_stream("plain")
    };
    assert!(store.create_stream(&plain, 10).await.unwrap());
    assert_eq!(sealed_generation(&table, "kept").await, 0);
    // The SSF function read the keyring before the rotation (and keeps it for its max age).
    let stale = other_function(&table).await;
    let read = stale.get_stream("kept").await.unwrap().unwrap();
    assert_eq!(read.authorization_header.as_deref(), Some(HEADER));
    // "lagging" is not in the kind index yet (as an index that lags a recent write reads).
    aws_sdk_dynamodb::Client::new(&config().await)
        .update_item()
        .table_name(&table)
        .key("pk", Av::S("STREAM#lagging".into()))
        .key("sk", Av::S("STREAM".into()))
        .update_expression("REMOVE kind")
        .send()
        .await
        .unwrap();
    let mut progress = |_: &endpoint_core::adapters::dynamodb::RotationReport| {};
    let report = store
        .rotate_data_key(10, None, T0, &mut progress)
        .await
        .unwrap();
    assert!(report.finished, "{report:?}");
    assert_eq!(sealed_generation(&table, "lagging").await, 1, "the sweep");
    // After the rotation retired generation 0, the stale function creates a stream and sets a
    // header on another: both sealed under generation 1, not the retired 0.
    assert!(stale.create_stream(&push_stream("late"), 10).await.unwrap());
    let mut changed = stale.get_stream("plain").await.unwrap().unwrap();
    changed.authorization_header = Some(HEADER.into());
    assert!(stale.save_stream(&changed).await.unwrap());
    for id in ["late", "plain"] {
        assert_eq!(sealed_generation(&table, id).await, 1, "{id}");
    }
    let fresh = other_function(&table).await;
    for id in ["kept", "lagging", "late", "plain"] {
        let s = fresh.get_stream(id).await.unwrap().unwrap();
        assert_eq!(s.authorization_header.as_deref(), Some(HEADER), "{id}");
    }
}

/// Streams created before a receiver's streams were counted count after `migrate`: a receiver
/// that held ten then cannot create an eleventh.
#[tokio::test]
async fn migrate_counts_the_streams_held_before_they_were_counted() {
    let store = fresh_store().await;
    let table = store.table().to_string();
    for i in 0..10 {
        let s = crate::contract::signals::stream(&format!("old{i}"), "r-old");
        assert!(store.create_stream(&s, 10).await.unwrap());
    }
    // As before streams were counted: no count item.
    aws_sdk_dynamodb::Client::new(&config().await)
        .delete_item()
        .table_name(&table)
        .key("pk", Av::S("STREAM#COUNT#r-old".into()))
        .key("sk", Av::S("COUNT".into()))
        .send()
        .await
        .unwrap();
    let extra = crate::contract::signals::stream("new", "r-old");
    assert!(store.create_stream(&extra, 10).await.unwrap(), "uncounted");
    store.delete_stream(&extra).await.unwrap();
    assert_eq!(store.migrate().await.unwrap().stream_counts, 1);
    assert!(!store.create_stream(&extra, 10).await.unwrap(), "ten held");
    assert_eq!(
        store.migrate().await.unwrap().stream_counts,
        0,
        "idempotent"
    );
}
