//! `endpoint-admin sealing rotate`: a new data key for the table, every device key re-sealed
//! under it, then the old one retired (refused from then on).
//!
//! 1. The keyring gets the next data key (`next_wrapped_key`, `next_generation`): from then on
//!    every enrollment seals with it (the enrollment's transaction checks the keyring's sealing
//!    generation, so a function that has not seen the rotation yet reads it again and reseals).
//! 2. Devices are paged in serial order; each token sealed under another generation is
//!    re-sealed, on condition that it is unchanged. A token already under the next generation
//!    is skipped: an interrupted rotation resumes where it stopped, and a second run does
//!    nothing twice.
//! 3. The paged pass reads the device index, which can lag recent writes (a device enrolled
//!    just before the rotation may not be listed yet), and skips expired devices: so the table
//!    is then swept with consistent reads (a scan of every sealed device key), re-sealing what
//!    another generation still seals, and swept again until a sweep finds none left.
//! 4. The next data key becomes the current one and the old wrapped key is deleted from the
//!    table: a value sealed under it (a backup written back) no longer opens. Warm functions
//!    drop the old key within `DATA_KEY_MAX_AGE`.

use aws_sdk_dynamodb::types::AttributeValue as Av;

use super::failure::{is_condition_failed, store_error};
use super::item::{n, Item};
use super::keyring::KeyringState;
use super::schema::{self, attr, device_pk, key, keyring_key, sk_of, ANY_TOKEN};
use super::store::DynamoStore;
use crate::adapters::sealing::generation_of;
use crate::error::StoreError;
use crate::model::UnixTime;
use crate::ports::DeviceStore;

/// How many consistent sweeps a rotation makes at most: each re-seals what the one before
/// found, so a second finds nothing unless enrollments keep sealing under the old key (they
/// cannot once the rotation began); then the old key is kept and the rotation can be run again.
const MAX_SWEEPS: usize = 5;

/// What a rotation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// The generation of the data key that seals everything afterwards.
    pub generation: u32,
    /// Whether this run began the rotation (an interrupted one is resumed).
    pub started: bool,
    pub devices: usize,
    /// Device keys re-sealed by this run.
    pub resealed: usize,
    /// Whether the old data key was retired (false: stopped after `max_pages`).
    pub finished: bool,
}

