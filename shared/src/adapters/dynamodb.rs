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

/// The table's schema: the one definition that `endpoint-admin init` creates and that
/// `template.yaml` declares (a test checks the template against these).
pub mod schema {
    pub const PK: &str = "pk";
    pub const SK: &str = "sk";
    pub const TTL_ATTRIBUTE: &str = "expires_at";
    pub const KIND_INDEX: &str = "kind-index";
    pub const KIND: &str = "kind";
}

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

fn plan_key(id: &str) -> Item {
    HashMap::from([
        (schema::PK.into(), s(format!("PLAN#{id}"))),
        (schema::SK.into(), s("PLAN")),
    ])
}
fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([(schema::PK.into(), s(pk)), (schema::SK.into(), s(sk))])
}
fn device_pk(identifier: &str) -> String {
    format!("DEVICE#{identifier}")
}
fn token_sk(connector: &str, id: &str) -> String {
    format!("TOKEN#{connector}#{id}")
}
fn hash_pk(sha: &str) -> String {
    format!("TOKENHASH#{sha}")
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
    pub async fn create_table(&self) -> Result<bool, StoreError> {
        let attr = |name: &str| {
            built(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build(),
            )
        };
        let key_el = |name: &str, t: KeyType| {
            built(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(t)
                    .build(),
            )
        };
        let gsi = built(
            GlobalSecondaryIndex::builder()
                .index_name(schema::KIND_INDEX)
                .key_schema(key_el(schema::KIND, KeyType::Hash)?)
                .key_schema(key_el(schema::PK, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build(),
        )?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr(schema::PK)?)
            .attribute_definitions(attr(schema::SK)?)
            .attribute_definitions(attr(schema::KIND)?)
            .key_schema(key_el(schema::PK, KeyType::Hash)?)
            .key_schema(key_el(schema::SK, KeyType::Range)?)
            .global_secondary_indexes(gsi)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e) if matches!(classify(&e), Failure::Service(c) if c == "ResourceInUseException") => {
                return Ok(false)
            }
            Err(e) => return Err(store_error("CreateTable", &e)),
        }
        // Wait until ACTIVE (moto is immediate; DynamoDB takes seconds).
        for _ in 0..60 {
            let d = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| store_error("DescribeTable", &e))?;
            if d.table().and_then(|t| t.table_status()).map(|s| s.as_str()) == Some("ACTIVE") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(built(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(schema::TTL_ATTRIBUTE)
                    .build(),
            )?)
            .send()
            .await
            .map_err(|e| store_error("UpdateTimeToLive", &e))?;
        Ok(true)
    }

    /// Whether the table exists (one DescribeTable; `endpoint-admin` asks before any command
    /// but `init`, so that a wrong table name gets a clear answer).
    pub async fn table_exists(&self) -> Result<bool, StoreError> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(store_error("DescribeTable", &e)),
        }
    }

    /// Whether TTL is enabled on `expires_at` (for `init` and tests).
    pub async fn ttl_attribute(&self) -> Result<Option<String>, StoreError> {
        let d = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| store_error("DescribeTimeToLive", &e))?;
        Ok(d.time_to_live_description()
            .filter(|t| t.time_to_live_status().map(|s| s.as_str()) == Some("ENABLED"))
            .and_then(|t| t.attribute_name().map(str::to_string)))
    }

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
            if let Some(k) = opt_s(t, "key") {
                actions.push(
                    self.delete_action(key(hash_pk(&Secret::new(k).sha256_hex()), "TOKENHASH"))?,
                );
            }
        }
        Ok(actions)
    }
}

// ---- items <-> model ----

