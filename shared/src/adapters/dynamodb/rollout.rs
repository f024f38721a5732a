//! `RolloutStore` on the table: the token index item of a device token (`TOKENHASH#<sha256>`)
//! carries the next challenge key of the configuration its device last fetched
//! (`config_next_key`, `config_fetched_at`), and `kind = TOKENS#<connector>`, so that one
//! query of the kind index lists a connector's tokens with what each device has fetched.
//! `agent_config/` already reads the item (it authenticates the device), so deciding whether
//! to record costs no read; recording is one conditional `UpdateItem`, made only when a next
//! key is pending and the item does not name it yet: at most once per device and next key.

use super::failure::{is_condition_failed, store_error};
use super::item::{get_s, n, opt_n, opt_s, s};
use super::schema::{self, attr, connector_tokens_kind, token_index_key, TOKEN_INDEX};
use super::store::DynamoStore;
use crate::error::StoreError;
use crate::model::{is_expired, ConfigFetch, UnixTime};
use crate::ports::RolloutStore;

impl RolloutStore for DynamoStore {
    async fn record_config_fetch(
        &self,
        key_sha256: &str,
        connector: &str,
        next_key: &str,
        at: UnixTime,
    ) -> Result<(), StoreError> {
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(token_index_key(key_sha256)))
            .update_expression("SET #next = :next, #at = :at, #kind = :kind")
            // Never recreates a token deleted meanwhile (re-enrolled, revoked).
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#next", attr::CONFIG_NEXT_KEY)
            .expression_attribute_names("#at", attr::CONFIG_FETCHED_AT)
            .expression_attribute_names("#kind", schema::KIND)
            .expression_attribute_values(":next", s(next_key))
            .expression_attribute_values(":at", n(at))
            .expression_attribute_values(":kind", s(connector_tokens_kind(connector)))
            .send()
            .await;
        match updated {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(store_error("UpdateItem token hash (config fetch)", &e)),
        }
    }

    async fn config_fetches(
        &self,
        connector: &str,
        now: UnixTime,
    ) -> Result<Vec<ConfigFetch>, StoreError> {
        let mut out = Vec::new();
        let kind = connector_tokens_kind(connector);
        for item in self.kind("Query connector tokens", &kind).await? {
            if is_expired(opt_n(&item, schema::TTL_ATTRIBUTE)?, now) {
                continue;
            }
            out.push(ConfigFetch {
                device: get_s(&item, attr::DEVICE)?,
                next_key: opt_s(&item, attr::CONFIG_NEXT_KEY),
                at: opt_n(&item, attr::CONFIG_FETCHED_AT)?,
            });
        }
        out.sort_by(|a, b| a.device.cmp(&b.device));
        Ok(out)
    }
}

impl DynamoStore {
    /// Token index items written before they were listed by connector get their `kind` (a scan
    /// for the items without it: only `migrate` does this).
    pub(super) async fn give_token_index_kind(&self) -> Result<usize, StoreError> {
        let mut start = None;
        let mut count = 0;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("#sk = :sk AND attribute_not_exists(#kind)")
                .expression_attribute_names("#sk", schema::SK)
                .expression_attribute_names("#kind", schema::KIND)
                .expression_attribute_values(":sk", s(TOKEN_INDEX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Scan token index (migrate)", &e))?;
            for item in out.items.unwrap_or_default() {
                let pk = get_s(&item, schema::PK)?;
                let connector = get_s(&item, attr::CONNECTOR)?;
                let updated = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(schema::key(pk, TOKEN_INDEX)))
                    .update_expression("SET #kind = :kind")
                    .condition_expression("attribute_exists(#pk)")
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_names("#kind", schema::KIND)
                    .expression_attribute_values(":kind", s(connector_tokens_kind(&connector)))
                    .send()
                    .await;
                match updated {
                    Ok(_) => count += 1,
                    // Deleted meanwhile (re-enrolled, revoked).
                    Err(e) if is_condition_failed(&e) => {}
                    Err(e) => return Err(store_error("UpdateItem token hash (migrate)", &e)),
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(count),
            }
        }
    }
}
