//! Devices, their tokens, the token index and facts snapshots.

use super::codec::{device_from, token_from};
use super::failure::{failed_conditions, is_transaction_conflict, store_error};
use super::item::{built, corrupt, get_n, get_s, n, opt_n, put_opt_n, s, Item};
use super::schema;
use super::schema::{
    allowance_sk, attr, connection_sk, device_key, device_pk, enrollment_key, enrollment_use_sk,
    facts_pk, facts_sk, key, sk_of, token_index_key, token_prefix, token_sk, ANY_TOKEN, DEVICE,
};
use super::store::DynamoStore;
use crate::error::StoreError;
use crate::model::{
    is_expired, reenrollment, Device, DeviceToken, DeviceWithTokens, FactsSnapshot, Reenrollment,
    TokenInfo, TokenRef, UnixTime,
};
use crate::ports::{DeviceStore, EnrollGrant, EnrollOutcome};
use aws_sdk_dynamodb::types::AttributeValue as Av;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};

impl DeviceStore for DynamoStore {
    async fn device_with_tokens(
        &self,
        identifier: &str,
        now: UnixTime,
    ) -> Result<Option<DeviceWithTokens>, StoreError> {
        // Cold, the data key is read beside the query (not after it); warm, this is free.
        let pk = device_pk(identifier);
        let (items, ()) = futures::join!(self.partition("Query device", &pk), self.warm_keyring());
        let items = items?;
        let Some(device) = items.iter().find(|i| sk_of(i) == DEVICE) else {
            return Ok(None);
        };
        let device = device_from(device)?;
        if is_expired(device.expires_at, now) {
            return Ok(None);
        }
        let mut tokens = Vec::new();
        for item in items.iter().filter(|i| sk_of(i).starts_with(ANY_TOKEN)) {
            if is_expired(opt_n(item, schema::TTL_ATTRIBUTE)?, now) {
                continue;
            }
            if let Some(key) = self.token_key(item).await? {
                tokens.push(token_from(item, key)?);
            }
        }
        Ok(Some(DeviceWithTokens { device, tokens }))
    }

    async fn device_token_info(
        &self,
        identifier: &str,
        now: UnixTime,
    ) -> Result<Option<(Device, Vec<TokenInfo>)>, StoreError> {
        // A projection without the keys: no key material is read, none is needed.
        let attributes = [
            schema::PK,
            schema::SK,
            schema::TTL_ATTRIBUTE,
            attr::IDENTIFIER,
            attr::DEVICE_ID,
            attr::NAME,
            attr::CREATED_AT,
            attr::TOKEN_ID,
            attr::CONNECTOR,
        ];
        let items = self
            .partition_of("Query device (show)", &device_pk(identifier), &attributes)
            .await?;
        let Some(device) = items.iter().find(|i| sk_of(i) == DEVICE) else {
            return Ok(None);
        };
        let device = device_from(device)?;
        if is_expired(device.expires_at, now) {
            return Ok(None);
        }
        let mut tokens = Vec::new();
        for item in items.iter().filter(|i| sk_of(i).starts_with(ANY_TOKEN)) {
            let expires_at = opt_n(item, schema::TTL_ATTRIBUTE)?;
            if !is_expired(expires_at, now) {
                tokens.push(TokenInfo {
                    id: get_s(item, attr::TOKEN_ID)?,
                    connector: get_s(item, attr::CONNECTOR)?,
                    created_at: get_n(item, attr::CREATED_AT)?,
                    expires_at,
                });
            }
        }
        Ok(Some((device, tokens)))
    }

    async fn token_by_hash(
        &self,
        key_sha256: &str,
        now: UnixTime,
    ) -> Result<Option<TokenRef>, StoreError> {
        let Some(item) = self
            .get("GetItem token hash", token_index_key(key_sha256))
            .await?
        else {
            return Ok(None);
        };
        let t = TokenRef {
            token_id: get_s(&item, attr::TOKEN_ID)?,
            device: get_s(&item, attr::DEVICE)?,
            connector: get_s(&item, attr::CONNECTOR)?,
            expires_at: opt_n(&item, schema::TTL_ATTRIBUTE)?,
        };
        Ok((!is_expired(t.expires_at, now)).then_some(t))
    }

    async fn get_device(
        &self,
        identifier: &str,
        now: UnixTime,
    ) -> Result<Option<Device>, StoreError> {
        match self.get("GetItem device", device_key(identifier)).await? {
            Some(item) => {
                let d = device_from(&item)?;
                Ok((!is_expired(d.expires_at, now)).then_some(d))
            }
            None => Ok(None),
        }
    }

    async fn list_devices(&self, now: UnixTime) -> Result<Vec<Device>, StoreError> {
        let mut out = Vec::new();
        for item in self.kind("Query devices", DEVICE).await? {
            let d = device_from(&item)?;
            if !is_expired(d.expires_at, now) {
                out.push(d);
            }
        }
        out.sort_by(|a, b| a.identifier.cmp(&b.identifier));
        Ok(out)
    }

