//! A key rotation that cannot lock out running agents: `agent_config/` records, once per
//! device and next key, that the device has the next key; `connector rotate` refuses while a
//! live device of the connector has not fetched it (listing them), unless forced.

use crate::common::{passed, Fx, KEY, T0};
use endpoint_core::adapters::memory::MemoryStore;
use endpoint_core::admin::{self, KeyRollout, DEFAULT_ROTATION_GRACE, NAMED_IN_REFUSAL};
use endpoint_core::agent;
use endpoint_core::model::{ConfigFetch, StageMode};
use endpoint_core::ports::{Clock, RolloutStore};
use endpoint_core::protocol::keys::KeySpec;
use endpoint_core::secret::Secret;
use endpoint_core::CoreError;

async fn fetch(fx: &Fx, key: &Secret) {
    let auth = format!("Bearer+agent {}", key.expose());
    agent::agent_config(&fx.store, &fx.signer, &fx.clock, Some(&auth))
        .await
        .unwrap();
}

async fn fetches(store: &MemoryStore, connector: &str, now: i64) -> Vec<ConfigFetch> {
    store.config_fetches(connector, now).await.unwrap()
}

#[tokio::test]
async fn rotate_waits_until_every_live_device_has_fetched_the_next_key_unless_forced() {
    let mut fx = Fx::new();
    fx.signer.generate("next", KeySpec::EccNistP256).unwrap();
    fx.signer.generate("other", KeySpec::EccNistP256).unwrap();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let a = fx.enroll(&c.id, "SERIAL-A").await;
    let b = fx.enroll(&c.id, "SERIAL-B").await;

    // No rotation under way: fetching the configuration records nothing (no write).
    fetch(&fx, &a).await;
    assert!(fetches(&fx.store, &c.id, T0)
        .await
        .iter()
        .all(|f| f.next_key.is_none() && f.at.is_none()));
    assert_eq!(admin::key_rollout(&fx.store, &c, T0).await.unwrap(), None);

    fx.clock.advance(10);
    let c1 = admin::add_next_key(&fx.store, &fx.clock, &c.id, "next")
        .await
        .unwrap();
    let published = fx.clock.now();
    let rollout = |fetched, not_fetched: &[&str]| KeyRollout {
        next_key: "next".into(),
        published_since: published,
        devices: 2,
        fetched,
        not_fetched: not_fetched.iter().map(|s| s.to_string()).collect(),
    };
    assert_eq!(
        admin::key_rollout(&fx.store, &c1, published).await.unwrap(),
        Some(rollout(0, &["SERIAL-A", "SERIAL-B"]))
    );
    let refused = admin::rotate(&fx.store, &fx.clock, &c.id, DEFAULT_ROTATION_GRACE, false).await;
    assert!(
        matches!(&refused, Err(CoreError::Conflict(m))
            if m.contains("2 of 2 devices") && m.contains("SERIAL-A, SERIAL-B") && m.contains("--force")),
        "{refused:?}"
    );

    // A fetches: recorded once (a second fetch writes nothing: the time stays the first's).
    fx.clock.advance(60);
    let first = fx.clock.now();
    fetch(&fx, &a).await;
    fx.clock.advance(60);
    fetch(&fx, &a).await;
    let recorded = fetches(&fx.store, &c.id, fx.clock.now()).await;
    assert_eq!(
        (recorded[0].next_key.as_deref(), recorded[0].at),
        (Some("next"), Some(first))
    );
    assert_eq!(
        admin::key_rollout(&fx.store, &c1, fx.clock.now())
            .await
            .unwrap(),
        Some(rollout(1, &["SERIAL-B"]))
    );
    let refused = admin::rotate(&fx.store, &fx.clock, &c.id, DEFAULT_ROTATION_GRACE, false).await;
    assert!(
        matches!(&refused, Err(CoreError::Conflict(m)) if m.contains("1 of 2 devices") && m.contains("(SERIAL-B)")),
        "{refused:?}"
    );

    // Another next key replaces the pending one: A's fetch was of the other key.
    let c2 = admin::add_next_key(&fx.store, &fx.clock, &c.id, "other")
        .await
        .unwrap();
    let pending = admin::key_rollout(&fx.store, &c2, fx.clock.now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((pending.fetched, pending.devices), (0, 2));
    let c3 = admin::add_next_key(&fx.store, &fx.clock, &c.id, "next")
        .await
        .unwrap();

    // B fetches: every device has it, the rotation goes ahead and says so.
    fetch(&fx, &b).await;
    let (rotated, at) = admin::rotate(&fx.store, &fx.clock, &c.id, DEFAULT_ROTATION_GRACE, false)
        .await
        .unwrap();
    assert_eq!(rotated.challenge_key.as_deref(), Some("next"));
    assert_eq!((at.fetched, at.devices, at.complete()), (2, 2, true));
    assert_eq!(at.published_since, c3.next_key.unwrap().added_at);
    // The stage passes with the new key for a device that fetched it.
    let plan = fx.plan(&s.id).await;
    let challenge = fx.challenge(&plan).await;
    let response = fx.respond("SERIAL-B", &b, &challenge);
    assert_eq!(fx.post(&plan, Some(&response)).await.unwrap(), passed());
}

#[tokio::test]
async fn forced_rotations_go_ahead_and_devices_without_a_live_token_do_not_count() {
    let mut fx = Fx::new();
    fx.signer.generate("next", KeySpec::EccNistP256).unwrap();
    let (c, _) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let serials: Vec<String> = (0..NAMED_IN_REFUSAL + 3)
        .map(|i| format!("S-{i:02}"))
        .collect();
    for serial in &serials {
        fx.enroll(&c.id, serial).await;
    }
    // A device whose tokens were revoked is no device of the connector any more.
    use endpoint_core::ports::DeviceStore;
    fx.store.revoke_tokens("S-00", &c.id).await.unwrap();
    admin::add_next_key(&fx.store, &fx.clock, &c.id, "next")
        .await
        .unwrap();
    let refused = admin::rotate(&fx.store, &fx.clock, &c.id, DEFAULT_ROTATION_GRACE, false).await;
    let Err(CoreError::Conflict(m)) = &refused else {
        panic!("{refused:?}");
    };
    // Only the first serials are named, the rest counted; the revoked one is not there.
    assert!(
        m.contains(&format!("{n} of {n} devices", n = NAMED_IN_REFUSAL + 2)),
        "{m}"
    );
    assert!(
        m.contains("S-01, S-02") && m.contains("and 2 more") && !m.contains("S-00"),
        "{m}"
    );
    let (rotated, at) = admin::rotate(&fx.store, &fx.clock, &c.id, DEFAULT_ROTATION_GRACE, true)
        .await
        .unwrap();
    assert_eq!(rotated.challenge_key.as_deref(), Some("next"));
    assert_eq!(
        (at.fetched, at.not_fetched.len()),
        (0, NAMED_IN_REFUSAL + 2)
    );
}
