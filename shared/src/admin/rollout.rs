//! How far a connector's next challenge key has reached its devices. Agents learn challenge
//! keys only from their configuration (`agent_config/`: the Rust agent when it starts, the Go
//! agent hourly), and `agent_config/` records, per device token, the next key the device was
//! given. `connector rotate` signs with the next key only once every live device of the
//! connector has it (or with `--force`); `connector show` shows the same count.

use serde::Serialize;

use crate::error::CoreError;
use crate::model::{Connector, UnixTime};
use crate::ports::RolloutStore;

/// How many serials a refusal names (the rest are counted).
pub const NAMED_IN_REFUSAL: usize = 20;

/// The devices of a connector with a live token, and which of them have fetched their
/// configuration since its next key was published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyRollout {
    pub next_key: String,
    pub published_since: UnixTime,
    pub devices: usize,
    pub fetched: usize,
    /// The serials of the devices that have not, in order.
    pub not_fetched: Vec<String>,
}

impl KeyRollout {
    pub fn complete(&self) -> bool {
        self.not_fetched.is_empty()
    }

    /// The refusal of a rotation that would lock these devices' agents out.
    pub fn refusal(&self, connector: &str) -> CoreError {
        let mut named = self
            .not_fetched
            .iter()
            .take(NAMED_IN_REFUSAL)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if self.not_fetched.len() > NAMED_IN_REFUSAL {
            named.push_str(&format!(
                " and {} more",
                self.not_fetched.len() - NAMED_IN_REFUSAL
            ));
        }
        CoreError::Conflict(format!(
            "{} of {} devices of connector {connector} have not fetched their configuration since the next key was published ({named}): their agents would refuse the new key's challenges until they restart. Rotate once they have (connector show counts them), or with --force",
            self.not_fetched.len(),
            self.devices,
        ))
    }
}

/// The rollout of the connector's next key, if one is pending.
pub async fn key_rollout<R: RolloutStore>(
    store: &R,
    connector: &Connector,
    now: UnixTime,
) -> Result<Option<KeyRollout>, CoreError> {
    let Some(next) = &connector.next_key else {
        return Ok(None);
    };
    let fetches = store.config_fetches(&connector.id, now).await?;
    // One token per device and connector (enrollment replaces older ones); were there more, a
    // device has the key if any of its tokens' fetches brought it.
    let mut devices: Vec<(&str, bool)> = Vec::new();
    for f in &fetches {
        let has = f.next_key.as_deref() == Some(next.key.as_str());
        match devices.iter_mut().find(|(d, _)| *d == f.device) {
            Some((_, fetched)) => *fetched |= has,
            None => devices.push((&f.device, has)),
        }
    }
    devices.sort();
    Ok(Some(KeyRollout {
        next_key: next.key.clone(),
        published_since: next.added_at,
        devices: devices.len(),
        fetched: devices.iter().filter(|(_, f)| *f).count(),
        not_fetched: devices
            .iter()
            .filter(|(_, f)| !f)
            .map(|(d, _)| d.to_string())
            .collect(),
    }))
}
