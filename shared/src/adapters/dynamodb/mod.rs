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
//! | re-enroll allowance| `DEVICE#<serial>`     | `ALLOW#<connector>`         |
//! | enrollment token   | `ENROLL#<sha256>`     | `ENROLL`                    |
//! | token's enrollment | `ENROLL#<sha256>`     | `USE#<serial>`              |
//! | facts snapshot     | `FACTS#<serial>`      | `SNAPSHOT#<connector>`      |
//! | audit record       | `AUDIT#<yyyy-mm-dd>`  | `<time>-<random>`           |
//! | abuse counter      | `LIMIT#<bucket>`      | `LIMIT`                     |
//! | wrapped data key   | `KEYRING`             | `DATAKEY`                   |
//!
//! Device token keys are stored sealed (`key_sealed`, AES-256-GCM under the KEYRING's data key,
//! see `adapters::sealing`) beside their SHA-256 (`key_sha256`); enrollment and revocation find
//! index entries by that hash and never read a key.
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
//! | `plans.rs`, `directory.rs`, `devices.rs`, `enrollments.rs`, `audit.rs` | one file per port |
//! | `keyring.rs` | the data key that seals device token keys, and `migrate` |

mod audit;
mod codec;
mod devices;
mod directory;
mod enrollments;
mod keyring;
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

pub use keyring::MigrationReport;

use super::aws::{classify, Failure};
use super::sealing::KeyVault;
use crate::audit::{AuditEvent, AuditQuery};
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

/// The positions of the items whose condition failed in a cancelled transaction.
fn failed_conditions<R>(
    e: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
) -> Vec<usize> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
    match e {
        SdkError::ServiceError(se) => match se.err() {
            E::TransactionCanceledException(t) => t
                .cancellation_reasons()
                .iter()
                .enumerate()
                .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
                .map(|(i, _)| i)
                .collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn built<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Unavailable(format!("request could not be built: {e}")))
}

/// Every store port on one DynamoDB table.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// The vault of the data key that seals device token keys, and the key once unwrapped.
    sealing: Option<std::sync::Arc<keyring::Sealing>>,
    /// How long audit records are kept, in seconds.
    audit_retention: i64,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore")
            .field("table", &self.table)
            .field("sealing", &self.sealing.is_some())
            .finish()
    }
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            sealing: None,
            audit_retention: crate::audit::DEFAULT_RETENTION_DAYS * 86_400,
        }
    }

    /// A store from an SDK configuration (see `aws::load_config`).
    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        let conf = aws_sdk_dynamodb::config::Builder::from(config)
            .interceptor(super::aws::CallTimer)
            .build();
        Self::new(Client::from_conf(conf), table)
    }

    /// The store as the CLIs and the tests use it: sealing with the data key of `sealing_key`
    /// (a symmetric KMS key) if given, keeping audit records for `retention_days`.
    #[cfg(feature = "sealing")]
    pub fn configured(
        config: &aws_config::SdkConfig,
        table: &str,
        sealing_key: Option<&str>,
        retention_days: i64,
    ) -> Self {
        let store = Self::from_config(config, table).with_audit_retention_days(retention_days);
        match sealing_key {
            Some(key) => {
                store.with_sealing(super::vault::KmsVault::from_config(config, key, table))
            }
            None => store,
        }
    }

    /// The same store, sealing device token keys with the data key `vault` unwraps (once per
    /// process). Without a vault, device token keys can be neither written nor read.
    pub fn with_sealing(mut self, vault: impl KeyVault + 'static) -> Self {
        self.sealing = Some(std::sync::Arc::new(keyring::Sealing::new(Box::new(vault))));
        self
    }

    /// The same store, keeping audit records for `days`.
    pub fn with_audit_retention_days(mut self, days: i64) -> Self {
        self.audit_retention = days * 86_400;
        self
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
        self.partition_of(op, pk, &[]).await
    }

    /// Every item of a partition with only the `attributes` named (all if empty).
    async fn partition_of(
        &self,
        op: &'static str,
        pk: &str,
        attributes: &[&str],
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", schema::PK)
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true)
                .set_exclusive_start_key(start);
            if !attributes.is_empty() {
                let mut projection = Vec::new();
                for (i, a) in attributes.iter().enumerate() {
                    query = query.expression_attribute_names(format!("#a{i}"), *a);
                    projection.push(format!("#a{i}"));
                }
                query = query.projection_expression(projection.join(", "));
            }
            let out = query.send().await.map_err(|e| store_error(op, &e))?;
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

    /// The attributes token deletions need (never a sealed key).
    const TOKEN_REFS: [&'static str; 6] = [
        schema::PK,
        schema::SK,
        attr::VERSION,
        attr::KEY_SHA256,
        attr::KEY,
        schema::TTL_ATTRIBUTE,
    ];

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
            // The index entry by the stored hash; a record from before hashes were stored
            // (not yet migrated) has its plain key instead.
            let hash = opt_s(t, attr::KEY_SHA256)
                .or_else(|| opt_s(t, attr::KEY).map(|k| Secret::new(k).sha256_hex()));
            if let Some(hash) = hash {
                actions.push(self.delete_action(token_index_key(&hash))?);
            }
        }
        Ok(actions)
    }
}