fn plan_item(p: &Plan) -> Result<Item, StoreError> {
    let mut item = plan_key(&p.id);
    item.insert("id".into(), s(&p.id));
    item.insert("stage".into(), s(&p.stage));
    item.insert("mode".into(), s(p.config.mode.as_str()));
    item.insert("connector".into(), s(&p.config.connector));
    item.insert("enabled".into(), Av::Bool(p.config.enabled));
    if let Some(k) = &p.config.challenge_key {
        item.insert("challenge_key".into(), s(k));
    }
    item.insert(
        "idle_timeout".into(),
        n(p.config.challenge_idle_timeout.into()),
    );
    item.insert(
        "check_in".into(),
        Av::Bool(p.config.challenge_trigger_check_in),
    );
    item.insert("redirect".into(), s(&p.redirect));
    item.insert("status".into(), s(p.status.as_str()));
    if let Some(c) = &p.pending_challenge {
        item.insert("challenge".into(), s(&c.jws));
        item.insert("challenge_exp".into(), n(c.exp));
    }
    item.insert("issued".into(), n(p.challenges_issued.into()));
    if let Some(d) = &p.device {
        item.insert("device_id".into(), s(&d.identifier));
        item.insert("device_name".into(), s(&d.name));
    }
    if let Some(a) = &p.device_auth {
        let json = serde_json::to_string(a)
            .map_err(|_| StoreError::Corrupt("device auth token".into()))?;
        item.insert("device_auth".into(), s(json));
    }
    if let Some(m) = &p.denial {
        item.insert("denial".into(), s(m));
    }
    item.insert("created_at".into(), n(p.created_at));
    item.insert(schema::TTL_ATTRIBUTE.into(), n(p.expires_at));
    Ok(item)
}

fn plan_from(item: &Item) -> Result<Plan, StoreError> {
    let status = match get_s(item, "status")?.as_str() {
        "pending" => PlanStatus::Pending,
        "passed" => PlanStatus::Passed,
        "denied" => PlanStatus::Denied,
        _ => return Err(corrupt("status")),
    };
    let mode = get_s(item, "mode")?
        .parse::<StageMode>()
        .map_err(|_| corrupt("mode"))?;
    let pending_challenge = match opt_s(item, "challenge") {
        Some(jws) => Some(PendingChallenge {
            jws,
            exp: get_n(item, "challenge_exp")?,
        }),
        None => None,
    };
    let device = opt_s(item, "device_id").map(|identifier| DeviceRef {
        identifier,
        name: opt_s(item, "device_name").unwrap_or_default(),
    });
    let device_auth = match opt_s(item, "device_auth") {
        Some(json) => Some(serde_json::from_str(&json).map_err(|_| corrupt("device_auth"))?),
        None => None,
    };
    let u32_of = |f: &str| get_n(item, f).and_then(|v| u32::try_from(v).map_err(|_| corrupt(f)));
    Ok(Plan {
        id: get_s(item, "id")?,
        stage: get_s(item, "stage")?,
        config: StageSnapshot {
            mode,
            connector: get_s(item, "connector")?,
            enabled: get_bool(item, "enabled")?,
            challenge_key: opt_s(item, "challenge_key"),
            challenge_idle_timeout: u32_of("idle_timeout")?,
            challenge_trigger_check_in: get_bool(item, "check_in")?,
        },
        redirect: get_s(item, "redirect")?,
        status,
        pending_challenge,
        challenges_issued: u32_of("issued")?,
        device,
        device_auth,
        denial: opt_s(item, "denial"),
        created_at: get_n(item, "created_at")?,
        expires_at: get_n(item, schema::TTL_ATTRIBUTE)?,
    })
}

fn device_from(item: &Item) -> Result<Device, StoreError> {
    let identifier = get_s(item, "identifier")?;
    Ok(Device {
        // Devices enrolled before ids existed get a stable id derived from their serial until
        // their next enrollment stores a random one.
        id: opt_s(item, "device_id").unwrap_or_else(|| legacy_device_id(&identifier)),
        identifier,
        name: get_s(item, "name")?,
        created_at: get_n(item, "created_at")?,
        expires_at: opt_n(item, schema::TTL_ATTRIBUTE)?,
    })
}

