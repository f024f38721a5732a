//! Enrollment as one transaction: the connection's version item (optimistic concurrency), the
//! device (conditioned on its own version, so that the domain's re-enrollment rule sees the
//! serial's connections as they are when the write lands), the deletion of the connection's
//! older tokens with their index entries, the new token and its index entry, the enrollment
//! token's use, and the audit record.

use aws_sdk_dynamodb::types::{ConditionCheck, Put, TransactWriteItem, Update};

use super::codec::owners_value;
use super::failure::{failed_conditions, is_transaction_conflict, store_error};
use super::item::{built, get_n, n, opt_n, put_opt_n, s, Item};
use super::schema::{
    self, attr, connection_sk, device_key, device_pk, enrollment_key, enrollment_pk,
    enrollment_use_sk, key, keyring_key, sk_of, token_index_key, token_prefix, token_sk,
    ANY_CONNECTION, ANY_TOKEN, DEVICE,
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
    /// The device item's version (`Some(None)`: it exists, written before versions), or
    /// `None` if the device does not exist.
    device: Option<Option<i64>>,
    /// Every connector the serial is enrolled on (a connection item or a token).
    connectors: Vec<&'a str>,
}

impl<'a> Connection<'a> {
    fn of(items: &'a [Item], connector: &str, now: UnixTime) -> Result<Self, StoreError> {
        let conn_sk = connection_sk(connector);
        let prefix = token_prefix(connector);
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
        let device = match items.iter().find(|i| sk_of(i) == DEVICE) {
            Some(d) => Some(opt_n(d, attr::VERSION)?),
            None => None,
        };
        let mut connectors: Vec<&str> = items
            .iter()
            .filter_map(|i| {
                let sk = sk_of(i);
                sk.strip_prefix(ANY_CONNECTION).or_else(|| {
                    sk.strip_prefix(ANY_TOKEN)
                        .and_then(|rest| rest.split_once('#').map(|(c, _)| c))
                })
            })
            .collect();
        connectors.sort_unstable();
        connectors.dedup();
        Ok(Connection {
            version,
            old,
            replaced,
            device,
            connectors,
        })
    }
}

/// The positions, in a transaction, of the conditions that decide a refusal or a new seal
/// rather than a plain retry.
/// What sending an enrollment's transaction came to.
enum Sent {
    Committed,
    /// The enrollment token's condition failed (used up, revoked, expired meanwhile).
    TokenRefused,
    /// The keyring's seal generation changed (a rotation began).
    KeyringChanged,
    /// The device or the connection changed under it.
    Conflict,
}

#[derive(Default)]
struct Positions {
    enrollment_token: Option<usize>,
    keyring: Option<usize>,
}

impl DynamoStore {
    pub(super) async fn enroll_transaction(
        &self,
        device: &Device,
        token: &DeviceToken,
        grant: &EnrollGrant,
    ) -> Result<EnrollOutcome, StoreError> {
        let pk = device_pk(&device.identifier);
        let sk = token_sk(&token.connector, &token.id);
        // Sealed before any write: without the data key nothing is written. The transaction
        // checks that the keyring still seals with this generation (a rotation may begin).
        let mut keyring = self.keyring().await?;
        // What an attempt that was sent would have answered.
        let mut sent_outcome = None;
        // Optimistic concurrency on the device's and the connection's version items: of
        // several concurrent enrollments each round has one winner, and a loser retries on
        // fresh state (deleting the winner's token, or refused if the serial now exists and
        // its grant does not cover that), so exactly one token of the connection survives.
        for _ in 0..ATTEMPTS {
            // Only what the deletions need: never a key.
            let items = self
                .partition_of("Query device (enroll)", &pk, &Self::TOKEN_REFS)
                .await?;
            let found = Connection::of(&items, &token.connector, grant.now)?;
            // This enrollment's own token is there: an attempt committed although its answer
            // was lost (a timeout; token ids are new for every enrollment). Done, and nothing
            // to write again (its deletion and put in one transaction would be refused).
            if items.iter().any(|i| sk_of(i) == sk) {
                return Ok(sent_outcome.unwrap_or(EnrollOutcome::Enrolled {
                    existed: true,
                    replaced: false,
                }));
            }
            // The rule is the domain's; this store enforces its answer with the condition on
            // the device's version.
            let exists = found.device.is_some();
            if reenrollment(&grant.existing, exists, &found.connectors)
                == Reenrollment::NeedsApproval
            {
                return Ok(EnrollOutcome::NeedsApproval);
            }
            let sealed = Self::seal_key(&keyring, &pk, &sk, &token.key)?;
            let (mut actions, mut at) =
                self.enroll_actions(&pk, device, token, grant, &found, &sealed)?;
            at.keyring = Some(actions.len());
            actions.push(self.sealing_generation_check(keyring.seal_generation)?);
            if actions.len() > MAX_ACTIONS {
                // More old tokens than one transaction holds: delete them first, then retry.
                let extra = self.token_deletions(&pk, &found.old)?;
                self.transact("TransactWriteItems revoke (enroll)", extra)
                    .await?;
                continue;
            }
            let enrolled = EnrollOutcome::Enrolled {
                existed: exists,
                replaced: found.replaced,
            };
            sent_outcome = Some(enrolled);
            match self.send_enrollment(actions, &at).await? {
                Sent::Committed => return Ok(enrolled),
                Sent::TokenRefused => return Ok(EnrollOutcome::TokenRefused),
                // A rotation began since the keyring was read: seal with its next data key.
                Sent::KeyringChanged => keyring = self.reload_keyring().await?,
                // A concurrent enrollment changed the device or the connection: look again.
                Sent::Conflict => {}
            }
        }
        Err(StoreError::Unavailable(
            "enrollment kept conflicting with concurrent enrollments".into(),
        ))
    }

