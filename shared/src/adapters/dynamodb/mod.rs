//! The store ports on one DynamoDB table (`pk`, `sk`, TTL `expires_at`).
//!
//! | item               | pk                    | sk                          |
//! |--------------------|-----------------------|-----------------------------|
//! | plan               | `PLAN#<id>`           | `PLAN`                      |
//! | stage              | `STAGE#<id>`          | `STAGE`                     |
//! | connector          | `CONNECTOR#<id>`      | `CONNECTOR`                 |
//! | device             | `DEVICE#<serial>`     | `DEVICE`                    |
//! | connection version | `DEVICE#<serial>`     | `CONN#<connector>`          |
//! | device token       | `DEVICE#<serial>`     | `TOKEN#<connector>#<id>`    |
//! | token index        | `TOKENHASH#<sha256>`  | `TOKENHASH`                 |
//! | enrollment token   | `ENROLL#<sha256>`     | `ENROLL`                    |
//! | facts snapshot     | `FACTS#<serial>`      | `SNAPSHOT#<connector>`      |
//!
//! Response validation reads the plan (GetItem) and the device's partition (one Query: the
//! device and all its tokens) in parallel, then consumes the challenge with one conditional
//! UpdateItem. Every read filters items whose `expires_at` has passed, because DynamoDB's TTL
//! deletes them up to two days late. Connectors and devices carry a `kind` attribute for the
//! sparse GSI that lists them.
//!
//! | file | concern |
//! |---|---|
//! | `schema.rs` | key attributes, index, TTL, every item key |
//! | `mod.rs` | the store, its request primitives, attribute helpers and error mapping |
//! | `codec.rs` | items <-> model |
//! | `table.rs` | table administration |
//! | `plans.rs`, `directory.rs`, `devices.rs`, `enrollments.rs` | one file per port |

mod codec;
mod devices;
mod directory;
mod enrollments;
mod plans;
pub mod schema;
mod table;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as Av, BillingMode, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, Put, ScalarAttributeType,
    TimeToLiveSpecification, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::aws::{classify, Failure};
use crate::error::StoreError;
use crate::model::*;
use crate::ports::*;
use crate::secret::Secret;
use codec::*;
use schema::*;

type Item = HashMap<String, Av>;

fn s(v: impl Into<String>) -> Av {
    Av::S(v.into())
}
fn n(v: i64) -> Av {
    Av::N(v.to_string())
}

fn corrupt(field: &str) -> StoreError {
    StoreError::Corrupt(format!("attribute {field} missing or of the wrong type"))
}
fn get_s(item: &Item, f: &str) -> Result<String, StoreError> {
    item.get(f)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or_else(|| corrupt(f))
}
fn opt_s(item: &Item, f: &str) -> Option<String> {
    item.get(f).and_then(|v| v.as_s().ok()).cloned()
}
fn get_n(item: &Item, f: &str) -> Result<i64, StoreError> {
    item.get(f)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| corrupt(f))
}
fn opt_n(item: &Item, f: &str) -> Result<Option<i64>, StoreError> {
    match item.get(f) {
        None | Some(Av::Null(_)) => Ok(None),
        Some(_) => get_n(item, f).map(Some),
    }
}
fn get_bool(item: &Item, f: &str) -> Result<bool, StoreError> {
    item.get(f)
        .and_then(|v| v.as_bool().ok())
        .copied()
        .ok_or_else(|| corrupt(f))
}
fn put_opt_n(item: &mut Item, f: &str, v: Option<i64>) {
    if let Some(v) = v {
        item.insert(f.into(), n(v));
    }
}

/// Maps an SDK error to the store's typed error, logging the classification (never the
/// request) once here.
fn store_error<
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
>(
    op: &'static str,
    e: &SdkError<E, R>,
) -> StoreError {
    match classify(e) {
        Failure::Throttled => {
            tracing::warn!(op, "dynamodb throttled after retries");
            StoreError::Throttled
        }
        Failure::Unreachable(why) => {
            tracing::warn!(op, why = %why, "dynamodb unreachable");
            StoreError::Unavailable(why)
        }
        Failure::Service(code) => {
            tracing::warn!(op, code = %code, "dynamodb error");
            StoreError::Unavailable(match code.as_str() {
                "ResourceNotFoundException" => "table not found".into(),
                "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "AccessDeniedException" => {
                    "access denied: check the AWS credentials and permissions".into()
                }
                _ => "unexpected service error".into(),
            })
        }
    }
}

fn is_condition_failed<
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
>(
    e: &SdkError<E, R>,
) -> bool {
    matches!(classify(e), Failure::Service(c) if c == "ConditionalCheckFailedException")
}

/// A transaction cancelled because one of its conditions failed (a concurrent writer).
fn is_transaction_conflict<R>(
    e: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
    match e {
        SdkError::ServiceError(se) => match se.err() {
            E::TransactionCanceledException(t) => t.cancellation_reasons().iter().any(|r| {
                matches!(
                    r.code(),
                    Some("ConditionalCheckFailed") | Some("TransactionConflict")
                )
            }),
            _ => false,
        },
        _ => false,
    }
}

fn built<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Unavailable(format!("request could not be built: {e}")))
}

/// Every store port on one DynamoDB table.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}
impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    /// A store from an SDK configuration (see `aws::load_config`).
    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        let conf = aws_sdk_dynamodb::config::Builder::from(config)
            .interceptor(super::aws::CallTimer)
            .build();
        Self::new(Client::from_conf(conf), table)
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table (on-demand, `pk`/`sk`, the `kind` GSI) and turns on TTL on
    /// `expires_at`. `Ok(false)` if it already existed.
    async fn get(&self, op: &'static str, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(op, &e))?;
        Ok(out.item)
    }

    async fn put(&self, op: &'static str, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| store_error(op, &e))?;
        Ok(())
    }

    /// Every item of a partition (paginated), strongly consistent.
    async fn partition(&self, op: &'static str, pk: &str) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", schema::PK)
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error(op, &e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// Every item of one kind, through the sparse GSI (paginated).
    async fn kind(&self, op: &'static str, kind: &str) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(schema::KIND_INDEX)
                .key_condition_expression("#k = :k")
                .expression_attribute_names("#k", schema::KIND)
                .expression_attribute_values(":k", s(kind))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error(op, &e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    async fn transact(
        &self,
        op: &'static str,
        actions: Vec<TransactWriteItem>,
    ) -> Result<(), StoreError> {
        for chunk in actions.chunks(100) {
            self.client
                .transact_write_items()
                .set_transact_items(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| store_error(op, &e))?;
        }
        Ok(())
    }

    fn delete_action(&self, key: Item) -> Result<TransactWriteItem, StoreError> {
        Ok(TransactWriteItem::builder()
            .delete(built(
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key))
                    .build(),
            )?)
            .build())
    }

    fn put_action(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        Ok(TransactWriteItem::builder()
            .put(built(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .build(),
            )?)
            .build())
    }

    /// Delete actions for token items (and their index entries).
    fn token_deletions(
        &self,
        pk: &str,
        tokens: &[&Item],
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut actions = Vec::new();
        for t in tokens {
            let sk = get_s(t, schema::SK)?;
            actions.push(self.delete_action(key(pk.to_string(), sk))?);
            if let Some(k) = opt_s(t, attr::KEY) {
                actions.push(self.delete_action(token_index_key(&Secret::new(k).sha256_hex()))?);
            }
        }
        Ok(actions)
    }
}