/// A stable UUID-shaped id for a device item written before device ids existed: the first
/// 16 bytes of SHA-256 over the serial, formatted as a version 8 (custom) UUID.
fn legacy_device_id(identifier: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("endpoint-stage device {identifier}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

fn token_from(item: &Item) -> Result<DeviceToken, StoreError> {
    Ok(DeviceToken {
        id: get_s(item, "token_id")?,
        device: get_s(item, "device")?,
        connector: get_s(item, "connector")?,
        key: Secret::new(get_s(item, "key")?),
        created_at: get_n(item, "created_at")?,
        expires_at: opt_n(item, schema::TTL_ATTRIBUTE)?,
    })
}

fn json_item<T: serde::Serialize>(
    pk: String,
    sk: &str,
    kind: Option<&str>,
    value: &T,
) -> Result<Item, StoreError> {
    let mut item = key(pk, sk);
    let json = serde_json::to_string(value)
        .map_err(|_| StoreError::Corrupt("unserializable value".into()))?;
    item.insert("data".into(), s(json));
    if let Some(k) = kind {
        item.insert(schema::KIND.into(), s(k));
    }
    Ok(item)
}

fn json_from<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    serde_json::from_str(&get_s(item, "data")?).map_err(|_| corrupt("data"))
}

fn sk_of(item: &Item) -> &str {
    item.get(schema::SK)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .unwrap_or("")
}

impl PlanStore for DynamoStore {
    async fn create_plan(&self, plan: &Plan) -> Result<(), StoreError> {
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(plan_item(plan)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => {
                Err(StoreError::AlreadyExists(format!("plan {}", plan.id)))
            }
            Err(e) => Err(store_error("PutItem plan", &e)),
        }
    }

    async fn get_plan(&self, id: &str, now: UnixTime) -> Result<Option<Plan>, StoreError> {
        match self.get("GetItem plan", plan_key(id)).await? {
            Some(item) => {
                let plan = plan_from(&item)?;
                Ok((!is_expired(Some(plan.expires_at), now)).then_some(plan))
            }
            None => Ok(None),
        }
    }

    async fn reserve_challenge(
        &self,
        id: &str,
        max: u32,
        now: UnixTime,
    ) -> Result<Reserve, StoreError> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(plan_key(id)))
            .update_expression("SET #issued = #issued + :one")
            .condition_expression(
                "attribute_exists(#pk) AND #status = :pending AND #exp > :now AND #issued < :max",
            )
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#issued", "issued")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#exp", schema::TTL_ATTRIBUTE)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(max.into()))
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match r {
            Ok(out) => match out.attributes {
                Some(item) => Ok(Reserve::Granted(plan_from(&item)?)),
                None => Err(StoreError::Corrupt(
                    "the reserved plan was not returned".into(),
                )),
            },
            Err(e) if is_condition_failed(&e) => {
                // DynamoDB returns the item that failed the condition; read it if it did not.
                let returned = match &e {
                    SdkError::ServiceError(se) => match se.err() {
                        UpdateItemError::ConditionalCheckFailedException(c) => c.item().cloned(),
                        _ => None,
                    },
                    _ => None,
                };
                let item = match returned {
                    Some(item) => Some(item),
                    None => {
                        self.get("GetItem plan (refused reservation)", plan_key(id))
                            .await?
                    }
                };
                Ok(Reserve::Refused(item.as_ref().map(plan_from).transpose()?))
            }
            Err(e) => Err(store_error("UpdateItem reserve_challenge", &e)),
        }
    }

    async fn set_challenge(
        &self,
        id: &str,
        challenge: &PendingChallenge,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(plan_key(id)))
            .update_expression("SET #ch = :ch, #chexp = :chexp")
            .condition_expression("attribute_exists(#pk) AND #status = :pending AND #exp > :now")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#ch", "challenge")
            .expression_attribute_names("#chexp", "challenge_exp")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#exp", schema::TTL_ATTRIBUTE)
            .expression_attribute_values(":ch", s(&challenge.jws))
            .expression_attribute_values(":chexp", n(challenge.exp))
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(store_error("UpdateItem set_challenge", &e)),
        }
    }

    async fn finish_plan(
        &self,
        id: &str,
        finish: &Finish,
        consume: Option<&str>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(plan_key(id)))
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#exp", schema::TTL_ATTRIBUTE)
            .expression_attribute_names("#ch", "challenge")
            .expression_attribute_names("#chexp", "challenge_exp")
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":now", n(now));
        let mut condition =
            "attribute_exists(#pk) AND #status = :pending AND #exp > :now".to_string();
        if let Some(jws) = consume {
            condition.push_str(" AND #ch = :consumed");
            req = req.expression_attribute_values(":consumed", s(jws));
        }
        let update = match finish {
            Finish::Passed(device) => {
                req = req.expression_attribute_values(":final", s("passed"));
                match device {
                    Some(d) => {
                        req = req
                            .expression_attribute_names("#did", "device_id")
                            .expression_attribute_names("#dname", "device_name")
                            .expression_attribute_values(":did", s(&d.identifier))
                            .expression_attribute_values(":dname", s(&d.name));
                        "SET #status = :final, #did = :did, #dname = :dname REMOVE #ch, #chexp"
                    }
                    None => "SET #status = :final REMOVE #ch, #chexp",
                }
            }
            Finish::Denied(message) => {
                req = req
                    .expression_attribute_names("#denial", "denial")
                    .expression_attribute_values(":final", s("denied"))
                    .expression_attribute_values(":denial", s(message));
                "SET #status = :final, #denial = :denial REMOVE #ch, #chexp"
            }
        };
        let r = req
            .update_expression(update)
            .condition_expression(condition)
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(store_error("UpdateItem finish_plan", &e)),
        }
    }
}

