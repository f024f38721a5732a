//! The outbox of signal events: one partition per UTC day (`SIGNAL#2026-11-29`), sorted by
//! event id (time first), kept for the audit retention period; written in the transaction of
//! the change that causes them (`devices.rs`), read oldest first by the delivery; and the
//! Shared Signals receivers and streams (JSON items the `kind` index lists).

use super::codec::{json_from, json_item};
use super::failure::store_error;
use super::item::{n, opt_n, s, Item};
use super::schema::{self, key, receiver_key, signal_pk, stream_key, RECEIVER, STREAM};
use super::store::DynamoStore;
use crate::audit::utc_day;
use crate::error::StoreError;
use crate::model::{is_expired, Receiver, SignalEvent, Stream, UnixTime};
use crate::ports::SignalStore;

impl DynamoStore {
    /// The item of an outbox event.
    pub(super) fn signal_item(&self, e: &SignalEvent) -> Result<Item, StoreError> {
        let mut item = json_item(key(signal_pk(&utc_day(e.time)), e.id.clone()), None, e)?;
        item.insert(
            schema::TTL_ATTRIBUTE.into(),
            n(e.time + self.audit_retention),
        );
        Ok(item)
    }

    /// The outbox's events after `after`, oldest first, at most `limit` (see the port).
    pub(super) async fn outbox(
        &self,
        after: Option<&str>,
        limit: usize,
        now: UnixTime,
    ) -> Result<Vec<SignalEvent>, StoreError> {
        let today = now.div_euclid(86_400);
        let oldest = today - self.audit_retention / 86_400;
        // The day of `after` (its id starts with its time), else the oldest kept.
        let mut day = after
            .and_then(|a| a.split(['-', '.']).next())
            .and_then(|t| t.parse::<i64>().ok())
            .map_or(oldest, |t| t.div_euclid(86_400).max(oldest));
        let mut out = Vec::new();
        while day <= today && out.len() < limit {
            let pk = signal_pk(&utc_day(day * 86_400));
            let mut start = None;
            loop {
                let mut query = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_values(":pk", s(&pk))
                    .set_exclusive_start_key(start);
                query = match after {
                    Some(a) => query
                        .key_condition_expression("#pk = :pk AND #sk > :after")
                        .expression_attribute_names("#sk", schema::SK)
                        .expression_attribute_values(":after", s(a)),
                    None => query.key_condition_expression("#pk = :pk"),
                };
                let page = query
                    .send()
                    .await
                    .map_err(|e| store_error("Query signal events", &e))?;
                for item in page.items.unwrap_or_default() {
                    if is_expired(opt_n(&item, schema::TTL_ATTRIBUTE)?, now) {
                        continue;
                    }
                    out.push(json_from::<SignalEvent>(&item)?);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
                match page.last_evaluated_key {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break,
                }
            }
            day += 1;
        }
        Ok(out)
    }
}

impl SignalStore for DynamoStore {
    async fn put_receiver(&self, r: &Receiver) -> Result<(), StoreError> {
        let item = json_item(receiver_key(&r.id), Some(RECEIVER), r)?;
        self.put("PutItem receiver", item).await
    }

    async fn get_receiver(&self, id: &str) -> Result<Option<Receiver>, StoreError> {
        match self.get("GetItem receiver", receiver_key(id)).await? {
            Some(item) => Ok(Some(json_from(&item)?)),
            None => Ok(None),
        }
    }

    async fn list_receivers(&self) -> Result<Vec<Receiver>, StoreError> {
        let items = self.kind("Query receivers", RECEIVER).await?;
        items.iter().map(json_from).collect()
    }

    async fn put_stream(&self, st: &Stream) -> Result<(), StoreError> {
        let item = json_item(stream_key(&st.id), Some(STREAM), st)?;
        self.put("PutItem stream", item).await
    }

    async fn get_stream(&self, id: &str) -> Result<Option<Stream>, StoreError> {
        match self.get("GetItem stream", stream_key(id)).await? {
            Some(item) => Ok(Some(json_from(&item)?)),
            None => Ok(None),
        }
    }

    async fn list_streams(&self) -> Result<Vec<Stream>, StoreError> {
        let items = self.kind("Query streams", STREAM).await?;
        items.iter().map(json_from).collect()
    }

    async fn delete_stream(&self, id: &str) -> Result<bool, StoreError> {
        self.delete_existing("DeleteItem stream", stream_key(id))
            .await
    }
}
