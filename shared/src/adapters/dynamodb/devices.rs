//! Devices, their tokens, the token index and facts snapshots.

use super::codec::json_from;
use super::codec::json_item;
use super::codec::{device_from, owners_value, token_from};
use super::dth::live_token;
use super::failure::{failed_conditions, is_condition_failed, store_error};
use super::item::built;
use super::item::{corrupt, get_n, get_s, n, opt_n, s, Item};
use super::schema;
use super::schema::compliance_sk;
use super::schema::ANY_COMPLIANCE;
use super::schema::DEVICE_PREFIX;
use super::schema::NON_COMPLIANT;
use super::schema::{
    attr, device_key, device_pk, facts_pk, facts_sk, key, sk_of, token_index_key, token_prefix,
    ANY_TOKEN, DEVICE,
};
use super::store::DynamoStore;
use crate::audit::AuditEvent;
use crate::error::StoreError;
use crate::model::ComplianceStatus;
use crate::model::Evaluation;
use crate::model::SignalEvent;
use crate::model::{
    is_expired, Device, DeviceLock, DeviceToken, DeviceWithTokens, FactsSnapshot, TokenInfo,
    TokenRef, UnixTime,
};
use crate::ports::{AuditLog, DeviceStore, EnrollGrant, EnrollOutcome};
use aws_sdk_dynamodb::types::AttributeValue as Av;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use std::collections::HashMap;

impl DynamoStore {
    /// The device (unless unknown or expired) and its partition's items, read through a
    /// projection without the keys: its tokens by id and connector, its evaluations.
    async fn device_without_keys(
        &self,
        op: &'static str,
        identifier: &str,
        now: UnixTime,
    ) -> Result<Option<(Device, Vec<Item>)>, StoreError> {
        let attributes = [
            schema::PK,
            schema::SK,
            schema::TTL_ATTRIBUTE,
            attr::IDENTIFIER,
            attr::DEVICE_ID,
            attr::NAME,
            attr::CREATED_AT,
            attr::LOCKED_SINCE,
            attr::LOCKED_UNTIL,
            attr::LOCK_REASON,
            attr::OWNERS,
            attr::TOKEN_ID,
            attr::CONNECTOR,
            attr::DATA,
        ];
        let items = self
            .partition_of(op, &device_pk(identifier), &attributes)
            .await?;
        let Some(device) = items.iter().find(|i| sk_of(i) == DEVICE) else {
            return Ok(None);
        };
        let device = device_from(device)?;
        if is_expired(device.expires_at, now) {
            return Ok(None);
        }
        Ok(Some((device, items)))
    }
}

/// The stored evaluations among a device partition's items.
fn evaluations_in(items: &[Item]) -> Result<Vec<Evaluation>, StoreError> {
    items
        .iter()
        .filter(|i| sk_of(i).starts_with(ANY_COMPLIANCE))
        .map(json_from)
        .collect()
}

