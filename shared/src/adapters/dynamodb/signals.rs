//! The outbox of signal events and the Shared Signals port.
//!
//! Writers put an event in the inbox (`SIGNAL#INBOX`, by event id) in the transaction of the
//! change that causes it (`devices.rs`). Readers settle the inbox: one transaction moves a batch
//! of its events to the log (`SIGNAL#LOG`, by `seq`) with the next numbers, on condition that the
//! head (`SIGNAL#HEAD`, the last number given) is still the one read. So numbers are given one
//! batch at a time, never twice, and a head once read has every event up to it in the log; a
//! writer's clock and the order writes commit in do not matter. Settled events and the SETs
//! signed of them (`SET#<receiver>`, by `seq`) are kept for the audit retention period.
//! Receivers and streams are `streams.rs`.

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};

use super::codec::{json_from, json_item};
use super::failure::{is_condition_failed, is_transaction_conflict, store_error};
use super::item::{built, get_s, n, opt_n, s, Item};
use super::schema::{
    self, attr, key, seq_sk, signal_head_key, signed_set_pk, SIGNAL_INBOX_PK, SIGNAL_LOG_PK,
};
use super::store::DynamoStore;
use crate::error::StoreError;
use crate::model::{Receiver, SignalEvent, Stream, UnixTime};
use crate::ports::SignalStore;

/// Most events one settling transaction moves (two actions each, and the head: under 100).
const SETTLE_BATCH: usize = 40;
/// Most batches one settling moves (more wait for the next reader).
const SETTLE_ROUNDS: usize = 5;

impl DynamoStore {
    /// The inbox item of an event its writer commits (no TTL: it waits for the settling).
    pub(super) fn signal_item(&self, e: &SignalEvent) -> Result<Item, StoreError> {
        json_item(key(SIGNAL_INBOX_PK.to_string(), e.id.clone()), None, e)
    }

    async fn head(&self) -> Result<u64, StoreError> {
        let item = self.get("GetItem signal head", signal_head_key()).await?;
        Ok(match item {
            Some(i) => opt_n(&i, attr::COUNT)?.unwrap_or(0).max(0) as u64,
            None => 0,
        })
    }

    /// One batch of the inbox, in event id order.
    async fn inbox(&self) -> Result<Vec<Item>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_values(":pk", s(SIGNAL_INBOX_PK))
            .consistent_read(true)
            .limit(SETTLE_BATCH as i32)
            .send()
            .await
            .map_err(|e| store_error("Query signal inbox", &e))?;
        Ok(out.items.unwrap_or_default())
    }

    /// Moves `inbox` to the log after `head`: `Ok(false)` if another settling moved first.
    async fn settle_batch(
        &self,
        head: u64,
        inbox: &[Item],
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let new_head = head + inbox.len() as u64;
        let mut actions = vec![TransactWriteItem::builder()
            .update(built(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(signal_head_key()))
                    .update_expression("SET #c = :new")
                    .condition_expression("attribute_not_exists(#pk) OR #c = :old")
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_names("#c", attr::COUNT)
                    .expression_attribute_values(":new", n(new_head as i64))
                    .expression_attribute_values(":old", n(head as i64))
                    .build(),
            )?)
            .build()];
        for (i, item) in inbox.iter().enumerate() {
            let mut event: SignalEvent = json_from(item)?;
            event.seq = head + 1 + i as u64;
            let mut settled =
                json_item(key(SIGNAL_LOG_PK.into(), seq_sk(event.seq)), None, &event)?;
            settled.insert(schema::TTL_ATTRIBUTE.into(), n(now + self.audit_retention));
            actions.push(
                TransactWriteItem::builder()
                    .put(built(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(settled))
                            .build(),
                    )?)
                    .build(),
            );
            let inbox_key = key(SIGNAL_INBOX_PK.into(), get_s(item, schema::SK)?);
            actions.push(
                TransactWriteItem::builder()
                    .delete(built(
                        Delete::builder()
                            .table_name(&self.table)
                            .set_key(Some(inbox_key))
                            .condition_expression("attribute_exists(#pk)")
                            .expression_attribute_names("#pk", schema::PK)
                            .build(),
                    )?)
                    .build(),
            );
        }
        let r = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_transaction_conflict(&e) => Ok(false),
            Err(e) => Err(store_error("TransactWriteItems settle signals", &e)),
        }
    }

    /// A range of a partition sorted by `seq`: after `after`, at most `upto`, at most `limit`.
    async fn seq_range(
        &self,
        op: &'static str,
        pk: &str,
        (after, upto): (u64, u64),
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        if after >= upto || limit == 0 {
            return Ok(out);
        }
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
                .expression_attribute_names("#pk", schema::PK)
                .expression_attribute_names("#sk", schema::SK)
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":from", s(seq_sk(after + 1)))
                .expression_attribute_values(":to", s(seq_sk(upto)))
                .consistent_read(true)
                .limit(limit.min(1000) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error(op, &e))?;
            for item in page.items.unwrap_or_default() {
                out.push(item);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}

