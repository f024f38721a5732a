//! Shared Signals receivers and streams: JSON items the `kind` index lists. A stream carries
//! its `version` as an attribute, and every write of it is conditioned on the version read; a
//! receiver's streams are counted (`STREAM#COUNT#<receiver>`) in the transaction that creates
//! or deletes one, so that concurrent creations cannot pass the limit. A push stream's
//! `Authorization` header is sealed like device keys (`auth_sealed`, under the keyring's data
//! key, bound to the item's key), never stored in the clear; a write that seals one checks in
//! the same transaction that the keyring still seals with that generation (as enrollment does),
//! so that a function holding a keyring from before a rotation cannot seal under the key the
//! rotation retires.

use aws_sdk_dynamodb::types::AttributeValue as Av;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use aws_smithy_types::Blob;

use super::codec::{json_from, json_item};
use super::failure::{failed_conditions, is_condition_failed, store_error};
use super::item::{built, corrupt, get_s, n, Item};
use super::keyring::aad;
use super::schema::{
    self, attr, receiver_key, sk_of, stream_count_key, stream_key, RECEIVER, STREAM,
};
use super::store::DynamoStore;
use crate::adapters::sealing::generation_of;
use crate::error::StoreError;
use crate::model::{Receiver, Stream};

/// How often a stream write seals again after the keyring changed under it.
const KEYRING_ATTEMPTS: usize = 3;

fn keyring_moving() -> StoreError {
    StoreError::Unavailable("the sealing keyring kept changing during the write".into())
}

impl DynamoStore {
    pub(super) async fn store_receiver(&self, r: &Receiver) -> Result<(), StoreError> {
        let item = json_item(receiver_key(&r.id), Some(RECEIVER), r)?;
        self.put("PutItem receiver", item).await
    }

    pub(super) async fn read_receiver(&self, id: &str) -> Result<Option<Receiver>, StoreError> {
        match self.get("GetItem receiver", receiver_key(id)).await? {
            Some(item) => Ok(Some(json_from(&item)?)),
            None => Ok(None),
        }
    }

    pub(super) async fn all_receivers(&self) -> Result<Vec<Receiver>, StoreError> {
        let items = self.kind("Query receivers", RECEIVER).await?;
        items.iter().map(json_from).collect()
    }

    /// A stream's item at `version`: its authorization header sealed, not in the JSON; with the
    /// data key generation that sealed it.
    async fn stream_item(
        &self,
        st: &Stream,
        version: u64,
    ) -> Result<(Item, Option<u32>), StoreError> {
        let stored = Stream {
            version,
            authorization_header: None,
            ..st.clone()
        };
        let key = stream_key(&st.id);
        let (pk, sk) = (get_s(&key, schema::PK)?, get_s(&key, schema::SK)?);
        let mut item = json_item(key, Some(STREAM), &stored)?;
        item.insert(attr::VERSION.into(), n(version as i64));
        let mut sealed_by = None;
        if let Some(header) = &st.authorization_header {
            let keyring = self.keyring().await?;
            let generation = keyring.seal_generation;
            let data_key = keyring.key(generation).ok_or_else(|| {
                StoreError::Unavailable("the sealing data key is not loaded".into())
            })?;
            let sealed = data_key.seal(generation, &aad(&pk, &sk), header.as_bytes())?;
            item.insert(attr::AUTH_SEALED.into(), Av::B(Blob::new(sealed)));
            sealed_by = Some(generation);
        }
        Ok((item, sealed_by))
    }

