//! The emulator itself: `scripts/moto_server.py` replaces moto's rollback of a cancelled
//! transaction (a copy of every table it names) with a copy of the items it writes. A cancelled
//! transaction must still leave every item as it was, as DynamoDB does.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, KeySchemaElement,
    KeyType, Put, ScalarAttributeType, TransactWriteItem, Update,
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
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
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
