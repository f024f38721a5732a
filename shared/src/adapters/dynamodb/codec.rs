//! Items <-> model: how each entity is written to and read from an item.

use super::item::{corrupt, get_bool, get_n, get_s, n, opt_n, opt_s, s, Item};
use super::schema;
use super::schema::{attr, plan_key};
use crate::error::StoreError;
use crate::model::{
    Device, DeviceLock, DeviceRef, DeviceToken, PendingChallenge, Plan, PlanStatus, StageMode,
    StageSnapshot,
};
use crate::secret::Secret;
use aws_sdk_dynamodb::types::AttributeValue as Av;

pub(super) fn plan_item(p: &Plan) -> Result<Item, StoreError> {
    let mut item = plan_key(&p.id);
    item.insert(attr::ID.into(), s(&p.id));
    item.insert(attr::STAGE.into(), s(&p.stage));
    item.insert(attr::MODE.into(), s(p.config.mode.as_str()));
    item.insert(attr::CONNECTOR.into(), s(&p.config.connector));
    item.insert(attr::ENABLED.into(), Av::Bool(p.config.enabled));
    if let Some(k) = &p.config.challenge_key {
        item.insert(attr::CHALLENGE_KEY.into(), s(k));
    }
    item.insert(
        attr::IDLE_TIMEOUT.into(),
        n(p.config.challenge_idle_timeout.into()),
    );
    item.insert(
        attr::CHECK_IN.into(),
        Av::Bool(p.config.challenge_trigger_check_in),
    );
    item.insert(attr::REDIRECT.into(), s(&p.redirect));
    item.insert(attr::STATUS.into(), s(p.status.as_str()));
    if let Some(c) = &p.pending_challenge {
        item.insert(attr::CHALLENGE.into(), s(&c.jws));
        item.insert(attr::CHALLENGE_EXP.into(), n(c.exp));
    }
    item.insert(attr::ISSUED.into(), n(p.challenges_issued.into()));
    if let Some(d) = &p.device {
        item.insert(attr::DEVICE_ID.into(), s(&d.identifier));
        item.insert(attr::DEVICE_NAME.into(), s(&d.name));
        if let Some(uuid) = &d.id {
            item.insert(attr::DEVICE_UUID.into(), s(uuid));
        }
    }
    for (name, value) in [
        (attr::NONCE, &p.nonce),
        (attr::AUDIENCE, &p.audience),
        (attr::ASSERTION, &p.assertion),
    ] {
        if let Some(v) = value {
            item.insert(name.into(), s(v));
        }
    }
    if let Some(t) = p.ended_at {
        item.insert(attr::ENDED_AT.into(), n(t));
    }
    if let Some(a) = &p.device_auth {
        let json = serde_json::to_string(a)
            .map_err(|_| StoreError::Corrupt("device auth token".into()))?;
        item.insert(attr::DEVICE_AUTH.into(), s(json));
    }
    if let Some(m) = &p.denial {
        item.insert(attr::DENIAL.into(), s(m));
    }
    if let Some(o) = &p.owner {
        item.insert(attr::OWNER.into(), s(o));
    }
    if let Some(policy) = &p.config.policy {
        item.insert(attr::POLICY.into(), s(to_json(policy)?));
    }
    if let Some(help) = &p.config.help {
        item.insert(attr::HELP.into(), s(to_json(help)?));
    }
    if let Some(view) = &p.compliance {
        item.insert(attr::COMPLIANCE.into(), s(to_json(view)?));
    }
    if let Some(request) = &p.oidc {
        item.insert(attr::OIDC.into(), s(to_json(request)?));
    }
    item.insert(attr::CREATED_AT.into(), n(p.created_at));
    item.insert(schema::TTL_ATTRIBUTE.into(), n(p.expires_at));
    Ok(item)
}