impl Directory for DynamoStore {
    async fn get_stage(&self, id: &str) -> Result<Option<Stage>, StoreError> {
        self.get("GetItem stage", key(format!("STAGE#{id}"), "STAGE"))
            .await?
            .map(|i| json_from(&i))
            .transpose()
    }

    async fn put_stage(&self, stage: &Stage) -> Result<(), StoreError> {
        self.put(
            "PutItem stage",
            json_item(format!("STAGE#{}", stage.id), "STAGE", None, stage)?,
        )
        .await
    }

    async fn get_connector(&self, id: &str) -> Result<Option<Connector>, StoreError> {
        self.get(
            "GetItem connector",
            key(format!("CONNECTOR#{id}"), "CONNECTOR"),
        )
        .await?
        .map(|i| json_from(&i))
        .transpose()
    }

    async fn put_connector(&self, c: &Connector) -> Result<(), StoreError> {
        self.put(
            "PutItem connector",
            json_item(
                format!("CONNECTOR#{}", c.id),
                "CONNECTOR",
                Some("CONNECTOR"),
                c,
            )?,
        )
        .await
    }

    async fn list_connectors(&self) -> Result<Vec<Connector>, StoreError> {
        self.kind("Query connectors", "CONNECTOR")
            .await?
            .iter()
            .map(json_from)
            .collect()
    }
}

