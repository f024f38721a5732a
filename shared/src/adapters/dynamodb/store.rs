//! The store: its client, table and settings, and the request primitives every port's file
//! builds on (reads, partition queries, transactions, token deletions).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;

use super::failure::{is_condition_failed, store_error};
use super::item::{built, get_s, opt_s, s, Item};
use super::schema::{self, attr, key, token_index_key};
use crate::adapters::sealing::{DataKey, KeyVault};
use crate::error::StoreError;
use crate::secret::Secret;

/// How long a function keeps an unwrapped data key before it reads the keyring again: a
/// rotation (`sealing rotate`) or a disabled KMS key reaches every warm function within this
/// time, at the cost of one `Decrypt` per instance and quarter hour.
pub const DATA_KEY_MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// The vault of the data key that seals device token keys, and the keys once unwrapped.
pub(super) struct Sealing {
    pub(super) vault: Box<dyn KeyVault>,
    pub(super) keyring: tokio::sync::Mutex<Option<Arc<Keyring>>>,
    pub(super) max_age: Duration,
}

/// The table's data keys, unwrapped: the current generation and, during a rotation, the next.
pub(super) struct Keyring {
    pub(super) keys: Vec<(u32, DataKey)>,
    /// The generation new values are sealed with (the next one during a rotation).
    pub(super) seal_generation: u32,
    pub(super) plain_refused: AtomicBool,
    pub(super) loaded: Instant,
}

impl Keyring {
    /// The data key of `generation`, if this keyring holds it.
    pub(super) fn key(&self, generation: u32) -> Option<&DataKey> {
        self.keys
            .iter()
            .find(|(g, _)| *g == generation)
            .map(|(_, k)| k)
    }
}

impl Sealing {
    pub(super) fn new(vault: Box<dyn KeyVault>) -> Self {
        Sealing {
            vault,
            keyring: tokio::sync::Mutex::new(None),
            max_age: DATA_KEY_MAX_AGE,
        }
    }
}

/// Every store port on one DynamoDB table.
#[derive(Clone)]
pub struct DynamoStore {
    pub(super) client: Client,
    pub(super) table: String,
    /// The vault of the data key that seals device token keys, and the key once unwrapped.
    pub(super) sealing: Option<std::sync::Arc<Sealing>>,
    /// How long audit records are kept, in seconds.
    pub(super) audit_retention: i64,
    /// The name this store settles the outbox under: its region's code (`""`: one region).
    pub(super) signal_writer: String,
    /// Whether this process's store has settled since it started (`ports::numbering`'s `first`).
    pub(super) numbered: Arc<std::sync::atomic::AtomicBool>,
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
    /// Writes `item` unless an item with its key exists: `true` if written, `false` if another
    /// writer was first (the condition decides, in one request).
    pub(super) async fn put_if_absent(
        &self,
        op: &'static str,
        item: Item,
    ) -> Result<bool, StoreError> {
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(store_error(op, &e)),
        }
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            sealing: None,
            audit_retention: crate::audit::DEFAULT_RETENTION_DAYS * 86_400,
            signal_writer: String::new(),
            numbered: Arc::default(),
        }
    }

    /// A store from an SDK configuration (see `aws::load_config`).
    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        let conf = aws_sdk_dynamodb::config::Builder::from(config)
            .interceptor(crate::adapters::aws::CallTimer)
            .build();
        Self::new(Client::from_conf(conf), table)
    }

    /// The store as the CLIs and the tests use it: sealing with the table's data key (created
    /// under `sealing_key`, a symmetric KMS key; without it, the existing data key is used and
    /// names its KMS key itself), keeping audit records for `retention_days`.
    #[cfg(feature = "sealing")]
    pub fn configured(
        config: &aws_config::SdkConfig,
        table: &str,
        sealing_key: Option<&str>,
        retention_days: i64,
    ) -> Self {
        Self::from_config(config, table)
            .with_audit_retention_days(retention_days)
            .with_sealing(crate::adapters::vault::KmsVault::from_config(
                config,
                sealing_key,
                table,
            ))
    }

    /// The same store, sealing device token keys with the data key `vault` unwraps (once per
    /// process). Without a vault, device token keys can be neither written nor read.
    pub fn with_sealing(mut self, vault: impl KeyVault + 'static) -> Self {
        self.sealing = Some(std::sync::Arc::new(Sealing::new(Box::new(vault))));
        self
    }

    /// The same store, reading the keyring again after `max_age` (tests shorten it).
    pub fn with_data_key_max_age(mut self, max_age: Duration) -> Self {
        if let Some(sealing) = self.sealing.as_mut().and_then(Arc::get_mut) {
            sealing.max_age = max_age;
        }
        self
    }

    /// The same store, keeping audit records for `days`.
    pub fn with_audit_retention_days(mut self, days: i64) -> Self {
        self.audit_retention = days * 86_400;
        self
    }

    /// The same store, settling the outbox as the writer `region` (its region's code: each
    /// region numbers in its own epoch, `ports::numbering`).
    pub fn with_signal_writer(mut self, region: &str) -> Self {
        self.signal_writer = region.to_string();
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// One item by its key, read consistently.
    pub(super) async fn get(
        &self,
        op: &'static str,
        key: Item,
    ) -> Result<Option<Item>, StoreError> {
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

    pub(super) async fn put(&self, op: &'static str, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| store_error(op, &e))?;
        Ok(())
    }

    /// Deletes an item; `Ok(false)` if it did not exist.
    pub(super) async fn delete_existing(
        &self,
        op: &'static str,
        key: Item,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| store_error(op, &e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    /// Every item of a partition (paginated), strongly consistent.
    pub(super) async fn partition(
        &self,
        op: &'static str,
        pk: &str,
    ) -> Result<Vec<Item>, StoreError> {
        self.partition_of(op, pk, &[]).await
    }

    /// Every item of a partition with only the `attributes` named (all if empty).
    pub(super) async fn partition_of(
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
    pub(super) async fn kind(&self, op: &'static str, kind: &str) -> Result<Vec<Item>, StoreError> {
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

    pub(super) async fn transact(
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

    pub(super) fn delete_action(&self, key: Item) -> Result<TransactWriteItem, StoreError> {
        Ok(TransactWriteItem::builder()
            .delete(built(
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key))
                    .build(),
            )?)
            .build())
    }

    pub(super) fn put_action(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
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
    pub(super) const TOKEN_REFS: [&'static str; 6] = [
        schema::PK,
        schema::SK,
        attr::VERSION,
        attr::KEY_SHA256,
        attr::KEY,
        schema::TTL_ATTRIBUTE,
    ];

    /// Delete actions for token items (and their index entries).
    pub(super) fn token_deletions(
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
