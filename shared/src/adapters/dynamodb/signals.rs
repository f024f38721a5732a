//! The outbox of signal events and the Shared Signals port.
//!
//! Writers put an event in the inbox (`SIGNAL#INBOX`, by event id) in the transaction of the
//! change that causes it (`devices.rs`). Readers settle the inbox: one transaction moves a batch
//! of its events to the log (`SIGNAL#LOG`, by `seq`) with the next numbers, on condition that the
//! settling region's head (`SIGNAL#HEAD`, one item per region: the last number it gave) is still
//! the one read. So numbers are given one batch at a time, never twice, and a head once read has
//! every event up to it in the log; a writer's clock and the order writes commit in do not
//! matter. A region whose head is below another's, or whose process settles for the first
//! time, starts a new epoch (`ports::numbering`: the primary may have moved), and settles again,
//! in the same transactions, other regions' events that reach its copy of the table later
//! (`ports::late_ranges`; a log item names its `writer`). Settled events and the SETs signed of
//! them (`SET#<receiver>`, by `seq`) are kept for the audit retention period.
//! Receivers and streams are `streams.rs`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};

use super::codec::{json_from, json_item};
use super::failure::{is_transaction_conflict, store_error};
use super::item::{built, get_s, n, opt_n, opt_s, s, Item};
use super::schema::{
    self, attr, key, seq_sk, signal_head_key, signed_set_pk, SIGNAL_HEAD_PK, SIGNAL_INBOX_PK,
    SIGNAL_LOG_PK,
};
use super::store::DynamoStore;
use crate::error::StoreError;
use crate::model::{Receiver, SignalEvent, Stream, UnixTime};
use crate::ports::{late_ranges, numbering, SignalHead, SignalStore};

/// Most events one settling transaction moves (two actions each, and the head: under 100).
const SETTLE_BATCH: usize = 40;
/// Most batches one settling moves (more wait for the next reader).
const SETTLE_ROUNDS: usize = 5;

impl DynamoStore {
    /// The inbox item of an event its writer commits (no TTL: it waits for the settling).
    pub(super) fn signal_item(&self, e: &SignalEvent) -> Result<Item, StoreError> {
        json_item(key(SIGNAL_INBOX_PK.to_string(), e.id.clone()), None, e)
    }

