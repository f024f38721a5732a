//! The signals outbox across two regions' tables in moto, with a stand-in for global tables'
//! replication: the contract's primary move (`contract::primary_move`).

use aws_sdk_dynamodb::Client;
use endpoint_core::adapters::dynamodb::DynamoStore;

use crate::aws_env::{config, fresh_store};

/// Copies every item of the signals' partitions (heads, inbox, log, receivers, streams, kept
/// SETs) of `from`'s table into `to`'s, each replacing the item of the same key: a global
/// table's replicated writes that win. (The other items stay: each table has its own sealing
/// data key here.)
async fn replicate(client: &Client, from: &DynamoStore, to: &DynamoStore) {
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(from.table())
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        for item in page.items.unwrap_or_default() {
            let pk = item.get("pk").and_then(|v| v.as_s().ok()).cloned();
            let signals = ["SIGNAL#", "SET#", "STREAM#", "RECEIVER#"];
            if pk.is_some_and(|pk| signals.iter().any(|p| pk.starts_with(p))) {
                client
                    .put_item()
                    .table_name(to.table())
                    .set_item(Some(item))
                    .send()
                    .await
                    .expect("put");
            }
        }
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return,
        }
    }
}

#[tokio::test]
async fn dynamo_outbox_keeps_its_numbers_when_the_primary_moves() {
    let client = Client::new(&config().await);
    let a = fresh_store().await.with_signal_writer("use1");
    let b = fresh_store().await.with_signal_writer("euw1");
    crate::contract::primary_move(&a, &b, async |from: &DynamoStore, to: &DynamoStore| {
        replicate(&client, from, to).await
    })
    .await;
}
