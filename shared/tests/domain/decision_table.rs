//! The decision table (stage/, docs/ARCHITECTURE.md) in both modes, our six improvements, and hostile
//! responses, over the in-memory store with deterministic time.

use crate::common::{denied, is_retry, passed, Fx, KEY, T0};
use endpoint_core::model::{
    DenialReason, DeviceAuthToken, DeviceRef, DeviceToken, PlanStatus, StageMode,
};
use endpoint_core::protocol::device_token_hash;
use endpoint_core::secret::Secret;
use endpoint_core::stage::{self, Outcome};
use endpoint_core::CoreError;

pub(crate) const AUD: &str = "goauthentik.io/platform/endpoint";

// ---- the reference suite: optional/required x none/invalid/valid ----

#[tokio::test]
async fn optional_without_response_passes_without_device() {
    let fx = Fx::new();
    let (_, s) = fx.setup(StageMode::Optional, Some(KEY), true).await;
    let plan = fx.plan(&s.id).await;
    fx.challenge(&plan).await;
    assert_eq!(fx.post(&plan, None).await.unwrap(), passed());
    let p = fx.plan_state(&plan);
    assert_eq!(
        (p.status, p.device, p.pending_challenge),
        (PlanStatus::Passed, None, None)
    );
}

#[tokio::test]
async fn optional_with_invalid_response_passes_without_device() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Optional, Some(KEY), true).await;
    let key = fx.enroll(&c.id, "SERIAL1").await;
    let plan = fx.plan(&s.id).await;
    let challenge = fx.challenge(&plan).await;
    let wrong = fx.respond("SERIAL1", &Secret::new("not-the-key"), &challenge);
    assert_eq!(fx.post(&plan, Some(&wrong)).await.unwrap(), passed());
    assert_eq!(fx.plan_state(&plan).device, None);
    let _ = key;
}

#[tokio::test]
async fn optional_with_valid_response_passes_with_device() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Optional, Some(KEY), true).await;
    let key = fx.enroll(&c.id, "SERIAL1").await;
    let plan = fx.plan(&s.id).await;
    let challenge = fx.challenge(&plan).await;
    let response = fx.respond("SERIAL1", &key, &challenge);
    assert_eq!(fx.post(&plan, Some(&response)).await.unwrap(), passed());
    let p = fx.plan_state(&plan);
    assert_eq!(p.status, PlanStatus::Passed);
    assert_eq!(p.device.unwrap().identifier, "SERIAL1");
    assert_eq!(
        p.pending_challenge, None,
        "the pending challenge is removed when the stage passes"
    );
}

#[tokio::test]
async fn required_without_response_denies() {
    let fx = Fx::new();
    let (_, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let plan = fx.plan(&s.id).await;
    fx.challenge(&plan).await;
    assert_eq!(
        fx.post(&plan, None).await.unwrap(),
        denied("Invalid challenge response")
    );
    assert_eq!(
        fx.post(&plan, Some("")).await.unwrap(),
        denied("Invalid challenge response"),
        "final outcome again"
    );
    assert_eq!(fx.plan_state(&plan).status, PlanStatus::Denied);
}

#[tokio::test]
async fn required_with_invalid_response_answers_a_new_challenge_with_errors() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    fx.enroll(&c.id, "SERIAL1").await;
    let plan = fx.plan(&s.id).await;
    let first = fx.challenge(&plan).await;
    let wrong = fx.respond("SERIAL1", &Secret::new("wrong"), &first);
    let out = fx.post(&plan, Some(&wrong)).await.unwrap();
    let Outcome::Challenge {
        jws,
        invalid_response: true,
        idle_timeout: 5,
        reason: Some(DenialReason::InvalidResponse),
    } = out
    else {
        panic!("expected a retry challenge, got {out:?}");
    };
    assert_ne!(jws, first, "a NEW challenge");
    let p = fx.plan_state(&plan);
    assert_eq!(p.status, PlanStatus::Pending);
    assert_eq!(p.pending_challenge.unwrap().jws, jws);
    assert_eq!(p.challenges_issued, 2);
}

#[tokio::test]
async fn required_with_valid_response_passes_with_device() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let key = fx.enroll(&c.id, "SERIAL1").await;
    let plan = fx.plan(&s.id).await;
    let challenge = fx.challenge(&plan).await;
    let out = fx
        .post(&plan, Some(&fx.respond("SERIAL1", &key, &challenge)))
        .await
        .unwrap();
    assert_eq!(out, passed());
    use endpoint_core::ports::DeviceStore;
    let stored = fx.store.get_device("SERIAL1", 0).await.unwrap().unwrap();
    assert_eq!(
        fx.plan_state(&plan).device,
        Some(DeviceRef {
            id: Some(stored.id),
            identifier: "SERIAL1".into(),
            name: "host-SERIAL1".into()
        })
    );
}