/// The update expression of a lock (set, or lifted with `None`) and its values.
fn lock_update(lock: Option<&DeviceLock>) -> (String, Item) {
    let Some(l) = lock else {
        return ("REMOVE #since, #until, #reason".into(), Item::new());
    };
    let mut set = vec!["#since = :since"];
    let mut remove = Vec::new();
    let mut values = Item::from([(":since".to_string(), n(l.since))]);
    match l.until {
        Some(until) => {
            set.push("#until = :until");
            values.insert(":until".into(), n(until));
        }
        None => remove.push("#until"),
    }
    match &l.reason {
        Some(r) => {
            set.push("#reason = :reason");
            values.insert(":reason".into(), s(r));
        }
        None => remove.push("#reason"),
    }
    let mut expression = format!("SET {}", set.join(", "));
    if !remove.is_empty() {
        expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
    }
    (expression, values)
}

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
        let compliance = evaluations_in(&items)?;
        Ok(Some(DeviceWithTokens {
            device,
            tokens,
            compliance,
        }))
    }

    async fn device_profile(
        &self,
        identifier: &str,
        now: UnixTime,
    ) -> Result<Option<(Device, Vec<Evaluation>)>, StoreError> {
        // What authenticates an agent never reads key material.
        let Some((device, items)) = self
            .device_without_keys("Query device (profile)", identifier, now)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some((device, evaluations_in(&items)?)))
    }

    async fn put_evaluations(
        &self,
        identifier: &str,
        evaluations: &[Evaluation],
        audit: &[AuditEvent],
        signals: &[SignalEvent],
    ) -> Result<(), StoreError> {
        let pk = device_pk(identifier);
        // A non-compliant evaluation carries the `kind` of the sparse index that lists them.
        let item_of = |e: &Evaluation| {
            let kind = (e.status == ComplianceStatus::NonCompliant).then_some(NON_COMPLIANT);
            json_item(key(pk.clone(), compliance_sk(&e.policy)), kind, e)
        };
        match (evaluations, audit, signals) {
            ([], [], []) => Ok(()),
            // One item: a plain write (a transaction of one costs twice as much).
            ([e], [], []) => self.put("PutItem evaluation", item_of(e)?).await,
            ([], [event], []) => self.record(event).await,
            _ => {
                let mut actions =
                    Vec::with_capacity(evaluations.len() + audit.len() + signals.len());
                for e in evaluations {
                    actions.push(self.put_action(item_of(e)?)?);
                }
                for event in audit {
                    actions.push(self.put_action(self.audit_item(event)?)?);
                }
                // The outbox: the signal events in the same transaction as their change.
                for event in signals {
                    actions.push(self.put_action(self.signal_item(event)?)?);
                }
                self.transact("TransactWriteItems evaluations", actions)
                    .await
            }
        }
    }

    async fn non_compliant(
        &self,
        policy: Option<&str>,
    ) -> Result<Vec<(String, Evaluation)>, StoreError> {
        let mut out = Vec::new();
        for item in self.kind("Query non-compliant", NON_COMPLIANT).await? {
            let e: Evaluation = json_from(&item)?;
            let serial = get_s(&item, schema::PK)?
                .strip_prefix(DEVICE_PREFIX)
                .map(str::to_string)
                .ok_or_else(|| {
                    StoreError::Corrupt("a non-compliant evaluation outside a device".into())
                })?;
            if policy.is_none_or(|p| p == e.policy) {
                out.push((serial, e));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn devices_page(
        &self,
        after: Option<&str>,
        limit: usize,
        now: UnixTime,
    ) -> Result<(Vec<Device>, Option<String>), StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(schema::KIND_INDEX)
            .expression_attribute_names("#k", schema::KIND)
            .expression_attribute_values(":k", s(DEVICE))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX));
        query = match after {
            Some(serial) => query
                .key_condition_expression("#k = :k AND #pk > :after")
                .expression_attribute_names("#pk", schema::PK)
                .expression_attribute_values(":after", s(device_pk(serial))),
            None => query.key_condition_expression("#k = :k"),
        };
        let out = query
            .send()
            .await
            .map_err(|e| store_error("Query devices (page)", &e))?;
        let items = out.items.unwrap_or_default();
        let next = match (&out.last_evaluated_key, items.last()) {
            (Some(k), Some(last)) if !k.is_empty() => Some(get_s(last, attr::IDENTIFIER)?),
            _ => None,
        };
        let mut devices = Vec::with_capacity(items.len());
        for item in &items {
            let d = device_from(item)?;
            if !is_expired(d.expires_at, now) {
                devices.push(d);
            }
        }
        Ok((devices, next))
    }

    async fn device_token_info(
        &self,
        identifier: &str,
        now: UnixTime,
    ) -> Result<Option<(Device, Vec<TokenInfo>)>, StoreError> {
        // No key material is read, none is needed.
        let Some((device, items)) = self
            .device_without_keys("Query device (show)", identifier, now)
            .await?
        else {
            return Ok(None);
        };
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
        live_token(&item, now)
    }

    async fn token_and_device(
        &self,
        key_sha256: &str,
        identifier: &str,
        now: UnixTime,
    ) -> Result<(Option<TokenRef>, Option<Device>), StoreError> {
        self.token_and_device_batch(key_sha256, identifier, now)
            .await
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
        self.enroll_transaction(device, token, grant).await
    }

    async fn set_device_lock(
        &self,
        identifier: &str,
        lock: Option<&DeviceLock>,
        signal: Option<&SignalEvent>,
    ) -> Result<bool, StoreError> {
        let (expression, values) = lock_update(lock);
        let names: HashMap<String, String> = [
            ("#pk", schema::PK),
            ("#since", attr::LOCKED_SINCE),
            ("#until", attr::LOCKED_UNTIL),
            ("#reason", attr::LOCK_REASON),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(device_key(identifier)))
            .update_expression(expression)
            .condition_expression("attribute_exists(#pk)")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values));
        // The lock and its signal event in one write (the outbox).
        let mut actions = vec![TransactWriteItem::builder()
            .update(built(update.build())?)
            .build()];
        if let Some(event) = signal {
            actions.push(self.put_action(self.signal_item(event)?)?);
        }
        let r = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if failed_conditions(&e).contains(&0) => Ok(false),
            Err(e) => Err(store_error("TransactWriteItems device lock", &e)),
        }
    }

    async fn set_device_owners(
        &self,
        identifier: &str,
        owners: &[String],
    ) -> Result<bool, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(device_key(identifier)))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#owners", attr::OWNERS);
        let update = if owners.is_empty() {
            update.update_expression("REMOVE #owners")
        } else {
            update
                .update_expression("SET #owners = :owners")
                .expression_attribute_values(":owners", owners_value(owners))
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(store_error("UpdateItem device owners", &e)),
        }
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