    /// Sends the enrollment's transaction; what a refusal was refused for.
    async fn send_enrollment(
        &self,
        actions: Vec<TransactWriteItem>,
        at: &Positions,
    ) -> Result<Sent, StoreError> {
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        let e = match sent {
            Ok(_) => return Ok(Sent::Committed),
            Err(e) => e,
        };
        let failed = failed_conditions(&e);
        if at.enrollment_token.is_some_and(|i| failed.contains(&i)) {
            return Ok(Sent::TokenRefused);
        }
        if at.keyring.is_some_and(|i| failed.contains(&i)) {
            return Ok(Sent::KeyringChanged);
        }
        if failed.is_empty() && !is_transaction_conflict(&e) {
            return Err(store_error("TransactWriteItems enroll", &e));
        }
        Ok(Sent::Conflict)
    }

    /// The transaction's actions, and where its refusing condition stands in it.
    fn enroll_actions(
        &self,
        pk: &str,
        device: &Device,
        token: &DeviceToken,
        grant: &EnrollGrant,
        found: &Connection<'_>,
        sealed: &aws_sdk_dynamodb::types::AttributeValue,
    ) -> Result<(Vec<TransactWriteItem>, Positions), StoreError> {
        let mut actions = vec![
            self.connection_put(pk, &token.connector, found.version)?,
            self.device_update(device, found.device)?,
        ];
        actions.extend(self.token_deletions(pk, &found.old)?);
        actions.extend(self.token_puts(pk, token, sealed.clone())?);
        let mut at = Positions::default();
        if let Some(hash) = &grant.enrollment_token {
            at.enrollment_token = Some(actions.len());
            actions.extend(self.enrollment_use(hash, &device.identifier, grant.now)?);
        }
        if let Some(event) = &grant.audit {
            actions.push(self.put_action(self.audit_item(event)?)?);
        }
        Ok((actions, at))
    }

    /// A check that the keyring still seals with `generation` (its next one during a rotation).
    pub(super) fn sealing_generation_check(
        &self,
        generation: u32,
    ) -> Result<TransactWriteItem, StoreError> {
        let condition = if generation == 0 {
            "attribute_not_exists(#next) AND (attribute_not_exists(#gen) OR #gen = :g)"
        } else {
            "(attribute_not_exists(#next) AND #gen = :g) OR #next = :g"
        };
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(keyring_key()))
            .condition_expression(condition)
            .expression_attribute_names("#gen", attr::GENERATION)
            .expression_attribute_names("#next", attr::NEXT_GENERATION)
            .expression_attribute_values(":g", n(generation.into()));
        Ok(TransactWriteItem::builder()
            .condition_check(built(check.build())?)
            .build())
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

    /// The device item: an existing device keeps its id, name, creation time, lock and any
    /// expiry the operator set (as on the reference), and its owners unless `device` has some
    /// (an enrollment token's owner); a new one gets the given values. Its
    /// version goes one up, on condition that it is still what the attempt read (`found`).
    fn device_update(
        &self,
        device: &Device,
        found: Option<Option<i64>>,
    ) -> Result<TransactWriteItem, StoreError> {
        let exists = found.is_some();
        let mut set = "SET #id = :id, #uuid = if_not_exists(#uuid, :uuid), #name = if_not_exists(#name, :name), #kind = :kind, #created = if_not_exists(#created, :created), #ver = :ver".to_string();
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
        // An enrollment token's owner: the device's only owner from now on (new or not).
        if !device.owners.is_empty() {
            set.push_str(", #owners = :owners");
            update = update
                .expression_attribute_names("#owners", attr::OWNERS)
                .expression_attribute_values(":owners", owners_value(&device.owners));
        }
        if let (false, Some(e)) = (exists, device.expires_at) {
            set.push_str(", #exp = :exp");
            update = update
                .expression_attribute_names("#exp", schema::TTL_ATTRIBUTE)
                .expression_attribute_values(":exp", n(e));
        }
        let version = found.flatten();
        let update = update
            .update_expression(set)
            .expression_attribute_names("#ver", attr::VERSION)
            .expression_attribute_values(":ver", n(version.unwrap_or(0) + 1));
        let update = match (exists, version) {
            (false, _) => update
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", schema::PK),
            (true, None) => update
                .condition_expression("attribute_exists(#pk) AND attribute_not_exists(#ver)")
                .expression_attribute_names("#pk", schema::PK),
            (true, Some(v)) => update
                .condition_expression("#ver = :old")
                .expression_attribute_values(":old", n(v)),
        };
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
        // Listed by connector (the kind index): which devices a key rotation waits for.
        idx.insert(
            schema::KIND.into(),
            s(schema::connector_tokens_kind(&token.connector)),
        );
        put_opt_n(&mut idx, schema::TTL_ATTRIBUTE, token.expires_at);
        Ok([self.put_action(t)?, self.put_action(idx)?])
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
