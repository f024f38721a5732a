//! Enrollment as one transaction: the connection's version item (optimistic concurrency), the
//! device, the deletion of the connection's older tokens with their index entries, the new
//! token and its index entry, the operator's allowance (when the domain's rule needs it), the
//! enrollment token's use, and the audit record.

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};

use super::failure::{failed_conditions, is_transaction_conflict, store_error};
use super::item::{built, get_n, n, opt_n, put_opt_n, s, Item};
use super::schema::{
    self, allowance_sk, attr, connection_sk, device_key, device_pk, enrollment_key, enrollment_pk,
    enrollment_use_sk, key, sk_of, token_index_key, token_prefix, token_sk, DEVICE,
};
use super::store::DynamoStore;
use crate::error::StoreError;
use crate::model::{is_expired, reenrollment, Device, DeviceToken, Reenrollment, UnixTime};
use crate::ports::{EnrollGrant, EnrollOutcome};

/// How many times an enrollment that lost a race against a concurrent one starts again.
const ATTEMPTS: usize = 8;
/// Most actions in one DynamoDB transaction.
const MAX_ACTIONS: usize = 100;

/// What one attempt found in the device's partition.
struct Connection<'a> {
    /// The connection's version item's version, if it exists.
    version: Option<i64>,
    /// The connection's token items (only the attributes deletions need).
    old: Vec<&'a Item>,
    /// Whether any of them is live.
    replaced: bool,
    /// Whether the device item exists.
    device_exists: bool,
    /// Whether an operator's allowance of a re-enrollment is live.
    allowance_live: bool,
}

impl<'a> Connection<'a> {
    fn of(items: &'a [Item], connector: &str, now: UnixTime) -> Result<Self, StoreError> {
        let conn_sk = connection_sk(connector);
        let prefix = token_prefix(connector);
        let allow_sk = allowance_sk(connector);
        let version = match items.iter().find(|i| sk_of(i) == conn_sk) {
            Some(i) => Some(get_n(i, attr::VERSION)?),
            None => None,
        };
        let old: Vec<&Item> = items
            .iter()
            .filter(|i| sk_of(i).starts_with(&prefix))
            .collect();
        let mut replaced = false;
        for t in &old {
            replaced |= !is_expired(opt_n(t, schema::TTL_ATTRIBUTE)?, now);
        }
        let allowance_live = match items.iter().find(|i| sk_of(i) == allow_sk) {
            Some(a) => !is_expired(opt_n(a, schema::TTL_ATTRIBUTE)?, now),
            None => false,
        };
        Ok(Connection {
            version,
            old,
            replaced,
            device_exists: items.iter().any(|i| sk_of(i) == DEVICE),
            allowance_live,
        })
    }
}

/// The positions, in a transaction, of the conditions that decide a refusal rather than a retry.
#[derive(Default)]
struct Positions {
    allowance: Option<usize>,
    enrollment_token: Option<usize>,
}