impl DeviceStore for DynamoStore {
    async fn device_with_tokens(
        &self,
        identifier: &str,
        now: UnixTime,
    ) -> Result<Option<DeviceWithTokens>, StoreError> {
        let items = self
            .partition("Query device", &device_pk(identifier))
            .await?;
        let Some(device) = items.iter().find(|i| sk_of(i) == "DEVICE") else {
            return Ok(None);
        };
        let device = device_from(device)?;
        if is_expired(device.expires_at, now) {
            return Ok(None);
        }
        let tokens = items
            .iter()
            .filter(|i| sk_of(i).starts_with("TOKEN#"))
            .map(token_from)
            .filter(|t| t.as_ref().map_or(true, |t| !is_expired(t.expires_at, now)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(DeviceWithTokens { device, tokens }))
    }

    async fn token_by_hash(
        &self,
        key_sha256: &str,
        now: UnixTime,
    ) -> Result<Option<TokenRef>, StoreError> {
        let Some(item) = self
            .get("GetItem token hash", key(hash_pk(key_sha256), "TOKENHASH"))
            .await?
        else {
            return Ok(None);
        };
        let t = TokenRef {
            token_id: get_s(&item, "token_id")?,
            device: get_s(&item, "device")?,
            connector: get_s(&item, "connector")?,
            expires_at: opt_n(&item, schema::TTL_ATTRIBUTE)?,
        };
        Ok((!is_expired(t.expires_at, now)).then_some(t))
    }

    async fn get_device(
        &self,
        identifier: &str,
        now: UnixTime,
    ) -> Result<Option<Device>, StoreError> {
        match self
            .get("GetItem device", key(device_pk(identifier), "DEVICE"))
            .await?
        {
            Some(item) => {
                let d = device_from(&item)?;
                Ok((!is_expired(d.expires_at, now)).then_some(d))
            }
            None => Ok(None),
        }
    }

    async fn list_devices(&self, now: UnixTime) -> Result<Vec<Device>, StoreError> {
        let mut out = Vec::new();
        for item in self.kind("Query devices", "DEVICE").await? {
            let d = device_from(&item)?;
            if !is_expired(d.expires_at, now) {
                out.push(d);
            }
        }
        out.sort_by(|a, b| a.identifier.cmp(&b.identifier));
        Ok(out)
    }

    async fn enroll(&self, device: &Device, token: &DeviceToken) -> Result<(), StoreError> {
        let pk = device_pk(&device.identifier);
        let conn_sk = format!("CONN#{}", token.connector);
        let token_prefix = format!("TOKEN#{}#", token.connector);
        // Optimistic concurrency on the connection's version item: of several concurrent
        // enrollments each round has one winner, and a loser retries on fresh state (deleting
        // the winner's token), so exactly one token of the connection survives.
        for _ in 0..8 {
            let items = self.partition("Query device (enroll)", &pk).await?;
            let version = match items.iter().find(|i| sk_of(i) == conn_sk) {
                Some(i) => Some(get_n(i, "version")?),
                None => None,
            };
            let old: Vec<&Item> = items
                .iter()
                .filter(|i| sk_of(i).starts_with(&token_prefix))
                .collect();
            let mut actions = Vec::with_capacity(4 + 2 * old.len());

            let mut conn = key(pk.clone(), conn_sk.clone());
            conn.insert("version".into(), n(version.unwrap_or(0) + 1));
            let mut put = Put::builder().table_name(&self.table).set_item(Some(conn));
            put = match version {
                Some(v) => put
                    .condition_expression("#v = :v")
                    .expression_attribute_names("#v", "version")
                    .expression_attribute_values(":v", n(v)),
                None => put
                    .condition_expression("attribute_not_exists(#pk)")
                    .expression_attribute_names("#pk", schema::PK),
            };
            actions.push(
                TransactWriteItem::builder()
                    .put(built(put.build())?)
                    .build(),
            );

            // An existing device keeps its id, name, creation time and any expiry the operator
            // set (as on the reference); a new one gets the given values.
            let exists = items.iter().any(|i| sk_of(i) == "DEVICE");
            let mut set = "SET #id = :id, #uuid = if_not_exists(#uuid, :uuid), #name = if_not_exists(#name, :name), #kind = :kind, #created = if_not_exists(#created, :created)".to_string();
            let mut update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(pk.clone(), "DEVICE")))
                .expression_attribute_names("#id", "identifier")
                .expression_attribute_names("#uuid", "device_id")
                .expression_attribute_names("#name", "name")
                .expression_attribute_names("#kind", schema::KIND)
                .expression_attribute_names("#created", "created_at")
                .expression_attribute_values(":id", s(&device.identifier))
                .expression_attribute_values(":uuid", s(&device.id))
                .expression_attribute_values(":name", s(&device.name))
                .expression_attribute_values(":kind", s("DEVICE"))
                .expression_attribute_values(":created", n(device.created_at));
            if let (false, Some(e)) = (exists, device.expires_at) {
                set.push_str(", #exp = :exp");
                update = update
                    .expression_attribute_names("#exp", schema::TTL_ATTRIBUTE)
                    .expression_attribute_values(":exp", n(e));
            }
            let update = update.update_expression(set);
            actions.push(
                TransactWriteItem::builder()
                    .update(built(update.build())?)
                    .build(),
            );
            actions.extend(self.token_deletions(&pk, &old)?);

            let mut t = key(pk.clone(), token_sk(&token.connector, &token.id));
            t.insert("token_id".into(), s(&token.id));
            t.insert("device".into(), s(&token.device));
            t.insert("connector".into(), s(&token.connector));
            t.insert("key".into(), s(token.key.expose()));
            t.insert("created_at".into(), n(token.created_at));
            put_opt_n(&mut t, schema::TTL_ATTRIBUTE, token.expires_at);
            actions.push(self.put_action(t)?);

            let mut idx = key(hash_pk(&token.key.sha256_hex()), "TOKENHASH");
            idx.insert("token_id".into(), s(&token.id));
            idx.insert("device".into(), s(&token.device));
            idx.insert("connector".into(), s(&token.connector));
            put_opt_n(&mut idx, schema::TTL_ATTRIBUTE, token.expires_at);
            actions.push(self.put_action(idx)?);

            if actions.len() > 100 {
                // More old tokens than one transaction holds: delete them first, then retry.
                let extra = self.token_deletions(&pk, &old)?;
                self.transact("TransactWriteItems revoke (enroll)", extra)
                    .await?;
                continue;
            }
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions))
                .send()
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if is_transaction_conflict(&e) => continue,
                Err(e) => return Err(store_error("TransactWriteItems enroll", &e)),
            }
        }
        Err(StoreError::Unavailable(
            "enrollment kept conflicting with concurrent enrollments".into(),
        ))
    }

    async fn revoke_tokens(&self, identifier: &str, connector: &str) -> Result<usize, StoreError> {
        let pk = device_pk(identifier);
        let prefix = format!("TOKEN#{connector}#");
        let items = self.partition("Query device (revoke)", &pk).await?;
        let old: Vec<&Item> = items
            .iter()
            .filter(|i| sk_of(i).starts_with(&prefix))
            .collect();
        let actions = self.token_deletions(&pk, &old)?;
        self.transact("TransactWriteItems revoke", actions).await?;
        Ok(old.len())
    }

    async fn put_facts(&self, f: &FactsSnapshot) -> Result<(), StoreError> {
        let mut item = key(
            format!("FACTS#{}", f.device),
            format!("SNAPSHOT#{}", f.connector),
        );
        item.insert("device".into(), s(&f.device));
        item.insert("connector".into(), s(&f.connector));
        item.insert(
            "facts_deflate".into(),
            Av::B(aws_smithy_types::Blob::new(f.facts_deflate.clone())),
        );
        item.insert("truncated".into(), Av::Bool(f.truncated));
        item.insert("created_at".into(), n(f.created_at));
        item.insert(schema::TTL_ATTRIBUTE.into(), n(f.expires_at));
        self.put("PutItem facts", item).await
    }

    async fn latest_facts(
        &self,
        identifier: &str,
        now: UnixTime,
    ) -> Result<Option<FactsSnapshot>, StoreError> {
        let mut latest: Option<FactsSnapshot> = None;
        for item in self
            .partition("Query facts", &format!("FACTS#{identifier}"))
            .await?
        {
            let f = FactsSnapshot {
                device: get_s(&item, "device")?,
                connector: get_s(&item, "connector")?,
                facts_deflate: item
                    .get("facts_deflate")
                    .and_then(|v| v.as_b().ok())
                    .map(|b| b.clone().into_inner())
                    .ok_or_else(|| corrupt("facts_deflate"))?,
                truncated: item
                    .get("truncated")
                    .and_then(|v| v.as_bool().ok())
                    .copied()
                    .unwrap_or(false),
                created_at: get_n(&item, "created_at")?,
                expires_at: get_n(&item, schema::TTL_ATTRIBUTE)?,
            };
            if f.expires_at > now && latest.as_ref().is_none_or(|l| f.created_at > l.created_at) {
                latest = Some(f);
            }
        }
        Ok(latest)
    }

    async fn delete_device(&self, identifier: &str) -> Result<bool, StoreError> {
        let facts_pk = format!("FACTS#{identifier}");
        let facts: Vec<TransactWriteItem> = self
            .partition("Query facts (delete)", &facts_pk)
            .await?
            .iter()
            .map(|i| self.delete_action(key(facts_pk.clone(), sk_of(i))))
            .collect::<Result<_, _>>()?;
        self.transact("TransactWriteItems delete facts", facts)
            .await?;
        let pk = device_pk(identifier);
        let items = self.partition("Query device (delete)", &pk).await?;
        let existed = items.iter().any(|i| sk_of(i) == "DEVICE");
        let tokens: Vec<&Item> = items
            .iter()
            .filter(|i| sk_of(i).starts_with("TOKEN#"))
            .collect();
        let mut actions = self.token_deletions(&pk, &tokens)?;
        for i in items.iter().filter(|i| !sk_of(i).starts_with("TOKEN#")) {
            actions.push(self.delete_action(key(pk.clone(), sk_of(i)))?);
        }
        self.transact("TransactWriteItems delete device", actions)
            .await?;
        Ok(existed)
    }
}