impl SignalStore for DynamoStore {
    async fn put_receiver(&self, r: &Receiver) -> Result<(), StoreError> {
        self.store_receiver(r).await
    }

    async fn get_receiver(&self, id: &str) -> Result<Option<Receiver>, StoreError> {
        self.read_receiver(id).await
    }

    async fn list_receivers(&self) -> Result<Vec<Receiver>, StoreError> {
        self.all_receivers().await
    }

    async fn create_stream(&self, st: &Stream, max: usize) -> Result<bool, StoreError> {
        self.insert_stream(st, max).await
    }

    async fn save_stream(&self, st: &Stream) -> Result<bool, StoreError> {
        self.replace_stream(st).await
    }

    async fn get_stream(&self, id: &str) -> Result<Option<Stream>, StoreError> {
        self.read_stream(id).await
    }

    async fn list_streams(&self) -> Result<Vec<Stream>, StoreError> {
        self.all_streams().await
    }

    async fn delete_stream(&self, st: &Stream) -> Result<bool, StoreError> {
        self.remove_stream(st).await
    }

    async fn settle_signals(&self, now: UnixTime) -> Result<u64, StoreError> {
        let mut head = 0;
        for _ in 0..SETTLE_ROUNDS {
            // The inbox first, then the head: a head read after the inbox was seen empty holds
            // every event committed before this call, even one another reader settled between
            // the two reads (reading the head first could answer a head older than that).
            let inbox = self.inbox().await?;
            head = self.head().await?;
            if inbox.is_empty() {
                return Ok(head);
            }
            // Another reader settled first (or some of this batch): the next round reads again.
            if self.settle_batch(head, &inbox, now).await? {
                head += inbox.len() as u64;
                if inbox.len() < SETTLE_BATCH {
                    return Ok(head);
                }
            }
        }
        Ok(head)
    }

    async fn signal_events(
        &self,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<SignalEvent>, StoreError> {
        let items = self
            .seq_range("Query signal log", SIGNAL_LOG_PK, (after, upto), limit)
            .await?;
        items.iter().map(json_from).collect()
    }

    async fn signed_sets(
        &self,
        receiver: &str,
        after: u64,
        upto: u64,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let pk = signed_set_pk(receiver);
        let items = self
            .seq_range("Query signed SETs", &pk, (after, upto), usize::MAX)
            .await?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let seq = get_s(&item, schema::SK)?
                .parse::<u64>()
                .map_err(|_| super::item::corrupt(schema::SK))?;
            out.push((seq, get_s(&item, attr::DATA)?));
        }
        Ok(out)
    }

    async fn keep_signed_set(
        &self,
        receiver: &str,
        event: &SignalEvent,
        set: &str,
        now: UnixTime,
    ) -> Result<String, StoreError> {
        let mut item = key(signed_set_pk(receiver), seq_sk(event.seq));
        item.insert(attr::DATA.into(), s(set));
        item.insert(schema::TTL_ATTRIBUTE.into(), n(now + self.audit_retention));
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
            Ok(_) => Ok(set.to_string()),
            // Another delivery kept one first: every delivery carries that one (read with the
            // query that reads them all, so this needs no other access).
            Err(e) if is_condition_failed(&e) => {
                let kept = self
                    .signed_sets(receiver, event.seq.saturating_sub(1), event.seq)
                    .await?;
                Ok(kept
                    .into_iter()
                    .next()
                    .map_or_else(|| set.to_string(), |(_, s)| s))
            }
            Err(e) => Err(store_error("PutItem signed SET", &e)),
        }
    }
}