    /// This writer's head, and every other writer's `last` by its name (one page: a head per
    /// region; `HEAD` is the writer without a name).
    async fn heads(&self) -> Result<(SignalHead, BTreeMap<String, u64>), StoreError> {
        let items = self.partition("Query signal heads", SIGNAL_HEAD_PK).await?;
        let (mut own, mut others) = (SignalHead::default(), BTreeMap::new());
        for item in items {
            let last = opt_n(&item, attr::COUNT)?.unwrap_or(0).max(0) as u64;
            let sk = get_s(&item, schema::SK)?;
            let writer = if sk == "HEAD" { String::new() } else { sk };
            if writer == self.signal_writer {
                let adopted = match opt_s(&item, attr::ADOPTED) {
                    Some(json) => serde_json::from_str(&json)
                        .map_err(|_| super::item::corrupt(attr::ADOPTED))?,
                    None => BTreeMap::new(),
                };
                own = SignalHead { last, adopted };
            } else {
                others.insert(writer, last);
            }
        }
        Ok((own, others))
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

    /// Moves `late` (older epochs' events, settled again) and `inbox` to the log after `start`,
    /// on condition that this writer's head is still `read`: the new head, or `None` if another
    /// settling moved first.
    async fn settle_batch(
        &self,
        (read, start): (&SignalHead, SignalHead),
        late: &[Item],
        inbox: &[Item],
        now: UnixTime,
    ) -> Result<Option<SignalHead>, StoreError> {
        let mut head = start;
        let mut actions = vec![];
        let mut log = |event: SignalEvent, head: &mut SignalHead| -> Result<(), StoreError> {
            head.last += 1;
            let event = SignalEvent {
                seq: head.last,
                ..event
            };
            let mut settled =
                json_item(key(SIGNAL_LOG_PK.into(), seq_sk(event.seq)), None, &event)?;
            settled.insert(schema::TTL_ATTRIBUTE.into(), n(now + self.audit_retention));
            settled.insert(attr::WRITER.into(), s(&self.signal_writer));
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
            Ok(())
        };
        for item in late {
            log(json_from(item)?, &mut head)?;
        }
        let mut deletes = Vec::with_capacity(inbox.len());
        for item in inbox {
            log(json_from(item)?, &mut head)?;
            let inbox_key = key(SIGNAL_INBOX_PK.into(), get_s(item, schema::SK)?);
            deletes.push(
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
        actions.extend(deletes);
        let adopted = serde_json::to_string(&head.adopted)
            .map_err(|_| super::item::corrupt(attr::ADOPTED))?;
        actions.push(
            TransactWriteItem::builder()
                .update(built(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(signal_head_key(&self.signal_writer)))
                        .update_expression("SET #c = :new, #a = :adopted")
                        .condition_expression("attribute_not_exists(#pk) OR #c = :old")
                        .expression_attribute_names("#pk", schema::PK)
                        .expression_attribute_names("#c", attr::COUNT)
                        .expression_attribute_names("#a", attr::ADOPTED)
                        .expression_attribute_values(":new", n(head.last as i64))
                        .expression_attribute_values(":adopted", s(&adopted))
                        .expression_attribute_values(":old", n(read.last as i64))
                        .build(),
                )?)
                .build(),
        );
        let r = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        match r {
            Ok(_) => Ok(Some(head)),
            Err(e) if is_transaction_conflict(&e) => Ok(None),
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

/// The `seq` a log or SET item's sort key holds.
fn sk_seq(item: &Item) -> Result<u64, StoreError> {
    get_s(item, schema::SK)?
        .parse::<u64>()
        .map_err(|_| super::item::corrupt(schema::SK))
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
        let mut answer = 0;
        for _ in 0..SETTLE_ROUNDS {
            // The inbox first, then the heads: a head read after the inbox was seen empty holds
            // every event committed before this call, even one another reader settled between
            // the two reads (reading the head first could answer a head older than that).
            let mut inbox = self.inbox().await?;
            let (own, others) = self.heads().await?;
            let top = others.values().copied().max().unwrap_or(0);
            answer = own.last.max(top);
            let first = !self.signal_writer.is_empty() && !self.numbered.load(Ordering::SeqCst);
            let mut start = numbering(&own, &others, first, now);
            // Other writers' events below this writer's epoch that arrived late.
            let (mut late, mut looked, mut more) = (Vec::new(), false, false);
            for (writer, after, upto) in late_ranges(&start, &others) {
                let room = SETTLE_BATCH - late.len();
                if room == 0 {
                    more = true;
                    break;
                }
                let items = self
                    .seq_range("Query late signals", SIGNAL_LOG_PK, (after, upto), room)
                    .await?;
                let reached = match items.last() {
                    Some(last) if items.len() == room => {
                        more = true;
                        sk_seq(last)?
                    }
                    _ => upto,
                };
                for item in items {
                    if opt_s(&item, attr::WRITER).unwrap_or_default() == writer {
                        late.push(item);
                    }
                }
                start.adopted.insert(writer, reached);
                looked = true;
            }
            inbox.truncate(SETTLE_BATCH - late.len());
            let moved = late.len() + inbox.len();
            if moved == 0 && !looked {
                return Ok(answer);
            }
            // Another reader settled first (or some of this batch): the next round reads again.
            if let Some(head) = self.settle_batch((&own, start), &late, &inbox, now).await? {
                self.numbered.store(true, Ordering::SeqCst);
                answer = head.last.max(top);
                if moved < SETTLE_BATCH && !more {
                    return Ok(answer);
                }
            }
        }
        Ok(answer)
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
            out.push((sk_seq(&item)?, get_s(&item, attr::DATA)?));
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
        if self.put_if_absent("PutItem signed SET", item).await? {
            return Ok(set.to_string());
        }
        // Another delivery kept one first: every delivery carries that one (read with the query
        // that reads them all, so this needs no other access).
        let kept = self
            .signed_sets(receiver, event.seq.saturating_sub(1), event.seq)
            .await?;
        Ok(kept
            .into_iter()
            .next()
            .map_or_else(|| set.to_string(), |(_, s)| s))
    }
}
