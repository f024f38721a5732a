//! The audit trail (one partition per UTC day, records sorted by id, kept for the retention
//! period by the TTL; a device's records also under a `kind` of their own in the GSI) and the
//! abuse-limit counters.

use super::codec::{json_from, json_item};
use super::failure::{is_condition_failed, store_error};
use super::item::{get_s, n, opt_n, s, Item};
use super::schema;
use super::schema::{attr, audit_device_kind, audit_pk, key, limit_key};
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
        let kind = e.any_device().map(audit_device_kind);
        let pk = key(audit_pk(&utc_day(e.time)), e.id.clone());
        let mut item = json_item(pk, kind.as_deref(), e)?;
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
        let first_day = query
            .since
            .div_euclid(86_400)
            .max(now.div_euclid(86_400) - MAX_DAYS);
        match &query.device {
            Some(serial) => self.device_audit(serial, query, first_day, now).await,
            None => self.daily_audit(query, first_day, now).await,
        }
    }
}

impl DynamoStore {
    /// Records of every device, day by day, newest first.
    async fn daily_audit(
        &self,
        query: &AuditQuery,
        first_day: i64,
        now: UnixTime,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let mut out = Vec::new();
        let mut day = now.div_euclid(86_400);
        while day >= first_day && out.len() < query.limit {
            let pk = audit_pk(&utc_day(day * 86_400));
            let mut start = None;
            loop {
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
                if collect(
                    &page.items.unwrap_or_default(),
                    query,
                    now,
                    query.limit,
                    &mut out,
                )? {
                    return Ok(out);
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

    /// One device's records (proven or claimed serial) from its own key in the GSI: days newest
    /// first; the index orders records by day only, so the last day reached is read whole
    /// before the records are sorted and cut to the page.
    async fn device_audit(
        &self,
        serial: &str,
        query: &AuditQuery,
        first_day: i64,
        now: UnixTime,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let first = audit_pk(&utc_day(first_day * 86_400));
        let last = audit_pk(&utc_day(now));
        let mut out = self
            .device_audit_days(serial, query, (&first, &last), now, query.limit)
            .await?;
        if out.len() >= query.limit {
            if let Some(oldest) = out.iter().map(|e| e.time).min() {
                let day = audit_pk(&utc_day(oldest));
                let whole = self
                    .device_audit_days(serial, query, (&day, &day), now, usize::MAX)
                    .await?;
                out.retain(|e| audit_pk(&utc_day(e.time)) != day);
                out.extend(whole);
            }
        }
        out.sort_by(|a, b| b.id.cmp(&a.id));
        out.truncate(query.limit);
        Ok(out)
    }

    /// The device's matching records of the days `from..=to` (newest day first), at least
    /// `enough` of them if there are (whole pages: it may return more).
    async fn device_audit_days(
        &self,
        serial: &str,
        query: &AuditQuery,
        (from, to): (&str, &str),
        now: UnixTime,
        enough: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(schema::KIND_INDEX)
                .key_condition_expression("#kind = :kind AND #pk BETWEEN :first AND :last")
                .expression_attribute_names("#kind", schema::KIND)
                .expression_attribute_names("#pk", schema::PK)
                .expression_attribute_values(":kind", s(audit_device_kind(serial)))
                .expression_attribute_values(":first", s(from))
                .expression_attribute_values(":last", s(to))
                .scan_index_forward(false)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Query device audit", &e))?;
            collect(
                &page.items.unwrap_or_default(),
                query,
                now,
                usize::MAX,
                &mut out,
            )?;
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() && out.len() < enough => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}

/// Adds the unexpired records of `items` that match `query` to `out`; `true` once it holds
/// `limit` records.
fn collect(
    items: &[Item],
    query: &AuditQuery,
    now: UnixTime,
    limit: usize,
    out: &mut Vec<AuditEvent>,
) -> Result<bool, StoreError> {
    for item in items {
        if is_expired(opt_n(item, schema::TTL_ATTRIBUTE)?, now) {
            continue;
        }
        let event: AuditEvent = json_from(item)?;
        if query.matches(&event) {
            out.push(event);
            if out.len() >= limit {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

impl DynamoStore {
    /// Audit records of a device written before devices had their own key (the `kind`) get it:
    /// a scan for records without one (only `migrate` does this); how many.
    pub(super) async fn give_audit_records_device_kind(&self) -> Result<usize, StoreError> {
        let mut start = None;
        let mut count = 0;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(#pk, :audit) AND attribute_not_exists(#kind)")
                .expression_attribute_names("#pk", schema::PK)
                .expression_attribute_names("#kind", schema::KIND)
                .expression_attribute_values(":audit", s(audit_pk("")))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Scan audit records (migrate)", &e))?;
            for item in out.items.unwrap_or_default() {
                let event: AuditEvent = json_from(&item)?;
                let Some(serial) = event.any_device() else {
                    continue;
                };
                let pk = get_s(&item, schema::PK)?;
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key(pk, event.id.clone())))
                    .update_expression("SET #kind = :kind")
                    .expression_attribute_names("#kind", schema::KIND)
                    .expression_attribute_values(":kind", s(audit_device_kind(serial)))
                    .send()
                    .await
                    .map_err(|e| store_error("UpdateItem audit record (migrate)", &e))?;
                count += 1;
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(count),
            }
        }
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

    async fn counts(&self, buckets: &[String], now: UnixTime) -> Result<Vec<u32>, StoreError> {
        // The counters are read together: one round.
        let reads = buckets
            .iter()
            .map(|b| self.get("GetItem limit", limit_key(b)));
        let mut out = Vec::with_capacity(buckets.len());
        for item in futures::future::join_all(reads).await {
            let count = match item? {
                Some(i) if !is_expired(opt_n(&i, schema::TTL_ATTRIBUTE)?, now) => {
                    opt_n(&i, attr::COUNT)?.unwrap_or(0)
                }
                _ => 0,
            };
            out.push(u32::try_from(count).unwrap_or(u32::MAX));
        }
        Ok(out)
    }
}
