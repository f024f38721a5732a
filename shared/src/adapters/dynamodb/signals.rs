//! The outbox of signal events: one partition per UTC day (`SIGNAL#2026-11-29`), sorted by
//! event id (time first), kept for the audit retention period; written in the transaction of
//! the change that causes them (`devices.rs`), read oldest first by the delivery.

use super::codec::{json_from, json_item};
use super::failure::store_error;
use super::item::{n, opt_n, s, Item};
use super::schema::{self, key, signal_pk};
use super::store::DynamoStore;
use crate::audit::utc_day;
use crate::error::StoreError;
use crate::model::{is_expired, SignalEvent, UnixTime};

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
            .and_then(|a| a.split('-').next())
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
