//! The DTH path's one read: the token index entry of the header's hash and the device the plan
//! names, together (one `BatchGetItem`), so that the stage sees the device's lock where it sees
//! the token and a lock holds at once on this path too.

use aws_sdk_dynamodb::types::KeysAndAttributes;

use super::codec::device_from;
use super::failure::store_error;
use super::item::{get_s, opt_n, opt_s, Item};
use super::schema::{self, attr, device_key, sk_of, token_index_key, DEVICE, TOKEN_INDEX};
use super::store::DynamoStore;
use crate::error::StoreError;
use crate::model::{is_expired, Device, TokenRef, UnixTime};

/// The token of a token index entry, unless expired at `now`.
pub(super) fn live_token(item: &Item, now: UnixTime) -> Result<Option<TokenRef>, StoreError> {
    let t = TokenRef {
        token_id: get_s(item, attr::TOKEN_ID)?,
        device: get_s(item, attr::DEVICE)?,
        connector: get_s(item, attr::CONNECTOR)?,
        expires_at: opt_n(item, schema::TTL_ATTRIBUTE)?,
        config_next_key: opt_s(item, attr::CONFIG_NEXT_KEY),
    };
    Ok((!is_expired(t.expires_at, now)).then_some(t))
}

impl DynamoStore {
    /// The live token whose key hashes to `key_sha256` and the live device `identifier`, read
    /// consistently in one request.
    pub(super) async fn token_and_device_batch(
        &self,
        key_sha256: &str,
        identifier: &str,
        now: UnixTime,
    ) -> Result<(Option<TokenRef>, Option<Device>), StoreError> {
        let keys = KeysAndAttributes::builder()
            .keys(token_index_key(key_sha256))
            .keys(device_key(identifier))
            .consistent_read(true)
            .build()
            .map_err(|e| StoreError::Corrupt(format!("BatchGetItem request: {e}")))?;
        let out = self
            .client
            .batch_get_item()
            .request_items(&self.table, keys)
            .send()
            .await
            .map_err(|e| store_error("BatchGetItem token and device", &e))?;
        let unprocessed = out
            .unprocessed_keys
            .as_ref()
            .and_then(|u| u.get(&self.table))
            .is_some_and(|k| !k.keys().is_empty());
        if unprocessed {
            // Only under throttling: answered like any other throttled read.
            return Err(StoreError::Throttled);
        }
        let items = out
            .responses
            .and_then(|mut r| r.remove(&self.table))
            .unwrap_or_default();
        let (mut token, mut device) = (None, None);
        for item in &items {
            match sk_of(item) {
                TOKEN_INDEX => token = live_token(item, now)?,
                DEVICE => {
                    let d = device_from(item)?;
                    device = (!is_expired(d.expires_at, now)).then_some(d);
                }
                _ => {}
            }
        }
        Ok((token, device))
    }
}
