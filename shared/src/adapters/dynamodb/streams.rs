//! Shared Signals receivers and streams: JSON items the `kind` index lists. A stream carries
//! its `version` as an attribute, and every write of it is conditioned on the version read; a
//! receiver's streams are counted (`STREAM#COUNT#<receiver>`) in the transaction that creates
//! or deletes one, so that concurrent creations cannot pass the limit.

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};

use super::codec::{json_from, json_item};
use super::failure::{failed_conditions, is_condition_failed, store_error};
use super::item::{built, n, Item};
use super::schema::{self, attr, receiver_key, stream_count_key, stream_key, RECEIVER, STREAM};
use super::store::DynamoStore;
use crate::error::StoreError;
use crate::model::{Receiver, Stream};

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

    /// A stream's item at `version`.
    fn stream_item(&self, st: &Stream, version: u64) -> Result<Item, StoreError> {
        let stored = Stream {
            version,
            ..st.clone()
        };
        let mut item = json_item(stream_key(&st.id), Some(STREAM), &stored)?;
        item.insert(attr::VERSION.into(), n(version as i64));
        Ok(item)
    }

    fn stream_from(&self, item: &Item) -> Result<Stream, StoreError> {
        json_from(item)
    }

    pub(super) async fn insert_stream(&self, st: &Stream, max: usize) -> Result<bool, StoreError> {
        let count = Update::builder()
            .table_name(&self.table)
            .set_key(Some(stream_count_key(&st.receiver)))
            .update_expression("SET #c = if_not_exists(#c, :zero) + :one")
            .condition_expression("attribute_not_exists(#c) OR #c < :max")
            .expression_attribute_names("#c", attr::COUNT)
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(max as i64));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.stream_item(st, st.version)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK);
        let actions = vec![
            TransactWriteItem::builder()
                .update(built(count.build())?)
                .build(),
            TransactWriteItem::builder().put(built(put.build())?).build(),
        ];
        let r = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if !failed_conditions(&e).is_empty() => Ok(false),
            Err(e) => Err(store_error("TransactWriteItems create stream", &e)),
        }
    }

    pub(super) async fn replace_stream(&self, st: &Stream) -> Result<bool, StoreError> {
        // A stream written before versions were kept has none: version 0.
        let condition = if st.version == 0 {
            "attribute_exists(#pk) AND (attribute_not_exists(#v) OR #v = :v)"
        } else {
            "#v = :v"
        };
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.stream_item(st, st.version + 1)?))
            .condition_expression(condition)
            .expression_attribute_names("#v", attr::VERSION)
            .expression_attribute_values(":v", n(st.version as i64));
        if st.version == 0 {
            put = put.expression_attribute_names("#pk", schema::PK);
        }
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(store_error("PutItem stream", &e)),
        }
    }

    pub(super) async fn read_stream(&self, id: &str) -> Result<Option<Stream>, StoreError> {
        match self.get("GetItem stream", stream_key(id)).await? {
            Some(item) => Ok(Some(self.stream_from(&item)?)),
            None => Ok(None),
        }
    }

    pub(super) async fn all_streams(&self) -> Result<Vec<Stream>, StoreError> {
        let items = self.kind("Query streams", STREAM).await?;
        items.iter().map(|i| self.stream_from(i)).collect()
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
}