impl EnrollmentStore for DynamoStore {
    async fn put_enrollment_token(&self, t: &EnrollmentToken) -> Result<(), StoreError> {
        let mut item = key(format!("ENROLL#{}", t.key_sha256), "ENROLL");
        item.insert("id".into(), s(&t.id));
        item.insert("connector".into(), s(&t.connector));
        item.insert("name".into(), s(&t.name));
        put_opt_n(&mut item, schema::TTL_ATTRIBUTE, t.expires_at);
        self.put("PutItem enrollment token", item).await
    }

    async fn enrollment_token_by_hash(
        &self,
        key_sha256: &str,
        now: UnixTime,
    ) -> Result<Option<EnrollmentToken>, StoreError> {
        let Some(item) = self
            .get(
                "GetItem enrollment token",
                key(format!("ENROLL#{key_sha256}"), "ENROLL"),
            )
            .await?
        else {
            return Ok(None);
        };
        let t = EnrollmentToken {
            id: get_s(&item, "id")?,
            key_sha256: key_sha256.to_string(),
            connector: get_s(&item, "connector")?,
            name: get_s(&item, "name")?,
            expires_at: opt_n(&item, schema::TTL_ATTRIBUTE)?,
        };
        Ok((!is_expired(t.expires_at, now)).then_some(t))
    }
}