impl DynamoStore {
    pub(super) async fn enroll_transaction(
        &self,
        device: &Device,
        token: &DeviceToken,
        grant: &EnrollGrant,
    ) -> Result<EnrollOutcome, StoreError> {
        let pk = device_pk(&device.identifier);
        // Sealed before any write: without the data key nothing is written.
        let keyring = self.keyring().await?;
        let sealed = Self::seal_key(
            &keyring,
            &pk,
            &token_sk(&token.connector, &token.id),
            &token.key,
        )?;
        // Optimistic concurrency on the connection's version item: of several concurrent
        // enrollments each round has one winner, and a loser retries on fresh state (deleting
        // the winner's token, or refused if the policy needs an allowance), so exactly one
        // token of the connection survives.
        for _ in 0..ATTEMPTS {
            // Only what the deletions need: never a key.
            let items = self
                .partition_of("Query device (enroll)", &pk, &Self::TOKEN_REFS)
                .await?;
            let found = Connection::of(&items, &token.connector, grant.now)?;
            // The rule is the domain's; this store enforces its answer with the conditional
            // Delete of the allowance.
            let uses_allowance =
                match reenrollment(grant.reenroll, found.replaced, found.allowance_live) {
                    Reenrollment::Proceed { uses_allowance } => uses_allowance,
                    Reenrollment::NeedsApproval => return Ok(EnrollOutcome::NeedsApproval),
                };
            let (actions, at) =
                self.enroll_actions(&pk, device, token, grant, &found, uses_allowance, &sealed)?;
            if actions.len() > MAX_ACTIONS {
                // More old tokens than one transaction holds: delete them first, then retry.
                let extra = self.token_deletions(&pk, &found.old)?;
                self.transact("TransactWriteItems revoke (enroll)", extra)
                    .await?;
                continue;
            }
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions))
                .send()
                .await;
            let e = match sent {
                Ok(_) => {
                    return Ok(EnrollOutcome::Enrolled {
                        replaced: found.replaced,
                        allowance_used: uses_allowance,
                    })
                }
                Err(e) => e,
            };
            let failed = failed_conditions(&e);
            if at.enrollment_token.is_some_and(|i| failed.contains(&i)) {
                return Ok(EnrollOutcome::TokenRefused);
            }
            // An allowance used or expired meanwhile, or a concurrent enrollment: look again.
            let allowance_gone = at.allowance.is_some_and(|i| failed.contains(&i));
            if !allowance_gone && !is_transaction_conflict(&e) {
                return Err(store_error("TransactWriteItems enroll", &e));
            }
        }
        Err(StoreError::Unavailable(
            "enrollment kept conflicting with concurrent enrollments".into(),
        ))
    }

    /// The transaction's actions, and where its refusing conditions stand in it.
    #[allow(clippy::too_many_arguments)]
    fn enroll_actions(
        &self,
        pk: &str,
        device: &Device,
        token: &DeviceToken,
        grant: &EnrollGrant,
        found: &Connection<'_>,
        uses_allowance: bool,
        sealed: &aws_sdk_dynamodb::types::AttributeValue,
    ) -> Result<(Vec<TransactWriteItem>, Positions), StoreError> {
        let mut actions = vec![
            self.connection_put(pk, &token.connector, found.version)?,
            self.device_update(device, found.device_exists)?,
        ];
        actions.extend(self.token_deletions(pk, &found.old)?);
        actions.extend(self.token_puts(pk, token, sealed.clone())?);
        let mut at = Positions::default();
        if uses_allowance {
            at.allowance = Some(actions.len());
            actions.push(self.allowance_delete(pk, &token.connector, grant.now)?);
        }
        if let Some(hash) = &grant.enrollment_token {
            at.enrollment_token = Some(actions.len());
            actions.extend(self.enrollment_use(hash, &device.identifier, grant.now)?);
        }
        if let Some(event) = &grant.audit {
            actions.push(self.put_action(self.audit_item(event)?)?);
        }
        Ok((actions, at))
    }

    /// The connection's version item, one higher, on condition that it is still `version`.
    fn connection_put(
        &self,
        pk: &str,
        connector: &str,
        version: Option<i64>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut conn = key(pk.to_string(), connection_sk(connector));
        conn.insert(attr::VERSION.into(), n(version.unwrap_or(0) + 1));
        let put = Put::builder().table_name(&self.table).set_item(Some(conn));
        let put = match version {
            Some(v) => put
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", attr::VERSION)
                .expression_attribute_values(":v", n(v)),
            None => put
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", schema::PK),
        };
        Ok(TransactWriteItem::builder()
            .put(built(put.build())?)
            .build())
    }

    /// The device item: an existing device keeps its id, name, creation time and any expiry
    /// the operator set (as on the reference); a new one gets the given values.
    fn device_update(
        &self,
        device: &Device,
        exists: bool,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut set = "SET #id = :id, #uuid = if_not_exists(#uuid, :uuid), #name = if_not_exists(#name, :name), #kind = :kind, #created = if_not_exists(#created, :created)".to_string();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(device_key(&device.identifier)))
            .expression_attribute_names("#id", attr::IDENTIFIER)
            .expression_attribute_names("#uuid", attr::DEVICE_ID)
            .expression_attribute_names("#name", attr::NAME)
            .expression_attribute_names("#kind", schema::KIND)
            .expression_attribute_names("#created", attr::CREATED_AT)
            .expression_attribute_values(":id", s(&device.identifier))
            .expression_attribute_values(":uuid", s(&device.id))
            .expression_attribute_values(":name", s(&device.name))
            .expression_attribute_values(":kind", s(DEVICE))
            .expression_attribute_values(":created", n(device.created_at));
        if let (false, Some(e)) = (exists, device.expires_at) {
            set.push_str(", #exp = :exp");
            update = update
                .expression_attribute_names("#exp", schema::TTL_ATTRIBUTE)
                .expression_attribute_values(":exp", n(e));
        }
        let update = update.update_expression(set);
        Ok(TransactWriteItem::builder()
            .update(built(update.build())?)
            .build())
    }

    /// The new token (its key sealed) and its index entry.
    fn token_puts(
        &self,
        pk: &str,
        token: &DeviceToken,
        sealed: aws_sdk_dynamodb::types::AttributeValue,
    ) -> Result<[TransactWriteItem; 2], StoreError> {
        let hash = token.key.sha256_hex();
        let mut t = key(pk.to_string(), token_sk(&token.connector, &token.id));
        t.insert(attr::TOKEN_ID.into(), s(&token.id));
        t.insert(attr::DEVICE.into(), s(&token.device));
        t.insert(attr::CONNECTOR.into(), s(&token.connector));
        t.insert(attr::KEY_SEALED.into(), sealed);
        t.insert(attr::KEY_SHA256.into(), s(&hash));
        t.insert(attr::CREATED_AT.into(), n(token.created_at));
        put_opt_n(&mut t, schema::TTL_ATTRIBUTE, token.expires_at);
        let mut idx = token_index_key(&hash);
        idx.insert(attr::TOKEN_ID.into(), s(&token.id));
        idx.insert(attr::DEVICE.into(), s(&token.device));
        idx.insert(attr::CONNECTOR.into(), s(&token.connector));
        put_opt_n(&mut idx, schema::TTL_ATTRIBUTE, token.expires_at);
        Ok([self.put_action(t)?, self.put_action(idx)?])
    }

    /// The operator's allowance, deleted on condition that it is still live.
    fn allowance_delete(
        &self,
        pk: &str,
        connector: &str,
        now: UnixTime,
    ) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_string(), allowance_sk(connector))))
            .condition_expression("#exp > :now")
            .expression_attribute_names("#exp", schema::TTL_ATTRIBUTE)
            .expression_attribute_values(":now", n(now));
        Ok(TransactWriteItem::builder()
            .delete(built(delete.build())?)
            .build())
    }

    /// One use of the enrollment token, counted on condition that it may still enroll (the
    /// store's form of `EnrollmentToken::refusal`), and the record of the serial it enrolled.
    fn enrollment_use(
        &self,
        hash: &str,
        serial: &str,
        now: UnixTime,
    ) -> Result<[TransactWriteItem; 2], StoreError> {
        let counted = Update::builder()
            .table_name(&self.table)
            .set_key(Some(enrollment_key(hash)))
            .update_expression("SET #uses = if_not_exists(#uses, :zero) + :one, #last = :now")
            .condition_expression(
                "attribute_exists(#pk) AND attribute_not_exists(#revoked) \
                 AND (attribute_not_exists(#exp) OR #exp > :now) \
                 AND (attribute_not_exists(#max) OR #uses < #max)",
            )
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#uses", attr::USES)
            .expression_attribute_names("#last", attr::LAST_USED_AT)
            .expression_attribute_names("#revoked", attr::REVOKED_AT)
            .expression_attribute_names("#exp", schema::TTL_ATTRIBUTE)
            .expression_attribute_names("#max", attr::MAX_USES)
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now));
        let mut used = key(enrollment_pk(hash), enrollment_use_sk(serial));
        used.insert(attr::SERIAL.into(), s(serial));
        used.insert(attr::CREATED_AT.into(), n(now));
        used.insert(schema::TTL_ATTRIBUTE.into(), n(now + self.audit_retention));
        Ok([
            TransactWriteItem::builder()
                .update(built(counted.build())?)
                .build(),
            self.put_action(used)?,
        ])
    }
}