impl DynamoStore {
    /// Rotates the table's data key (see the module): pages of `page` devices, at most
    /// `max_pages` of them in this run (`None`: all, then the old key is retired); `progress`
    /// hears the devices and keys done so far after each page.
    pub async fn rotate_data_key(
        &self,
        page: usize,
        max_pages: Option<usize>,
        now: UnixTime,
        progress: &mut (dyn FnMut(&RotationReport) + Send),
    ) -> Result<RotationReport, StoreError> {
        let mut report = RotationReport {
            started: self.begin_rotation().await?,
            ..Default::default()
        };
        let keyring = self.reload_keyring().await?;
        report.generation = keyring.seal_generation;
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            if max_pages.is_some_and(|m| pages >= m) {
                return Ok(report);
            }
            let (devices, next) = self.devices_page(after.as_deref(), page, now).await?;
            for d in &devices {
                report.resealed += self.reseal_device(&d.identifier, report.generation).await?;
            }
            report.devices += devices.len();
            pages += 1;
            progress(&report);
            match next {
                Some(serial) => after = Some(serial),
                None => break,
            }
        }
        // Push streams' authorization headers, sealed like device keys.
        report.resealed += self.reseal_streams(report.generation).await?;
        report.resealed += self.sweep_old_generations(report.generation).await?;
        self.finish_rotation(report.generation).await?;
        self.reload_keyring().await?;
        report.finished = true;
        Ok(report)
    }

    /// Stores the next data key unless a rotation is under way; `Ok(true)` if this began one.
    async fn begin_rotation(&self) -> Result<bool, StoreError> {
        let item = self.keyring_item().await?;
        let state = KeyringState::of(&item)?;
        if state.next.is_some() {
            return Ok(false);
        }
        // The vault learns its KMS key from the current data key: unwrap it first.
        self.keyring().await?;
        let sealing = self.sealing.as_deref().ok_or_else(|| {
            StoreError::Unavailable("device key sealing is not configured".into())
        })?;
        let wrapped = sealing.vault.generate_data_key().await?.wrapped;
        let next = state.current.0 + 1;
        let begun = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keyring_key()))
            .update_expression("SET #next = :next, #wrapped = :wrapped")
            .condition_expression("attribute_not_exists(#next)")
            .expression_attribute_names("#next", attr::NEXT_GENERATION)
            .expression_attribute_names("#wrapped", attr::NEXT_WRAPPED_KEY)
            .expression_attribute_values(":next", n(next.into()))
            .expression_attribute_values(":wrapped", Av::B(aws_smithy_types::Blob::new(wrapped)))
            .send()
            .await;
        match begun {
            Ok(_) => Ok(true),
            // Another operator began it first: theirs is resumed.
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(store_error("UpdateItem keyring (rotate)", &e)),
        }
    }

    /// Re-seals the device's tokens that another generation sealed; how many.
    async fn reseal_device(&self, serial: &str, generation: u32) -> Result<usize, StoreError> {
        let pk = device_pk(serial);
        let mut count = 0;
        for item in self.partition("Query device (rotate)", &pk).await? {
            if sk_of(&item).starts_with(ANY_TOKEN) {
                count += usize::from(self.reseal_item(&item, generation).await?);
            }
        }
        Ok(count)
    }

    /// Re-seals one token item under `generation` if another one sealed it, on condition that
    /// it is unchanged; whether it was re-sealed.
    async fn reseal_item(&self, item: &Item, generation: u32) -> Result<bool, StoreError> {
        let Some(old) = sealed_of(item) else {
            return Ok(false);
        };
        if generation_of(&old) == Some(generation) {
            return Ok(false);
        }
        let Some(key) = self.token_key(item).await? else {
            return Ok(false);
        };
        let pk = item
            .get(schema::PK)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let sk = sk_of(item).to_string();
        let keyring = self.keyring().await?;
        let sealed = Self::seal_key(&keyring, &pk, &sk, &key)?;
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&pk, &sk)))
            .update_expression("SET #sealed = :sealed")
            .condition_expression("#sealed = :old")
            .expression_attribute_names("#sealed", attr::KEY_SEALED)
            .expression_attribute_values(":sealed", sealed)
            .expression_attribute_values(":old", Av::B(aws_smithy_types::Blob::new(old)))
            .send()
            .await;
        match updated {
            Ok(_) => Ok(true),
            // Replaced meanwhile (re-enrolled: sealed under the next key already).
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(store_error("UpdateItem reseal", &e)),
        }
    }

    /// Sweeps the table with consistent reads, re-sealing every device key that a generation
    /// other than `generation` seals and the keyring still opens, until a sweep finds none (at
    /// most [`MAX_SWEEPS`]); how many it re-sealed. A key under a data key already retired
    /// opens with nothing and is left as it is.
    async fn sweep_old_generations(&self, generation: u32) -> Result<usize, StoreError> {
        let mut resealed = 0;
        for _ in 0..MAX_SWEEPS {
            let keyring = self.reload_keyring().await?;
            let stale: Vec<Item> = self
                .sealed_items()
                .await?
                .into_iter()
                .filter(|item| {
                    sealed_of(item)
                        .and_then(|v| generation_of(&v))
                        .is_some_and(|g| g != generation && keyring.key(g).is_some())
                })
                .collect();
            if stale.is_empty() {
                return Ok(resealed);
            }
            for item in &stale {
                resealed += usize::from(match item.get(attr::AUTH_SEALED) {
                    // A push stream's header: written again as read (its writes seal under the
                    // keyring's current generation, checked in the same transaction).
                    Some(_) => self.reseal_stream_item(item).await?,
                    None => self.reseal_item(item, generation).await?,
                });
            }
        }
        Err(StoreError::Unavailable(format!(
            "device keys sealed under an older data key were still found after {MAX_SWEEPS} sweeps; the old key is kept: run the rotation again"
        )))
    }

    /// Every device token item with a sealed key and every push stream with a sealed
    /// authorization header, read consistently (a scan of the table).
    async fn sealed_items(&self) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .filter_expression(
                    "(begins_with(#sk, :token) AND attribute_exists(#sealed)) OR attribute_exists(#auth)",
                )
                .expression_attribute_names("#sk", schema::SK)
                .expression_attribute_names("#sealed", attr::KEY_SEALED)
                .expression_attribute_names("#auth", attr::AUTH_SEALED)
                .expression_attribute_values(":token", Av::S(ANY_TOKEN.to_string()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Scan sealed items (rotate)", &e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// The next data key becomes the current one; the old wrapped key leaves the table.
    async fn finish_rotation(&self, generation: u32) -> Result<(), StoreError> {
        let item = self.keyring_item().await?;
        let state = KeyringState::of(&item)?;
        let Some((next, wrapped)) = state.next.filter(|(g, _)| *g == generation) else {
            // Finished by a concurrent run.
            return Ok(());
        };
        let finished = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keyring_key()))
            .update_expression("SET #gen = :gen, #wrapped = :wrapped REMOVE #next, #next_wrapped")
            .condition_expression("#next = :gen")
            .expression_attribute_names("#gen", attr::GENERATION)
            .expression_attribute_names("#wrapped", attr::WRAPPED_KEY)
            .expression_attribute_names("#next", attr::NEXT_GENERATION)
            .expression_attribute_names("#next_wrapped", attr::NEXT_WRAPPED_KEY)
            .expression_attribute_values(":gen", n(next.into()))
            .expression_attribute_values(
                ":wrapped",
                Av::B(aws_smithy_types::Blob::new(wrapped.to_vec())),
            )
            .send()
            .await;
        match finished {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Ok(()),
            Err(e) => Err(store_error("UpdateItem keyring (finish rotation)", &e)),
        }
    }
}

/// The `key_sealed` bytes of an item, if it has them.
fn sealed_of(item: &Item) -> Option<Vec<u8>> {
    item.get(attr::KEY_SEALED)
        .or_else(|| item.get(attr::AUTH_SEALED))
        .and_then(|v| v.as_b().ok())
        .map(|b| b.as_ref().to_vec())
}

fn key_of(pk: &str, sk: &str) -> Item {
    key(pk.to_string(), sk.to_string())
}
