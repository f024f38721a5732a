//! The device lock: every stage denies a locked device (optional ones too), its `auth_ia/` is
//! refused right after its authentication, its check-ins flow; a timed lock ends by itself.

use endpoint_core::admin;
use endpoint_core::agent;
use endpoint_core::error::CoreError;
use endpoint_core::model::{StageMode, MSG_DEVICE_LOCKED};
use endpoint_core::ports::{AuditLog, Clock};

use crate::common::{denied, passed, Fx, KEY};

/// A connector with a required stage (its interactive one) and an optional one.
async fn two_stages(
    fx: &Fx,
) -> (
    endpoint_core::model::Connector,
    endpoint_core::model::Stage,
    endpoint_core::model::Stage,
) {
    let (c, required) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let optional = endpoint_core::model::Stage {
        id: format!("{}-optional", required.id),
        mode: StageMode::Optional,
        ..required.clone()
    };
    use endpoint_core::ports::Directory;
    fx.store.put_stage(&optional).await.unwrap();
    admin::set_interactive_stage(&fx.store, &c.id, &required.id)
        .await
        .unwrap();
    (c, required, optional)
}

/// The device's denials were audited with their reason, and so was its refused auth_ia.
async fn lock_refusals_are_audited(fx: &Fx) {
    let q = endpoint_core::audit::AuditQuery {
        device: None,
        limit: 100,
        ..Default::default()
    };
    let reasons: Vec<Option<String>> = fx
        .store
        .audit_events(&q, fx.clock.now())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.code == "ES102W" || e.code == "ES104W")
        .map(|e| e.reason)
        .collect();
    assert_eq!(reasons, vec![Some("device_locked".to_string()); 3]);
}

#[tokio::test]
async fn a_locked_device_is_denied_by_every_stage_and_auth_ia_while_check_ins_flow() {
    let fx = Fx::new();
    let (c, required, optional) = two_stages(&fx).await;
    let key = fx.enroll(&c.id, "LOCK-1").await;
    let answer = |stage: String| {
        let (fx, key) = (&fx, &key);
        async move {
            let plan = fx.plan(&stage).await;
            let jws = fx.challenge(&plan).await;
            fx.post(&plan, Some(&fx.respond("LOCK-1", key, &jws))).await
        }
    };
    assert_eq!(answer(required.id.clone()).await.unwrap(), passed());

    let lock = admin::lock_device(
        &fx.store,
        &fx.clock,
        &fx.rng,
        "LOCK-1",
        Some(3600),
        Some("lost"),
    )
    .await
    .unwrap();
    assert_eq!(
        (lock.since, lock.until),
        (fx.clock.now(), Some(fx.clock.now() + 3600))
    );
    for stage in [&required.id, &optional.id] {
        assert_eq!(
            answer(stage.clone()).await.unwrap(),
            denied(MSG_DEVICE_LOCKED),
            "{stage}"
        );
    }
    let auth = format!("Bearer+agent {}", key.expose());
    let refused = agent::auth_ia(&fx.store, &fx.env(), Some(&auth)).await;
    assert!(
        matches!(&refused, Err(CoreError::Forbidden(m)) if m == MSG_DEVICE_LOCKED),
        "{:?}",
        refused.err()
    );
    agent::check_in(
        &fx.store,
        &fx.env(),
        Some(&auth),
        b"{\"os\":{\"family\":\"linux\"}}",
    )
    .await
    .expect("a locked device still checks in");
    lock_refusals_are_audited(&fx).await;

    // A timed lock ends by itself; an open-ended one holds until unlocked.
    fx.clock.advance(3600);
    assert_eq!(answer(required.id.clone()).await.unwrap(), passed());
    admin::lock_device(&fx.store, &fx.clock, &fx.rng, "LOCK-1", None, None)
        .await
        .unwrap();
    fx.clock.advance(400 * 86_400);
    assert_eq!(
        answer(optional.id.clone()).await.unwrap(),
        denied(MSG_DEVICE_LOCKED)
    );
    admin::unlock_device(&fx.store, &fx.clock, &fx.rng, "LOCK-1")
        .await
        .unwrap();
    assert_eq!(answer(required.id.clone()).await.unwrap(), passed());
    assert!(agent::auth_ia(&fx.store, &fx.env(), Some(&auth))
        .await
        .is_ok());
}

#[tokio::test]
async fn unknown_devices_and_bad_lock_durations_are_refused() {
    let fx = Fx::new();
    let (c, _) = fx.setup(StageMode::Required, Some(KEY), true).await;
    fx.enroll(&c.id, "LOCK-1").await;
    let unknown = admin::lock_device(&fx.store, &fx.clock, &fx.rng, "NOBODY", None, None).await;
    assert!(
        matches!(unknown, Err(CoreError::NotFound(_))),
        "{unknown:?}"
    );
    for bad in [0, -5, admin::MAX_LOCK + 1] {
        let r = admin::lock_device(&fx.store, &fx.clock, &fx.rng, "LOCK-1", Some(bad), None).await;
        assert!(matches!(r, Err(CoreError::BadRequest(_))), "{bad}: {r:?}");
    }
}
