//! The data key that seals device token keys (one `KEYRING` item holding it wrapped by the
//! vault), sealing and opening token keys, and `migrate`, which seals records written before.
//!
//! Plain keys (records from before sealing) are accepted only until `migrate` has sealed them
//! all and set `plain_keys_refused` on the keyring; a keyring created on a table without
//! devices refuses them from the start. A warm function that cached "accepted" re-reads the
//! keyring before it accepts a plain key, so a plain key written after the migration (by
//! someone with write access to the table) never authenticates.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::failure::{is_condition_failed, store_error};
use super::item::{corrupt, get_bool, get_s, n, opt_n, opt_s, s, Item};
use super::schema;
use super::schema::{attr, keyring_key, sk_of, DEVICE, ENROLLMENT};
use super::store::{DynamoStore, Keyring, Sealing};
use crate::adapters::sealing::{generation_of, DataKey};
use crate::error::StoreError;
use crate::secret::Secret;
use aws_sdk_dynamodb::types::AttributeValue as Av;

/// What `migrate` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Whether the data key was created by this run.
    pub keyring_created: bool,
    /// Device token keys sealed by this run.
    pub sealed: usize,
    /// Enrollment tokens made listable (given their `kind`) by this run.
    pub enrollment_tokens: usize,
    /// Audit records of a device given the device's key (`audit list --device`) by this run.
    pub audit_records: usize,
    /// Device tokens made listable by connector (`connector rotate` counts them) by this run.
    pub device_tokens: usize,
    /// Receivers whose stream count this run raised to the streams they hold (streams created
    /// before they were counted).
    pub stream_counts: usize,
}

/// What binds a sealed key to its item.
pub(super) fn aad(pk: &str, sk: &str) -> Vec<u8> {
    format!("{pk}\n{sk}").into_bytes()
}

/// The keyring item's generations: the current data key's and, during a rotation, the next's.
pub(super) struct KeyringState<'a> {
    pub(super) current: (u32, &'a [u8]),
    pub(super) next: Option<(u32, &'a [u8])>,
}

impl<'a> KeyringState<'a> {
    pub(super) fn of(item: &'a Item) -> Result<Self, StoreError> {
        let blob = |name: &'static str| {
            item.get(name)
                .map(|v| v.as_b().map(|b| b.as_ref()).map_err(|_| corrupt(name)))
                .transpose()
        };
        let generation = |name: &'static str| -> Result<Option<u32>, StoreError> {
            opt_n(item, name)?
                .map(|g| u32::try_from(g).map_err(|_| corrupt(name)))
                .transpose()
        };
        let current = blob(attr::WRAPPED_KEY)?.ok_or_else(|| corrupt(attr::WRAPPED_KEY))?;
        let next = match (
            generation(attr::NEXT_GENERATION)?,
            blob(attr::NEXT_WRAPPED_KEY)?,
        ) {
            (Some(g), Some(w)) => Some((g, w)),
            _ => None,
        };
        Ok(KeyringState {
            current: (generation(attr::GENERATION)?.unwrap_or(0), current),
            next,
        })
    }

    /// Every wrapped data key with its generation.
    pub(super) fn wrapped(&self) -> impl Iterator<Item = (u32, &'a [u8])> {
        std::iter::once(self.current).chain(self.next)
    }

    /// The generation new values are sealed with.
    pub(super) fn seal_generation(&self) -> u32 {
        self.next.map_or(self.current.0, |(g, _)| g)
    }
}

const NOT_CONFIGURED: &str =
    "device key sealing is not configured (SEALING_KEY_ID names the symmetric KMS key)";

impl DynamoStore {
    fn sealing(&self) -> Result<&Sealing, StoreError> {
        self.sealing
            .as_deref()
            .ok_or_else(|| StoreError::Unavailable(NOT_CONFIGURED.into()))
    }

    /// The unwrapped data keys: read and unwrapped once, then again after the sealing's
    /// maximum age (a rotation or a disabled KMS key reaches warm functions that way).
    pub(super) async fn keyring(&self) -> Result<Arc<Keyring>, StoreError> {
        let sealing = self.sealing()?;
        let mut cached = sealing.keyring.lock().await;
        if let Some(k) = cached
            .as_ref()
            .filter(|k| k.loaded.elapsed() < sealing.max_age)
        {
            return Ok(k.clone());
        }
        let loaded = Arc::new(self.load_keyring(sealing).await?);
        *cached = Some(loaded.clone());
        Ok(loaded)
    }