    /// A stream as stored, its authorization header opened. One sealed under a data key that
    /// was retired is dropped (logged): the receiver sets it again.
    async fn stream_from(&self, item: &Item) -> Result<Stream, StoreError> {
        let mut st: Stream = json_from(item)?;
        let Some(sealed) = item.get(attr::AUTH_SEALED).and_then(|v| v.as_b().ok()) else {
            return Ok(st);
        };
        let generation =
            generation_of(sealed.as_ref()).ok_or_else(|| corrupt(attr::AUTH_SEALED))?;
        let mut keyring = self.keyring().await?;
        if keyring.key(generation).is_none() {
            keyring = self.reload_keyring().await?;
        }
        let Some(data_key) = keyring.key(generation) else {
            tracing::warn!(
                event = "retired_data_key_refused",
                generation,
                "a push stream's authorization header sealed under a retired data key was dropped"
            );
            st.authorization_header = None;
            return Ok(st);
        };
        let aad = aad(&get_s(item, schema::PK)?, sk_of(item));
        let plain = data_key.open(&aad, sealed.as_ref())?;
        st.authorization_header =
            Some(String::from_utf8(plain).map_err(|_| corrupt(attr::AUTH_SEALED))?);
        Ok(st)
    }

    pub(super) async fn insert_stream(&self, st: &Stream, max: usize) -> Result<bool, StoreError> {
        for _ in 0..KEYRING_ATTEMPTS {
            let count = Update::builder()
                .table_name(&self.table)
                .set_key(Some(stream_count_key(&st.receiver)))
                .update_expression("SET #c = if_not_exists(#c, :zero) + :one")
                .condition_expression("attribute_not_exists(#c) OR #c < :max")
                .expression_attribute_names("#c", attr::COUNT)
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":max", n(max as i64));
            let (item, sealed_by) = self.stream_item(st, st.version).await?;
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", schema::PK);
            let mut actions = vec![
                TransactWriteItem::builder()
                    .update(built(count.build())?)
                    .build(),
                TransactWriteItem::builder()
                    .put(built(put.build())?)
                    .build(),
            ];
            if let Some(g) = sealed_by {
                actions.push(self.sealing_generation_check(g)?);
            }
            let r = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions))
                .send()
                .await;
            match r {
                Ok(_) => return Ok(true),
                Err(e) if failed_conditions(&e) == [2] => {
                    // A rotation began or ended since the keyring was read: seal again.
                    self.reload_keyring().await?;
                }
                Err(e) if !failed_conditions(&e).is_empty() => return Ok(false),
                Err(e) => return Err(store_error("TransactWriteItems create stream", &e)),
            }
        }
        Err(keyring_moving())
    }

    pub(super) async fn replace_stream(&self, st: &Stream) -> Result<bool, StoreError> {
        // A stream written before versions were kept has none: version 0.
        let condition = if st.version == 0 {
            "attribute_exists(#pk) AND (attribute_not_exists(#v) OR #v = :v)"
        } else {
            "#v = :v"
        };
        for _ in 0..KEYRING_ATTEMPTS {
            let (item, sealed_by) = self.stream_item(st, st.version + 1).await?;
            let mut put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(condition)
                .expression_attribute_names("#v", attr::VERSION)
                .expression_attribute_values(":v", n(st.version as i64));
            if st.version == 0 {
                put = put.expression_attribute_names("#pk", schema::PK);
            }
            let Some(g) = sealed_by else {
                // Nothing sealed: one conditional put.
                let put = built(put.build())?;
                let r = self
                    .client
                    .put_item()
                    .table_name(put.table_name)
                    .set_item(Some(put.item))
                    .set_condition_expression(put.condition_expression)
                    .set_expression_attribute_names(put.expression_attribute_names)
                    .set_expression_attribute_values(put.expression_attribute_values)
                    .send()
                    .await;
                return match r {
                    Ok(_) => Ok(true),
                    Err(e) if is_condition_failed(&e) => Ok(false),
                    Err(e) => Err(store_error("PutItem stream", &e)),
                };
            };
            let r = self
                .client
                .transact_write_items()
                .set_transact_items(Some(vec![
                    TransactWriteItem::builder()
                        .put(built(put.build())?)
                        .build(),
                    self.sealing_generation_check(g)?,
                ]))
                .send()
                .await;
            match r {
                Ok(_) => return Ok(true),
                Err(e) if failed_conditions(&e) == [1] => {
                    self.reload_keyring().await?;
                }
                Err(e) if !failed_conditions(&e).is_empty() => return Ok(false),
                Err(e) => return Err(store_error("TransactWriteItems stream", &e)),
            }
        }
        Err(keyring_moving())
    }

    pub(super) async fn read_stream(&self, id: &str) -> Result<Option<Stream>, StoreError> {
        match self.get("GetItem stream", stream_key(id)).await? {
            Some(item) => Ok(Some(self.stream_from(&item).await?)),
            None => Ok(None),
        }
    }

    pub(super) async fn all_streams(&self) -> Result<Vec<Stream>, StoreError> {
        let items = self.kind("Query streams", STREAM).await?;
        let mut streams = Vec::with_capacity(items.len());
        for item in &items {
            streams.push(self.stream_from(item).await?);
        }
        Ok(streams)
    }

    pub(super) async fn remove_stream(&self, st: &Stream) -> Result<bool, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(stream_key(&st.id)))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK);
        // Never below zero (streams created before they were counted).
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(stream_count_key(&st.receiver)))
            .update_expression("SET #c = if_not_exists(#c, :one) - :one")
            .condition_expression("attribute_not_exists(#c) OR #c > :zero")
            .expression_attribute_names("#c", attr::COUNT)
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1));
        let r = self
            .client
            .transact_write_items()
            .set_transact_items(Some(vec![
                TransactWriteItem::builder()
                    .delete(built(delete.build())?)
                    .build(),
                TransactWriteItem::builder()
                    .update(built(count.build())?)
                    .build(),
            ]))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if failed_conditions(&e).contains(&0) => Ok(false),
            Err(e) if failed_conditions(&e) == [1] => {
                // Counted at zero: delete without counting.
                self.delete_existing("DeleteItem stream", stream_key(&st.id))
                    .await
            }
            Err(e) => Err(store_error("TransactWriteItems delete stream", &e)),
        }
    }

    /// Raises each receiver's stream count to the streams it holds (streams created before
    /// they were counted: the limit counts them too from then on); never lowers one, so a
    /// creation racing this is not undone. How many counts were raised.
    pub(super) async fn count_streams(&self) -> Result<usize, StoreError> {
        let mut held: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
        for item in self.kind("Query streams (migrate)", STREAM).await? {
            let st: Stream = json_from(&item)?;
            *held.entry(st.receiver).or_default() += 1;
        }
        let mut raised = 0;
        for (receiver, count) in held {
            let r = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(stream_count_key(&receiver)))
                .update_expression("SET #c = :n")
                .condition_expression("attribute_not_exists(#c) OR #c < :n")
                .expression_attribute_names("#c", attr::COUNT)
                .expression_attribute_values(":n", n(count))
                .send()
                .await;
            match r {
                Ok(_) => raised += 1,
                Err(e) if is_condition_failed(&e) => {}
                Err(e) => return Err(store_error("UpdateItem stream count (migrate)", &e)),
            }
        }
        Ok(raised)
    }

    /// Writes the stream of `item` again as read (its header sealed under the keyring's current
    /// generation), on condition of its version; `Ok(true)` if it did.
    pub(super) async fn reseal_stream_item(&self, item: &Item) -> Result<bool, StoreError> {
        let id = json_from::<Stream>(item)?.id;
        for _ in 0..3 {
            let Some(stream) = self.read_stream(&id).await? else {
                return Ok(false);
            };
            if self.replace_stream(&stream).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Re-seals every push stream's authorization header that another generation than
    /// `generation` sealed (a rotation, before the old data key is retired); how many.
    pub(super) async fn reseal_streams(&self, generation: u32) -> Result<usize, StoreError> {
        let mut count = 0;
        for item in self.kind("Query streams (rotate)", STREAM).await? {
            let Some(sealed) = item.get(attr::AUTH_SEALED).and_then(|v| v.as_b().ok()) else {
                continue;
            };
            if generation_of(sealed.as_ref()) == Some(generation) {
                continue;
            }
            let id = self.stream_from(&item).await?.id;
            // Written again as read (sealed under the keyring's new generation), on condition
            // of its version: a concurrent write is read again.
            for _ in 0..3 {
                let Some(stream) = self.read_stream(&id).await? else {
                    break;
                };
                if self.replace_stream(&stream).await? {
                    count += 1;
                    break;
                }
            }
        }
        Ok(count)
    }
}