#[tokio::test]
async fn second_token_on_the_device_validates() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    fx.enroll(&c.id, "SERIAL1").await;
    let second = Secret::new("second-token-key-".repeat(4));
    fx.store.add_token(DeviceToken {
        id: "tok-2".into(),
        device: "SERIAL1".into(),
        connector: c.id.clone(),
        key: second.clone(),
        created_at: T0,
        expires_at: None,
    });
    let plan = fx.plan(&s.id).await;
    let challenge = fx.challenge(&plan).await;
    assert_eq!(
        fx.post(&plan, Some(&fx.respond("SERIAL1", &second, &challenge)))
            .await
            .unwrap(),
        passed()
    );
}

pub(crate) async fn dth_fixture(fx: &Fx, mode: StageMode) -> (String, Secret) {
    let (c, s) = fx.setup(mode, Some(KEY), true).await;
    let key = fx.enroll(&c.id, "SERIAL1").await;
    use endpoint_core::ports::DeviceStore;
    let token = fx
        .store
        .token_by_hash(&key.sha256_hex(), T0)
        .await
        .unwrap()
        .unwrap()
        .token_id;
    let auth = DeviceAuthToken {
        compliance: Vec::new(),
        id: "dat-1".into(),
        device: DeviceRef {
            id: None,
            identifier: "SERIAL1".into(),
            name: "host-SERIAL1".into(),
        },
        token_id: token,
        token_sha256: key.sha256_hex(),
        connector: c.id.clone(),
        expires_at: Some(T0 + 600),
    };
    let plan = stage::create_plan(&fx.store, &fx.env(), &s.id, Some("/next"), Some(auth))
        .await
        .unwrap()
        .id;
    (plan, key)
}

#[tokio::test]
async fn dth_match_passes_with_device_in_both_modes() {
    for mode in [StageMode::Optional, StageMode::Required] {
        let fx = Fx::new();
        let (plan, key) = dth_fixture(&fx, mode).await;
        assert_eq!(
            fx.get(&plan, Some(&device_token_hash(key.expose())))
                .await
                .unwrap(),
            passed()
        );
        assert_eq!(fx.plan_state(&plan).device.unwrap().identifier, "SERIAL1");
        assert_eq!(
            fx.plan_state(&plan).pending_challenge,
            None,
            "no challenge minted"
        );
    }
}

#[tokio::test]
async fn dth_wrong_denies_and_absent_falls_back_to_challenge() {
    let fx = Fx::new();
    let (plan, _) = dth_fixture(&fx, StageMode::Optional).await;
    assert!(matches!(
        fx.get(&plan, None).await.unwrap(),
        Outcome::Challenge { .. }
    ));
    assert_eq!(
        fx.get(&plan, Some(&"0".repeat(64))).await.unwrap(),
        denied("Invalid device token")
    );
    assert_eq!(fx.plan_state(&plan).status, PlanStatus::Denied);
}

#[tokio::test]
async fn dth_with_revoked_token_denies() {
    // Our improvement: the token behind the DTH must still exist.
    let fx = Fx::new();
    let (plan, key) = dth_fixture(&fx, StageMode::Required).await;
    let conn = fx.plan_state(&plan).config.connector;
    use endpoint_core::ports::DeviceStore;
    fx.store.revoke_tokens("SERIAL1", &conn).await.unwrap();
    assert_eq!(
        fx.get(&plan, Some(&device_token_hash(key.expose())))
            .await
            .unwrap(),
        denied("Invalid device token")
    );
}

#[tokio::test]
async fn connector_without_key_skips_optional_and_denies_required() {
    let fx = Fx::new();
    let (_, s) = fx.setup(StageMode::Optional, None, true).await;
    let plan = fx.plan(&s.id).await;
    assert_eq!(fx.get(&plan, None).await.unwrap(), passed());

    let (_, s) = fx.setup(StageMode::Required, None, true).await;
    let plan = fx.plan(&s.id).await;
    assert_eq!(
        fx.get(&plan, None).await.unwrap(),
        denied("Invalid stage configuration")
    );
}