    /// Reads the keyring again now (a value of a generation this process does not hold, or a
    /// write refused because a rotation began).
    pub(super) async fn reload_keyring(&self) -> Result<Arc<Keyring>, StoreError> {
        let sealing = self.sealing()?;
        let mut cached = sealing.keyring.lock().await;
        let loaded = Arc::new(self.load_keyring(sealing).await?);
        *cached = Some(loaded.clone());
        Ok(loaded)
    }

    /// The keyring item (an error if the table has none yet).
    pub(super) async fn keyring_item(&self) -> Result<Item, StoreError> {
        self.get("GetItem keyring", keyring_key())
            .await?
            .ok_or_else(|| {
                StoreError::Unavailable(
                    "the table has no data key yet (endpoint-admin migrate creates it)".into(),
                )
            })
    }

    async fn load_keyring(&self, sealing: &Sealing) -> Result<Keyring, StoreError> {
        let item = self.keyring_item().await?;
        let state = KeyringState::of(&item)?;
        // The current and (during a rotation) the next data key, unwrapped together.
        let unwraps = state.wrapped().map(|(g, w)| async move {
            Ok::<_, StoreError>((g, sealing.vault.unwrap_data_key(w).await?))
        });
        let mut keys = Vec::new();
        for unwrapped in futures::future::join_all(unwraps).await {
            let (generation, plain) = unwrapped?;
            keys.push((generation, DataKey::from_bytes(&plain)?));
        }
        Ok(Keyring {
            keys,
            seal_generation: state.seal_generation(),
            plain_refused: AtomicBool::new(
                get_bool(&item, attr::PLAIN_KEYS_REFUSED).unwrap_or(false),
            ),
            loaded: Instant::now(),
        })
    }

    /// Loads the data key if this store seals and has not loaded it yet, so that the first read
    /// of a device's tokens in a process can fetch it beside the device query rather than after
    /// it. A failure is left for [`Self::token_key`] to report, if a token needs the key.
    pub(super) async fn warm_keyring(&self) {
        if let Some(sealing) = self.sealing.as_deref() {
            let cold = sealing.keyring.lock().await.is_none();
            if cold {
                let _ = self.keyring().await;
            }
        }
    }

    /// `key_sealed` of a token item, sealed with the keyring's sealing generation.
    pub(super) fn seal_key(
        keyring: &Keyring,
        pk: &str,
        sk: &str,
        key: &Secret,
    ) -> Result<Av, StoreError> {
        let generation = keyring.seal_generation;
        let data_key = keyring
            .key(generation)
            .ok_or_else(|| StoreError::Unavailable("the sealing data key is not loaded".into()))?;
        let sealed = data_key.seal(generation, &aad(pk, sk), key.expose().as_bytes())?;
        Ok(Av::B(aws_smithy_types::Blob::new(sealed)))
    }

    /// The key of a token item: opened if sealed (by a data key of the keyring; one sealed
    /// under a retired data key is refused); a plain one only while the table has not been
    /// migrated. `Ok(None)`: the item's key must not be used.
    pub(super) async fn token_key(&self, item: &Item) -> Result<Option<Secret>, StoreError> {
        let mut keyring = self.keyring().await?;
        if let Some(sealed) = item.get(attr::KEY_SEALED).and_then(|v| v.as_b().ok()) {
            let generation =
                generation_of(sealed.as_ref()).ok_or_else(|| corrupt(attr::KEY_SEALED))?;
            if keyring.key(generation).is_none() {
                // Sealed by a rotation this process has not seen yet: read the keyring again.
                keyring = self.reload_keyring().await?;
            }
            let Some(data_key) = keyring.key(generation) else {
                tracing::warn!(
                    event = "retired_data_key_refused",
                    generation,
                    "a device key sealed under a retired data key was refused"
                );
                return Ok(None);
            };
            let plain = data_key.open(
                &aad(&get_s(item, schema::PK)?, sk_of(item)),
                sealed.as_ref(),
            )?;
            let text = String::from_utf8(plain).map_err(|_| corrupt(attr::KEY_SEALED))?;
            return Ok(Some(Secret::new(text)));
        }
        let Some(plain) = opt_s(item, attr::KEY) else {
            return Err(corrupt(attr::KEY_SEALED));
        };
        if !keyring.plain_refused.load(Ordering::Relaxed) {
            // Cached "accepted": make sure the table was not migrated since.
            let refused = match self
                .get("GetItem keyring (plain key)", keyring_key())
                .await?
            {
                Some(k) => get_bool(&k, attr::PLAIN_KEYS_REFUSED).unwrap_or(false),
                None => true,
            };
            keyring.plain_refused.store(refused, Ordering::Relaxed);
        }
        if keyring.plain_refused.load(Ordering::Relaxed) {
            tracing::warn!(
                event = "plain_device_key_refused",
                "a device token stored in plain text was refused (the table is migrated)"
            );
            return Ok(None);
        }
        Ok(Some(Secret::new(plain)))
    }

