//! The emulator itself: `scripts/moto_server.py` replaces moto's rollback of a cancelled
//! transaction (a copy of every table it names) with a copy of the items it writes, and gives a
//! Query only the items that can match instead of the whole table. A cancelled transaction must
//! still leave every item as it was, and a Query answer what DynamoDB answers.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, Put, ScalarAttributeType,
    TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;

use crate::aws_env::config;

async fn scratch_table() -> (Client, String) {
    let client = Client::new(&config().await);
    let name = format!(
        "emulator-{}",
        endpoint_core::ports::random_alnum(&endpoint_core::ports::SystemRandom, 10)
    );
    let attribute = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("name and type are set")
    };
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .expect("name and type are set")
    };
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .attribute_definitions(attribute("kind"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("kind-index")
                .key_schema(key("kind", KeyType::Hash))
                .key_schema(key("pk", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .expect("name and keys are set"),
        )
        .send()
        .await
        .unwrap();
    (client, name)
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn put(table: &str, pk: &str, v: &str) -> TransactWriteItem {
    let put = Put::builder()
        .table_name(table)
        .item("pk", s(pk))
        .item("sk", s("1"))
        .item("v", s(v))
        .build()
        .unwrap();
    TransactWriteItem::builder().put(put).build()
}

/// A condition that fails: the item `pk` exists (it does not).
fn failing_check(table: &str, pk: &str) -> TransactWriteItem {
    let check = ConditionCheck::builder()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s("1"))
        .condition_expression("attribute_exists(pk)")
        .build()
        .unwrap();
    TransactWriteItem::builder().condition_check(check).build()
}

async fn value(client: &Client, table: &str, pk: &str) -> Option<String> {
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s("1"))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.item()
        .map(|i| i["v"].as_s().expect("v is a string").clone())
}

async fn transact(client: &Client, items: Vec<TransactWriteItem>) -> Result<(), Vec<String>> {
    match client
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => match e.into_service_error() {
            TransactWriteItemsError::TransactionCanceledException(c) => Err(c
                .cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None").to_string())
                .collect()),
            other => panic!("not a cancelled transaction: {other:?}"),
        },
    }
}

#[tokio::test]
async fn a_cancelled_transaction_leaves_every_item_as_it_was() {
    let (client, table) = scratch_table().await;
    transact(
        &client,
        vec![put(&table, "a", "old"), put(&table, "b", "old")],
    )
    .await
    .unwrap();

    let update = Update::builder()
        .table_name(&table)
        .key("pk", s("b"))
        .key("sk", s("1"))
        .update_expression("SET v = :v")
        .expression_attribute_values(":v", s("new"))
        .build()
        .unwrap();
    let delete = Delete::builder()
        .table_name(&table)
        .key("pk", s("a"))
        .key("sk", s("1"))
        .build()
        .unwrap();
    let reasons = transact(
        &client,
        vec![
            put(&table, "c", "new"),
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder().delete(delete).build(),
            failing_check(&table, "missing"),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(reasons, ["None", "None", "None", "ConditionalCheckFailed"]);
    assert_eq!(value(&client, &table, "a").await.as_deref(), Some("old"));
    assert_eq!(value(&client, &table, "b").await.as_deref(), Some("old"));
    assert_eq!(value(&client, &table, "c").await, None);

    // And one that is not cancelled writes every item.
    transact(
        &client,
        vec![put(&table, "a", "new"), put(&table, "c", "new")],
    )
    .await
    .unwrap();
    assert_eq!(value(&client, &table, "a").await.as_deref(), Some("new"));
    assert_eq!(value(&client, &table, "c").await.as_deref(), Some("new"));
}

/// (pk, sk) of every item a Query answers, read two items a page.
async fn query_all(
    client: &Client,
    table: &str,
    partition: Option<&str>,
    index: Option<&str>,
    forward: bool,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let mut q = client
            .query()
            .table_name(table)
            .limit(2)
            .scan_index_forward(forward)
            .set_exclusive_start_key(start);
        q = match (partition, index) {
            (Some(pk), _) => q
                .key_condition_expression("pk = :v")
                .expression_attribute_values(":v", s(pk)),
            (None, Some(kind)) => q
                .index_name("kind-index")
                .key_condition_expression("kind = :v")
                .expression_attribute_values(":v", s(kind)),
            (None, None) => unreachable!("a partition or an index"),
        };
        let page = q.send().await.unwrap();
        for item in page.items() {
            out.push((
                item["pk"].as_s().unwrap().clone(),
                item["sk"].as_s().unwrap().clone(),
            ));
        }
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return out,
        }
    }
}

#[tokio::test]
async fn a_query_reads_its_partition_or_its_index_key_in_order_and_in_pages() {
    let (client, table) = scratch_table().await;
    for (pk, sk, kind) in [
        ("b", "1", Some("x")),
        ("a", "3", None),
        ("a", "1", None),
        ("a", "2", Some("x")),
        ("c", "1", Some("y")),
    ] {
        let mut put = client
            .put_item()
            .table_name(&table)
            .item("pk", s(pk))
            .item("sk", s(sk))
            .item("v", s("v"));
        if let Some(k) = kind {
            put = put.item("kind", s(k));
        }
        put.send().await.unwrap();
    }
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        query_all(&client, &table, Some("a"), None, true).await,
        pairs(&[("a", "1"), ("a", "2"), ("a", "3")])
    );
    assert_eq!(
        query_all(&client, &table, Some("a"), None, false).await,
        pairs(&[("a", "3"), ("a", "2"), ("a", "1")])
    );
    assert_eq!(
        query_all(&client, &table, Some("none"), None, true).await,
        []
    );
    assert_eq!(
        query_all(&client, &table, None, Some("x"), true).await,
        pairs(&[("a", "2"), ("b", "1")])
    );
    assert_eq!(
        query_all(&client, &table, None, Some("y"), true).await,
        pairs(&[("c", "1")])
    );
    assert_eq!(query_all(&client, &table, None, Some("z"), true).await, []);
}