    async fn enroll(
        &self,
        device: &Device,
        token: &DeviceToken,
        grant: &EnrollGrant,
    ) -> Result<EnrollOutcome, StoreError> {
        let pk = device_pk(&device.identifier);
        let conn_sk = connection_sk(&token.connector);
        let token_prefix = token_prefix(&token.connector);
        let allow_sk = allowance_sk(&token.connector);
        let now = grant.now;
        // Sealed before any write: without the data key nothing is written.
        let keyring = self.keyring().await?;
        let new_sk = token_sk(&token.connector, &token.id);
        let sealed = Self::seal_key(&keyring, &pk, &new_sk, &token.key)?;
        // Optimistic concurrency on the connection's version item: of several concurrent
        // enrollments each round has one winner, and a loser retries on fresh state (deleting
        // the winner's token, or refused if the policy needs an allowance), so exactly one
        // token of the connection survives.
        for _ in 0..8 {
            // Only what the deletions need: never a key.
            let items = self
                .partition_of("Query device (enroll)", &pk, &Self::TOKEN_REFS)
                .await?;
            let version = match items.iter().find(|i| sk_of(i) == conn_sk) {
                Some(i) => Some(get_n(i, attr::VERSION)?),
                None => None,
            };
            let old: Vec<&Item> = items
                .iter()
                .filter(|i| sk_of(i).starts_with(&token_prefix))
                .collect();
            let mut replaced = false;
            for t in &old {
                replaced |= !is_expired(opt_n(t, schema::TTL_ATTRIBUTE)?, now);
            }
            let allowance_live = match items.iter().find(|i| sk_of(i) == allow_sk) {
                Some(a) => !is_expired(opt_n(a, schema::TTL_ATTRIBUTE)?, now),
                None => false,
            };
            // The rule is the domain's; this store enforces its answer with the conditional
            // Delete of the allowance below.
            let needs_allowance = match reenrollment(grant.reenroll, replaced, allowance_live) {
                Reenrollment::Proceed { uses_allowance } => uses_allowance,
                Reenrollment::NeedsApproval => return Ok(EnrollOutcome::NeedsApproval),
            };
            let mut actions = Vec::with_capacity(8 + 2 * old.len());

            let mut conn = key(pk.clone(), conn_sk.clone());
            conn.insert(attr::VERSION.into(), n(version.unwrap_or(0) + 1));
            let mut put = Put::builder().table_name(&self.table).set_item(Some(conn));
            put = match version {
                Some(v) => put
                    .condition_expression("#v = :v")
                    .expression_attribute_names("#v", attr::VERSION)
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
            let exists = items.iter().any(|i| sk_of(i) == DEVICE);
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
            actions.push(
                TransactWriteItem::builder()
                    .update(built(update.build())?)
                    .build(),
            );
            actions.extend(self.token_deletions(&pk, &old)?);

            let mut t = key(pk.clone(), new_sk.clone());
            t.insert(attr::TOKEN_ID.into(), s(&token.id));
            t.insert(attr::DEVICE.into(), s(&token.device));
            t.insert(attr::CONNECTOR.into(), s(&token.connector));
            t.insert(attr::KEY_SEALED.into(), sealed.clone());
            t.insert(attr::KEY_SHA256.into(), s(token.key.sha256_hex()));
            t.insert(attr::CREATED_AT.into(), n(token.created_at));
            put_opt_n(&mut t, schema::TTL_ATTRIBUTE, token.expires_at);
            actions.push(self.put_action(t)?);

            let mut idx = token_index_key(&token.key.sha256_hex());
            idx.insert(attr::TOKEN_ID.into(), s(&token.id));
            idx.insert(attr::DEVICE.into(), s(&token.device));
            idx.insert(attr::CONNECTOR.into(), s(&token.connector));
            put_opt_n(&mut idx, schema::TTL_ATTRIBUTE, token.expires_at);
            actions.push(self.put_action(idx)?);

            // The positions of the conditions that decide a refusal rather than a retry.
            let mut allowance_at = None;
            if needs_allowance {
                allowance_at = Some(actions.len());
                let delete = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(pk.clone(), allow_sk.clone())))
                    .condition_expression("#exp > :now")
                    .expression_attribute_names("#exp", schema::TTL_ATTRIBUTE)
                    .expression_attribute_values(":now", n(now));
                actions.push(
                    TransactWriteItem::builder()
                        .delete(built(delete.build())?)
                        .build(),
                );
            }
            let mut enrollment_at = None;
            if let Some(hash) = &grant.enrollment_token {
                enrollment_at = Some(actions.len());
                let counted = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(enrollment_key(hash)))
                    .update_expression(
                        "SET #uses = if_not_exists(#uses, :zero) + :one, #last = :now",
                    )
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
                actions.push(
                    TransactWriteItem::builder()
                        .update(built(counted.build())?)
                        .build(),
                );
                let mut used = key(
                    format!("ENROLL#{hash}"),
                    enrollment_use_sk(&device.identifier),
                );
                used.insert(attr::SERIAL.into(), s(&device.identifier));
                used.insert(attr::CREATED_AT.into(), n(now));
                used.insert(schema::TTL_ATTRIBUTE.into(), n(now + self.audit_retention));
                actions.push(self.put_action(used)?);
            }
            if let Some(event) = &grant.audit {
                actions.push(self.put_action(self.audit_item(event)?)?);
            }

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
                Ok(_) => {
                    return Ok(EnrollOutcome::Enrolled {
                        replaced,
                        allowance_used: needs_allowance,
                    })
                }
                Err(e) => {
                    let failed = failed_conditions(&e);
                    if enrollment_at.is_some_and(|i| failed.contains(&i)) {
                        return Ok(EnrollOutcome::TokenRefused);
                    }
                    if allowance_at.is_some_and(|i| failed.contains(&i)) {
                        // Used or expired meanwhile: look again (another enrollment may have
                        // replaced the token, or the allowance is simply gone).
                        continue;
                    }
                    if is_transaction_conflict(&e) {
                        continue;
                    }
                    return Err(store_error("TransactWriteItems enroll", &e));
                }
            }
        }
        Err(StoreError::Unavailable(
            "enrollment kept conflicting with concurrent enrollments".into(),
        ))
    }

    async fn allow_reenroll(
        &self,
        identifier: &str,
        connector: &str,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        let mut item = key(device_pk(identifier), allowance_sk(connector));
        item.insert(attr::CONNECTOR.into(), s(connector));
        item.insert(schema::TTL_ATTRIBUTE.into(), n(until));
        self.put("PutItem re-enroll allowance", item).await
    }

    async fn revoke_tokens(&self, identifier: &str, connector: &str) -> Result<usize, StoreError> {
        let pk = device_pk(identifier);
        let prefix = token_prefix(connector);
        let items = self
            .partition_of("Query device (revoke)", &pk, &Self::TOKEN_REFS)
            .await?;
        let old: Vec<&Item> = items
            .iter()
            .filter(|i| sk_of(i).starts_with(&prefix))
            .collect();
        let actions = self.token_deletions(&pk, &old)?;
        self.transact("TransactWriteItems revoke", actions).await?;
        Ok(old.len())
    }

    async fn put_facts(&self, f: &FactsSnapshot) -> Result<(), StoreError> {
        let mut item = key(facts_pk(&f.device), facts_sk(&f.connector));
        item.insert(attr::DEVICE.into(), s(&f.device));
        item.insert(attr::CONNECTOR.into(), s(&f.connector));
        item.insert(
            attr::FACTS_DEFLATE.into(),
            Av::B(aws_smithy_types::Blob::new(f.facts_deflate.clone())),
        );
        item.insert(attr::TRUNCATED.into(), Av::Bool(f.truncated));
        item.insert(attr::CREATED_AT.into(), n(f.created_at));
        item.insert(schema::TTL_ATTRIBUTE.into(), n(f.expires_at));
        self.put("PutItem facts", item).await
    }

    async fn latest_facts(
        &self,
        identifier: &str,
        now: UnixTime,
    ) -> Result<Option<FactsSnapshot>, StoreError> {
        let mut latest: Option<FactsSnapshot> = None;
        for item in self.partition("Query facts", &facts_pk(identifier)).await? {
            let f = FactsSnapshot {
                device: get_s(&item, attr::DEVICE)?,
                connector: get_s(&item, attr::CONNECTOR)?,
                facts_deflate: item
                    .get(attr::FACTS_DEFLATE)
                    .and_then(|v| v.as_b().ok())
                    .map(|b| b.clone().into_inner())
                    .ok_or_else(|| corrupt(attr::FACTS_DEFLATE))?,
                truncated: item
                    .get(attr::TRUNCATED)
                    .and_then(|v| v.as_bool().ok())
                    .copied()
                    .unwrap_or(false),
                created_at: get_n(&item, attr::CREATED_AT)?,
                expires_at: get_n(&item, schema::TTL_ATTRIBUTE)?,
            };
            if f.expires_at > now && latest.as_ref().is_none_or(|l| f.created_at > l.created_at) {
                latest = Some(f);
            }
        }
        Ok(latest)
    }

    async fn delete_device(&self, identifier: &str) -> Result<bool, StoreError> {
        let facts_pk = facts_pk(identifier);
        let facts: Vec<TransactWriteItem> = self
            .partition("Query facts (delete)", &facts_pk)
            .await?
            .iter()
            .map(|i| self.delete_action(key(facts_pk.clone(), sk_of(i))))
            .collect::<Result<_, _>>()?;
        self.transact("TransactWriteItems delete facts", facts)
            .await?;
        let pk = device_pk(identifier);
        let items = self
            .partition_of("Query device (delete)", &pk, &Self::TOKEN_REFS)
            .await?;
        let existed = items.iter().any(|i| sk_of(i) == DEVICE);
        let tokens: Vec<&Item> = items
            .iter()
            .filter(|i| sk_of(i).starts_with(ANY_TOKEN))
            .collect();
        let mut actions = self.token_deletions(&pk, &tokens)?;
        for i in items.iter().filter(|i| !sk_of(i).starts_with(ANY_TOKEN)) {
            actions.push(self.delete_action(key(pk.clone(), sk_of(i)))?);
        }
        self.transact("TransactWriteItems delete device", actions)
            .await?;
        Ok(existed)
    }
}