#[tokio::test]
async fn required_stage_without_key_is_refused_at_configuration() {
    let fx = Fx::new();
    let c = endpoint_core::admin::create_connector(
        &fx.store,
        &fx.clock,
        &fx.rng,
        endpoint_core::admin::NewConnector {
            name: "no key".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let err =
        endpoint_core::admin::create_stage(&fx.store, &fx.rng, &c.id, StageMode::Required, &[])
            .await;
    assert!(matches!(err, Err(CoreError::Conflict(m)) if m.contains("no challenge key")));
    assert!(endpoint_core::admin::create_stage(
        &fx.store,
        &fx.rng,
        &c.id,
        StageMode::Optional,
        &[]
    )
    .await
    .is_ok());
}

#[tokio::test]
async fn disabled_connector_skips_optional_and_denies_required() {
    let fx = Fx::new();
    for (mode, expected) in [
        (StageMode::Optional, passed()),
        (StageMode::Required, denied("Invalid stage configuration")),
    ] {
        let (_, s) = fx.setup(mode, Some(KEY), false).await;
        let plan = fx.plan(&s.id).await;
        assert_eq!(fx.get(&plan, None).await.unwrap(), expected);
        let plan = fx.plan(&s.id).await;
        assert_eq!(fx.post(&plan, Some("x.y.z")).await.unwrap(), expected);
    }
}

// ---- the plan state machine ----

#[tokio::test]
async fn every_get_replaces_the_pending_challenge() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let key = fx.enroll(&c.id, "SERIAL1").await;
    let plan = fx.plan(&s.id).await;
    let first = fx.challenge(&plan).await;
    let second = fx.challenge(&plan).await;
    assert_ne!(first, second);
    let stale = fx.respond("SERIAL1", &key, &first);
    assert!(is_retry(&fx.post(&plan, Some(&stale)).await.unwrap()));
}

#[tokio::test]
async fn final_outcomes_are_answered_again() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let key = fx.enroll(&c.id, "SERIAL1").await;
    let plan = fx.plan(&s.id).await;
    let challenge = fx.challenge(&plan).await;
    fx.post(&plan, Some(&fx.respond("SERIAL1", &key, &challenge)))
        .await
        .unwrap();
    assert_eq!(fx.get(&plan, None).await.unwrap(), passed());
    assert_eq!(fx.post(&plan, None).await.unwrap(), passed());
    assert_eq!(
        fx.plan_state(&plan).challenges_issued,
        1,
        "no challenge minted for a final plan"
    );
}

#[tokio::test]
async fn attempt_limit_denies_the_plan() {
    let fx = Fx::new();
    let (_, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let plan = fx.plan(&s.id).await;
    for _ in 0..fx.settings.max_challenges_per_plan {
        fx.challenge(&plan).await;
    }
    assert_eq!(
        fx.get(&plan, None).await.unwrap(),
        denied("Too many attempts")
    );
    assert_eq!(
        fx.get(&plan, None).await.unwrap(),
        denied("Too many attempts")
    );
    assert_eq!(fx.plan_state(&plan).challenges_issued, 10);
}

#[tokio::test]
async fn invalid_responses_count_against_the_attempt_limit() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    fx.enroll(&c.id, "SERIAL1").await;
    let plan = fx.plan(&s.id).await;
    let mut challenge = fx.challenge(&plan).await;
    for _ in 1..fx.settings.max_challenges_per_plan {
        let bad = fx.respond("SERIAL1", &Secret::new("wrong"), &challenge);
        match fx.post(&plan, Some(&bad)).await.unwrap() {
            Outcome::Challenge {
                jws,
                invalid_response: true,
                ..
            } => challenge = jws,
            other => panic!("{other:?}"),
        }
    }
    let bad = fx.respond("SERIAL1", &Secret::new("wrong"), &challenge);
    assert_eq!(
        fx.post(&plan, Some(&bad)).await.unwrap(),
        denied("Too many attempts")
    );
}

#[tokio::test]
async fn unknown_and_expired_plans_are_not_found() {
    let fx = Fx::new();
    let (_, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    assert_eq!(
        fx.get("no-such-plan", None).await,
        Err(CoreError::NotFound("plan".into()))
    );
    assert_eq!(
        fx.post(&"x".repeat(500), None).await,
        Err(CoreError::NotFound("plan".into()))
    );
    let plan = fx.plan(&s.id).await;
    fx.clock.advance(fx.settings.plan_lifetime - 1);
    assert!(
        fx.get(&plan, None).await.is_ok(),
        "one second before expiry"
    );
    fx.clock.advance(2);
    assert!(fx.store.raw_plan(&plan).is_some(), "the item still exists");
    assert_eq!(
        fx.get(&plan, None).await,
        Err(CoreError::NotFound("plan".into()))
    );
    assert_eq!(
        fx.post(&plan, None).await,
        Err(CoreError::NotFound("plan".into()))
    );
}

#[tokio::test]
async fn unknown_stage_is_not_found_and_bad_redirect_is_refused() {
    let fx = Fx::new();
    let r = stage::create_plan(&fx.store, &fx.env(), "nope", None, None).await;
    assert_eq!(r, Err(CoreError::NotFound("stage".into())));
    let (_, s) = fx.setup(StageMode::Optional, Some(KEY), true).await;
    let r = stage::create_plan(&fx.store, &fx.env(), &s.id, Some("/a\nb"), None).await;
    assert!(matches!(r, Err(CoreError::BadRequest(_))));
    let ok = stage::create_plan(&fx.store, &fx.env(), &s.id, None, None)
        .await
        .unwrap();
    assert_eq!(fx.plan_state(&ok.id).redirect, "/");
    assert_eq!(ok.expires_at, T0 + 900);
    assert!(ok.id.len() >= 22, "at least 128 random bits");
}

// ---- the six improvements ----
