//! Items <-> model: how each entity is written to and read from an item.

use super::*;

pub(super) fn plan_item(p: &Plan) -> Result<Item, StoreError> {
    let mut item = plan_key(&p.id);
    item.insert("id".into(), s(&p.id));
    item.insert("stage".into(), s(&p.stage));
    item.insert("mode".into(), s(p.config.mode.as_str()));
    item.insert("connector".into(), s(&p.config.connector));
    item.insert("enabled".into(), Av::Bool(p.config.enabled));
    if let Some(k) = &p.config.challenge_key {
        item.insert("challenge_key".into(), s(k));
    }
    item.insert(
        "idle_timeout".into(),
        n(p.config.challenge_idle_timeout.into()),
    );
    item.insert(
        "check_in".into(),
        Av::Bool(p.config.challenge_trigger_check_in),
    );
    item.insert("redirect".into(), s(&p.redirect));
    item.insert("status".into(), s(p.status.as_str()));
    if let Some(c) = &p.pending_challenge {
        item.insert("challenge".into(), s(&c.jws));
        item.insert("challenge_exp".into(), n(c.exp));
    }
    item.insert("issued".into(), n(p.challenges_issued.into()));
    if let Some(d) = &p.device {
        item.insert("device_id".into(), s(&d.identifier));
        item.insert("device_name".into(), s(&d.name));
    }
    if let Some(a) = &p.device_auth {
        let json = serde_json::to_string(a)
            .map_err(|_| StoreError::Corrupt("device auth token".into()))?;
        item.insert("device_auth".into(), s(json));
    }
    if let Some(m) = &p.denial {
        item.insert("denial".into(), s(m));
    }
    item.insert("created_at".into(), n(p.created_at));
    item.insert(schema::TTL_ATTRIBUTE.into(), n(p.expires_at));
    Ok(item)
}

pub(super) fn plan_from(item: &Item) -> Result<Plan, StoreError> {
    let stored = get_s(item, "status")?;
    let status = [PlanStatus::Pending, PlanStatus::Passed, PlanStatus::Denied]
        .into_iter()
        .find(|s| s.as_str() == stored)
        .ok_or_else(|| corrupt("status"))?;
    let mode = get_s(item, "mode")?
        .parse::<StageMode>()
        .map_err(|_| corrupt("mode"))?;
    let pending_challenge = match opt_s(item, "challenge") {
        Some(jws) => Some(PendingChallenge {
            jws,
            exp: get_n(item, "challenge_exp")?,
        }),
        None => None,
    };
    let device = opt_s(item, "device_id").map(|identifier| DeviceRef {
        identifier,
        name: opt_s(item, "device_name").unwrap_or_default(),
    });
    let device_auth = match opt_s(item, "device_auth") {
        Some(json) => Some(serde_json::from_str(&json).map_err(|_| corrupt("device_auth"))?),
        None => None,
    };
    let u32_of = |f: &str| get_n(item, f).and_then(|v| u32::try_from(v).map_err(|_| corrupt(f)));
    Ok(Plan {
        id: get_s(item, "id")?,
        stage: get_s(item, "stage")?,
        config: StageSnapshot {
            mode,
            connector: get_s(item, "connector")?,
            enabled: get_bool(item, "enabled")?,
            challenge_key: opt_s(item, "challenge_key"),
            challenge_idle_timeout: u32_of("idle_timeout")?,
            challenge_trigger_check_in: get_bool(item, "check_in")?,
        },
        redirect: get_s(item, "redirect")?,
        status,
        pending_challenge,
        challenges_issued: u32_of("issued")?,
        device,
        device_auth,
        denial: opt_s(item, "denial"),
        created_at: get_n(item, "created_at")?,
        expires_at: get_n(item, schema::TTL_ATTRIBUTE)?,
    })
}

pub(super) fn device_from(item: &Item) -> Result<Device, StoreError> {
    let identifier = get_s(item, "identifier")?;
    Ok(Device {
        // Devices enrolled before ids existed get a stable id derived from their serial until
        // their next enrollment stores a random one.
        id: opt_s(item, "device_id").unwrap_or_else(|| legacy_device_id(&identifier)),
        identifier,
        name: get_s(item, "name")?,
        created_at: get_n(item, "created_at")?,
        expires_at: opt_n(item, schema::TTL_ATTRIBUTE)?,
    })
}

/// A stable UUID-shaped id for a device item written before device ids existed: the first
/// 16 bytes of SHA-256 over the serial, formatted as a version 8 (custom) UUID.
pub(super) fn legacy_device_id(identifier: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("endpoint-stage device {identifier}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

pub(super) fn token_from(item: &Item) -> Result<DeviceToken, StoreError> {
    Ok(DeviceToken {
        id: get_s(item, "token_id")?,
        device: get_s(item, "device")?,
        connector: get_s(item, "connector")?,
        key: Secret::new(get_s(item, "key")?),
        created_at: get_n(item, "created_at")?,
        expires_at: opt_n(item, schema::TTL_ATTRIBUTE)?,
    })
}

pub(super) fn json_item<T: serde::Serialize>(
    mut item: Item,
    kind: Option<&str>,
    value: &T,
) -> Result<Item, StoreError> {
    let json = serde_json::to_string(value)
        .map_err(|_| StoreError::Corrupt("unserializable value".into()))?;
    item.insert("data".into(), s(json));
    if let Some(k) = kind {
        item.insert(schema::KIND.into(), s(k));
    }
    Ok(item)
}

pub(super) fn json_from<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    serde_json::from_str(&get_s(item, "data")?).map_err(|_| corrupt("data"))
}

pub(super) fn sk_of(item: &Item) -> &str {
    item.get(schema::SK)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .unwrap_or("")
}