    /// Creates the data key if the table has none (`Ok(true)`). A new keyring refuses plain
    /// keys from the start if the table holds no device yet.
    pub async fn ensure_keyring(&self) -> Result<bool, StoreError> {
        if self.get("GetItem keyring", keyring_key()).await?.is_some() {
            return Ok(false);
        }
        let sealing = self.sealing()?;
        let wrapped = sealing.vault.generate_data_key().await?.wrapped;
        let no_devices = self.kind("Query devices", DEVICE).await?.is_empty();
        let mut item = keyring_key();
        item.insert(
            attr::WRAPPED_KEY.into(),
            Av::B(aws_smithy_types::Blob::new(wrapped)),
        );
        item.insert(attr::PLAIN_KEYS_REFUSED.into(), Av::Bool(no_devices));
        // false: another operator created it first, and theirs is the one.
        self.put_if_absent("PutItem keyring", item).await
    }

    /// Idempotent data migrations: creates the data key if missing, seals every plain device
    /// token key (adding its hash), gives enrollment tokens and devices' audit records from
    /// before their `kind`, then refuses plain keys from now on.
    pub async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        let mut report = MigrationReport {
            keyring_created: self.ensure_keyring().await?,
            ..Default::default()
        };
        let keyring = self.keyring().await?;
        for device in self.kind("Query devices (migrate)", DEVICE).await? {
            let pk = get_s(&device, schema::PK)?;
            for item in self.partition("Query device (migrate)", &pk).await? {
                let sk = sk_of(&item).to_string();
                let Some(plain) = opt_s(&item, attr::KEY) else {
                    continue;
                };
                let key = Secret::new(plain);
                let sealed = Self::seal_key(&keyring, &pk, &sk, &key)?;
                let updated = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(super::schema::key(pk.clone(), sk.clone())))
                    .update_expression("SET #sealed = :sealed, #hash = :hash REMOVE #key")
                    .condition_expression("#key = :key")
                    .expression_attribute_names("#sealed", attr::KEY_SEALED)
                    .expression_attribute_names("#hash", attr::KEY_SHA256)
                    .expression_attribute_names("#key", attr::KEY)
                    .expression_attribute_values(":sealed", sealed)
                    .expression_attribute_values(":hash", s(key.sha256_hex()))
                    .expression_attribute_values(":key", s(key.expose()))
                    .send()
                    .await;
                match updated {
                    Ok(_) => report.sealed += 1,
                    // Changed meanwhile (re-enrolled, or sealed by a concurrent migrate).
                    Err(e) if is_condition_failed(&e) => {}
                    Err(e) => return Err(store_error("UpdateItem seal key", &e)),
                }
            }
        }
        report.enrollment_tokens = self.give_enrollment_tokens_kind().await?;
        report.audit_records = self.give_audit_records_device_kind().await?;
        report.device_tokens = self.give_token_index_kind().await?;
        report.stream_counts = self.count_streams().await?;
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keyring_key()))
            .update_expression("SET #refused = :t")
            .expression_attribute_names("#refused", attr::PLAIN_KEYS_REFUSED)
            .expression_attribute_values(":t", Av::Bool(true))
            .send()
            .await
            .map_err(|e| store_error("UpdateItem keyring", &e))?;
        keyring.plain_refused.store(true, Ordering::Relaxed);
        Ok(report)
    }

    /// Enrollment tokens written before they were listable get their `kind` (a scan for the
    /// few items without it: only `migrate` does this).
    async fn give_enrollment_tokens_kind(&self) -> Result<usize, StoreError> {
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
                .expression_attribute_values(":sk", s(ENROLLMENT))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Scan enrollment tokens (migrate)", &e))?;
            for item in out.items.unwrap_or_default() {
                let pk = get_s(&item, schema::PK)?;
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(super::schema::key(pk, ENROLLMENT)))
                    .update_expression("SET #kind = :kind, #uses = if_not_exists(#uses, :zero)")
                    .expression_attribute_names("#kind", schema::KIND)
                    .expression_attribute_names("#uses", attr::USES)
                    .expression_attribute_values(":kind", s(ENROLLMENT))
                    .expression_attribute_values(":zero", n(0))
                    .send()
                    .await
                    .map_err(|e| store_error("UpdateItem enrollment token (migrate)", &e))?;
                count += 1;
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(count),
            }
        }
    }
}
