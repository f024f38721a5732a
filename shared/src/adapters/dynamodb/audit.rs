//! The audit trail (one partition per UTC day, records sorted by id, kept for the retention
//! period by the TTL) and the abuse-limit counters.

use super::codec::{json_from, json_item};
use super::failure::{is_condition_failed, store_error};
use super::item::{n, opt_n, s, Item};
use super::schema;
use super::schema::{attr, audit_pk, key, limit_key};
use super::store::DynamoStore;
use crate::audit::utc_day;
use crate::audit::{AuditEvent, AuditQuery};
use crate::error::StoreError;
use crate::model::{is_expired, UnixTime};
use crate::ports::{AuditLog, Limiter};

/// At most this many days are read by one `audit list` (the retention is at most ten years).
const MAX_DAYS: i64 = 3660;

impl DynamoStore {
    /// The item of an audit record: the record as JSON plus the attributes `audit list`
    /// filters on, expiring after the retention period.
    pub(super) fn audit_item(&self, e: &AuditEvent) -> Result<Item, StoreError> {
        let mut item = json_item(key(audit_pk(&utc_day(e.time)), e.id.clone()), None, e)?;
        item.insert(
            schema::TTL_ATTRIBUTE.into(),
            n(e.time + self.audit_retention),
        );
        Ok(item)
    }
}

impl AuditLog for DynamoStore {
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.put("PutItem audit", self.audit_item(event)?).await
    }

    async fn audit_events(
        &self,
        query: &AuditQuery,
        now: UnixTime,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let mut out = Vec::new();
        let first_day = query
            .since
            .div_euclid(86_400)
            .max(now.div_euclid(86_400) - MAX_DAYS);
        let mut day = now.div_euclid(86_400);
        while day >= first_day && out.len() < query.limit {
            let pk = audit_pk(&utc_day(day * 86_400));
            let mut start = None;
            'pages: loop {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("#pk = :pk")
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_values(":pk", s(&pk))
                    .scan_index_forward(false)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| store_error("Query audit", &e))?;
                for item in page.items.unwrap_or_default() {
                    if is_expired(opt_n(&item, schema::TTL_ATTRIBUTE)?, now) {
                        continue;
                    }
                    let event: AuditEvent = json_from(&item)?;
                    if query.matches(&event) {
                        out.push(event);
                        if out.len() >= query.limit {
                            break 'pages;
                        }
                    }
                }
                match page.last_evaluated_key {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break,
                }
            }
            day -= 1;
        }
        Ok(out)
    }
}

impl Limiter for DynamoStore {
    async fn take(
        &self,
        bucket: &str,
        limit: u32,
        window_end: UnixTime,
    ) -> Result<bool, StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(limit_key(bucket)))
            .update_expression("SET #count = if_not_exists(#count, :zero) + :one, #exp = :end")
            .condition_expression("attribute_not_exists(#count) OR #count < :limit")
            .expression_attribute_names("#count", attr::COUNT)
            .expression_attribute_names("#exp", schema::TTL_ATTRIBUTE)
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":end", n(window_end))
            .expression_attribute_values(":limit", n(limit.into()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(store_error("UpdateItem limit", &e)),
        }
    }
}