pub(super) fn plan_from(item: &Item) -> Result<Plan, StoreError> {
    let stored = get_s(item, attr::STATUS)?;
    let status = [PlanStatus::Pending, PlanStatus::Passed, PlanStatus::Denied]
        .into_iter()
        .find(|s| s.as_str() == stored)
        .ok_or_else(|| corrupt(attr::STATUS))?;
    let mode = get_s(item, attr::MODE)?
        .parse::<StageMode>()
        .map_err(|_| corrupt(attr::MODE))?;
    let pending_challenge = match opt_s(item, attr::CHALLENGE) {
        Some(jws) => Some(PendingChallenge {
            jws,
            exp: get_n(item, attr::CHALLENGE_EXP)?,
        }),
        None => None,
    };
    let device = opt_s(item, attr::DEVICE_ID).map(|identifier| DeviceRef {
        identifier,
        name: opt_s(item, attr::DEVICE_NAME).unwrap_or_default(),
        id: opt_s(item, attr::DEVICE_UUID),
    });
    let device_auth = match opt_s(item, attr::DEVICE_AUTH) {
        Some(json) => Some(serde_json::from_str(&json).map_err(|_| corrupt(attr::DEVICE_AUTH))?),
        None => None,
    };
    let json_of = |f: &'static str| -> Result<Option<_>, StoreError> {
        opt_s(item, f)
            .map(|json| serde_json::from_str(&json).map_err(|_| corrupt(f)))
            .transpose()
    };
    let u32_of = |f: &str| get_n(item, f).and_then(|v| u32::try_from(v).map_err(|_| corrupt(f)));
    Ok(Plan {
        id: get_s(item, attr::ID)?,
        stage: get_s(item, attr::STAGE)?,
        config: StageSnapshot {
            mode,
            connector: get_s(item, attr::CONNECTOR)?,
            enabled: get_bool(item, attr::ENABLED)?,
            challenge_key: opt_s(item, attr::CHALLENGE_KEY),
            challenge_idle_timeout: u32_of(attr::IDLE_TIMEOUT)?,
            challenge_trigger_check_in: get_bool(item, attr::CHECK_IN)?,
            policy: json_of(attr::POLICY)?,
            help: opt_s(item, attr::HELP)
                .map(|json| serde_json::from_str(&json).map_err(|_| corrupt(attr::HELP)))
                .transpose()?,
        },
        redirect: get_s(item, attr::REDIRECT)?,
        status,
        pending_challenge,
        challenges_issued: u32_of(attr::ISSUED)?,
        device,
        device_auth,
        denial: opt_s(item, attr::DENIAL),
        compliance: opt_s(item, attr::COMPLIANCE)
            .map(|json| serde_json::from_str(&json).map_err(|_| corrupt(attr::COMPLIANCE)))
            .transpose()?,
        owner: opt_s(item, attr::OWNER),
        created_at: get_n(item, attr::CREATED_AT)?,
        expires_at: get_n(item, schema::TTL_ATTRIBUTE)?,
        nonce: opt_s(item, attr::NONCE),
        audience: opt_s(item, attr::AUDIENCE),
        ended_at: opt_n(item, attr::ENDED_AT)?,
        assertion: opt_s(item, attr::ASSERTION),
        oidc: opt_s(item, attr::OIDC)
            .map(|json| serde_json::from_str(&json).map_err(|_| corrupt(attr::OIDC)))
            .transpose()?,
    })
}

pub(super) fn device_from(item: &Item) -> Result<Device, StoreError> {
    let identifier = get_s(item, attr::IDENTIFIER)?;
    Ok(Device {
        // Devices enrolled before ids existed get a stable id derived from their serial until
        // their next enrollment stores a random one.
        id: opt_s(item, attr::DEVICE_ID).unwrap_or_else(|| legacy_device_id(&identifier)),
        identifier,
        name: get_s(item, attr::NAME)?,
        created_at: get_n(item, attr::CREATED_AT)?,
        expires_at: opt_n(item, schema::TTL_ATTRIBUTE)?,
        lock: match opt_n(item, attr::LOCKED_SINCE)? {
            Some(since) => Some(DeviceLock {
                since,
                until: opt_n(item, attr::LOCKED_UNTIL)?,
                reason: opt_s(item, attr::LOCK_REASON),
            }),
            None => None,
        },
        owners: owners_of(item)?,
    })
}

/// A device's owners: a list of strings (absent: none).
pub(super) fn owners_of(item: &Item) -> Result<Vec<String>, StoreError> {
    match item.get(attr::OWNERS) {
        None | Some(Av::Null(_)) => Ok(Vec::new()),
        Some(Av::L(list)) => list
            .iter()
            .map(|v| v.as_s().cloned().map_err(|_| corrupt(attr::OWNERS)))
            .collect(),
        Some(_) => Err(corrupt(attr::OWNERS)),
    }
}

/// Owners as a list attribute.
pub(super) fn owners_value(owners: &[String]) -> Av {
    Av::L(owners.iter().map(|o| Av::S(o.clone())).collect())
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

/// A token item with its key (opened by the keyring).
pub(super) fn token_from(item: &Item, key: Secret) -> Result<DeviceToken, StoreError> {
    Ok(DeviceToken {
        id: get_s(item, attr::TOKEN_ID)?,
        device: get_s(item, attr::DEVICE)?,
        connector: get_s(item, attr::CONNECTOR)?,
        key,
        created_at: get_n(item, attr::CREATED_AT)?,
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
    item.insert(attr::DATA.into(), s(json));
    if let Some(k) = kind {
        item.insert(schema::KIND.into(), s(k));
    }
    Ok(item)
}

/// A value as the JSON text of one attribute.
pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|_| StoreError::Corrupt("unserializable value".into()))
}

pub(super) fn json_from<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    serde_json::from_str(&get_s(item, attr::DATA)?).map_err(|_| corrupt(attr::DATA))
}
