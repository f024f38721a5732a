//! Rules of the agent-facing side over the in-memory store (fast; the same rules run over
//! HTTP against moto in the end-to-end suite): key rotation that real agents survive, the
//! ES512 refusal, device identifiers on every path, re-enrollment keeping the device, and the
//! agent's `Authorization` parsing.

use crate::common::{add_key, passed, Fx, KEY, T0};
use crate::enrollment::{agent_enroll, token_for};
use endpoint_core::adapters::local_signer::LocalSigner;
use endpoint_core::admin::{self, DEFAULT_ROTATION_GRACE, KEY_OVERLAP};
use endpoint_core::agent;
use endpoint_core::model::{NextKey, RetiredKey, StageMode};
use endpoint_core::ports::{ChallengeSigner, Clock, DeviceStore};
use endpoint_core::protocol::keys::KeySpec;
use endpoint_core::stage;
use endpoint_core::CoreError;

fn kids(jwks: &endpoint_core::protocol::jwk::Jwks) -> Vec<String> {
    jwks.keys.iter().map(|k| k.kid.clone()).collect()
}

async fn kid(signer: &LocalSigner, key: &str) -> String {
    signer.describe(key).await.unwrap().kid
}

#[tokio::test]
async fn rotation_publishes_the_next_key_first_and_keeps_the_old_one_for_the_grace_period() {
    let mut fx = Fx::new();
    fx.signer.generate("next", KeySpec::EccNistP384).unwrap();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let (old_kid, next_kid) = (kid(&fx.signer, KEY).await, kid(&fx.signer, "next").await);

    // Published at once, but challenges are still signed with the current key.
    let c1 = admin::add_next_key(&fx.store, &fx.clock, &c.id, "next")
        .await
        .unwrap();
    assert_eq!(
        c1.next_key,
        Some(NextKey {
            key: "next".into(),
            added_at: T0
        })
    );
    let jwks = stage::jwks_of(&c1, &fx.signer, T0).await.unwrap();
    assert_eq!(kids(&jwks), [old_kid.clone(), next_kid.clone()]);
    let plan = fx.plan(&s.id).await;
    let jws = fx.challenge(&plan).await;
    assert_eq!(
        jsonwebtoken::decode_header(&jws).unwrap().kid,
        Some(old_kid.clone())
    );

    // An agent that fetched its configuration after add-next-key verifies both before and
    // after the rotation; the old key stays published for the grace period.
    fx.clock.advance(3600);
    let (c2, _) = admin::rotate(&fx.store, &fx.clock, &c.id, DEFAULT_ROTATION_GRACE, false)
        .await
        .unwrap();
    assert_eq!(c2.challenge_key.as_deref(), Some("next"));
    assert_eq!(c2.challenge_key_since, Some(T0 + 3600));
    assert_eq!(c2.next_key, None);
    assert_eq!(
        c2.retired_keys,
        vec![RetiredKey {
            key: KEY.into(),
            until: T0 + 3600 + DEFAULT_ROTATION_GRACE,
            retired_at: Some(T0 + 3600),
        }]
    );
    // A plan created after the rotation signs with the new key (plans snapshot the key).
    let plan = fx.plan(&s.id).await;
    let jws = fx.challenge(&plan).await;
    assert_eq!(
        jsonwebtoken::decode_header(&jws).unwrap().kid,
        Some(next_kid.clone())
    );
    let jwks = stage::jwks_of(&c2, &fx.signer, endpoint_core::ports::Clock::now(&fx.clock))
        .await
        .unwrap();
    assert_eq!(kids(&jwks), [next_kid.clone(), old_kid.clone()]);
    // After the grace period only the new key is published.
    let later = T0 + 3600 + DEFAULT_ROTATION_GRACE;
    let jwks = stage::jwks_of(&c2, &fx.signer, later).await.unwrap();
    assert_eq!(kids(&jwks), [next_kid]);
}

#[tokio::test]
async fn rotate_without_a_next_key_is_refused_and_a_short_grace_is_raised_to_the_overlap() {
    let mut fx = Fx::new();
    fx.signer.generate("next", KeySpec::EccNistP256).unwrap();
    let (c, _) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let refused = admin::rotate(&fx.store, &fx.clock, &c.id, DEFAULT_ROTATION_GRACE, false).await;
    assert!(
        matches!(&refused, Err(CoreError::Conflict(m)) if m.contains("add-next-key")),
        "{refused:?}"
    );
    assert!(matches!(
        admin::add_next_key(&fx.store, &fx.clock, &c.id, KEY).await,
        Err(CoreError::Conflict(_))
    ));
    admin::add_next_key(&fx.store, &fx.clock, &c.id, "next")
        .await
        .unwrap();
    let (c, _) = admin::rotate(&fx.store, &fx.clock, &c.id, 1, false)
        .await
        .unwrap();
    assert_eq!(c.retired_keys[0].until, T0 + KEY_OVERLAP);
}

#[tokio::test]
async fn p521_keys_are_refused_for_challenges_with_the_reason() {
    let mut signer = LocalSigner::new();
    signer.generate("p521", KeySpec::EccNistP521).unwrap();
    signer.generate("p384", KeySpec::EccNistP384).unwrap();
    add_key(&mut signer, "rsa", KeySpec::Rsa2048);
    let refused = admin::check_challenge_key(&signer, "p521").await;
    assert!(
        matches!(&refused, Err(CoreError::Conflict(m)) if m.contains("ES512") && m.contains("agents")),
        "{refused:?}"
    );
    assert!(admin::check_challenge_key(&signer, "p384").await.is_ok());
    assert!(admin::check_challenge_key(&signer, "rsa").await.is_ok());
    assert!(matches!(
        admin::check_challenge_key(&signer, "missing").await,
        Err(CoreError::Conflict(_))
    ));
}

#[tokio::test]
async fn real_world_serials_pass_the_stage_and_control_characters_are_refused() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    for serial in [
        "VMware-56 4d 1a 2b 3c 4d 5e 6f-70 81 92 a3 b4 c5 d6 e7",
        "To Be Filled By O.E.M.",
        "Gerät-Nr. ÄÖÜ 東京-0042",
    ] {
        let key = fx.enroll(&c.id, serial).await;
        let plan = fx.plan(&s.id).await;
        let jws = fx.challenge(&plan).await;
        let response = fx.respond(serial, &key, &jws);
        assert_eq!(fx.post(&plan, Some(&response)).await, Ok(passed()));
        assert_eq!(
            fx.plan_state(&plan).device.map(|d| d.identifier),
            Some(serial.to_string())
        );
    }
    for bad in [
        "",
        "a\nb",
        "nul\0",
        "laptop\u{202E}exe.rcs",
        "zero\u{200B}width",
        &"x".repeat(257),
    ] {
        let r = admin::enroll_device(&fx.store, &fx.clock, &fx.rng, &c.id, bad, "h").await;
        assert!(matches!(r, Err(CoreError::BadRequest(_))), "{bad:?}");
        let r = admin::enroll_device(&fx.store, &fx.clock, &fx.rng, &c.id, "ok", bad).await;
        assert!(matches!(r, Err(CoreError::BadRequest(_))), "name {bad:?}");
    }
}

#[tokio::test]
async fn re_enrollment_keeps_the_device_id_name_and_expiry() {
    let fx = Fx::new();
    let (c, _) = fx.setup(StageMode::Optional, Some(KEY), true).await;
    let (c2, _) = fx.setup(StageMode::Optional, Some(KEY), true).await;
    fx.enroll(&c.id, "SER").await;
    fx.enroll(&c2.id, "SER").await;
    let first = fx.store.get_device("SER", T0).await.unwrap().unwrap();
    assert_eq!(first.id.len(), 36);
    admin::enroll_device(&fx.store, &fx.clock, &fx.rng, &c.id, "SER", "renamed")
        .await
        .unwrap();
    let again = fx.store.get_device("SER", T0).await.unwrap().unwrap();
    assert_eq!(again, first, "id, name, creation time and expiry kept");
    // The device's token on the other connector is untouched.
    let tokens = fx
        .store
        .device_with_tokens("SER", T0)
        .await
        .unwrap()
        .unwrap()
        .tokens;
    assert_eq!(tokens.len(), 2);
    assert!(tokens.iter().any(|t| t.connector == c2.id));
}

#[test]
fn agent_authorization_is_403_when_missing_or_malformed_and_the_scheme_ignores_case() {
    for (header, scheme) in [
        ("bearer+agent abc", "Bearer+agent"),
        ("BEARER+AGENT abc", "Bearer+agent"),
        ("Bearer abc", "Bearer"),
        ("bEaReR abc", "Bearer"),
    ] {
        assert_eq!(agent::bearer(Some(header), scheme), Ok("abc"), "{header}");
    }
    for header in [
        None,
        Some(""),
        Some("Bearer"),
        Some("Bearer "),
        Some("Basic abc"),
        Some("Bearer+agent abc"),
        Some("Bearer a b"),
    ] {
        assert!(
            matches!(
                agent::bearer(header, "Bearer"),
                Err(CoreError::Forbidden(_))
            ),
            "{header:?}"
        );
    }
}

#[tokio::test]
async fn agent_config_is_the_full_model_with_the_device_uuid() {
    let fx = Fx::new();
    let (c, _) = fx.setup(StageMode::Optional, Some(KEY), true).await;
    let key = fx.enroll(&c.id, "CFG").await;
    let auth = format!("Bearer+agent {}", key.expose());
    let config = agent::agent_config(&fx.store, &fx.signer, &fx.clock, Some(&auth))
        .await
        .unwrap();
    let device = fx.store.get_device("CFG", T0).await.unwrap().unwrap();
    assert_eq!(config.device_id, device.id);
    let json = serde_json::to_value(&config).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "device_id": device.id,
            "refresh_interval": 1800,
            "authorization_flow": null,
            "jwks_auth": {"keys": []},
            "jwks_challenge": serde_json::to_value(stage::jwks_of(&c, &fx.signer, T0).await.unwrap()).unwrap(),
            "nss_uid_offset": 1000,
            "nss_gid_offset": 1000,
            "auth_terminate_session_on_expiry": false,
            "system_config": {
                "error_reporting": {"enabled": false, "sentry_dsn": "", "environment": "", "send_pii": false, "traces_sample_rate": 0.0},
                "capabilities": [],
                "cache_timeout": 300,
                "cache_timeout_flows": 300,
                "cache_timeout_policies": 300,
            },
            "license_status": "unlicensed",
        })
    );
}

#[tokio::test]
async fn stage_outcomes_are_audited_with_their_reason_and_never_a_secret() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let device_key = fx.enroll(&c.id, "AUD-1").await;
    // A pass with a device.
    let plan = fx.plan(&s.id).await;
    let jws = fx.challenge(&plan).await;
    let response = endpoint_core::protocol::response::sign_response(
        "AUD-1",
        device_key.expose(),
        &jws,
        fx.clock.now(),
    );
    let outcome = fx.post(&plan, Some(&response)).await.unwrap();
    assert!(matches!(outcome, stage::Outcome::Redirect { .. }));
    // An invalid response (required mode: a new challenge), then no response (denied).
    let plan2 = fx.plan(&s.id).await;
    fx.challenge(&plan2).await;
    fx.clock.advance(1);
    fx.post(&plan2, Some("not.a.jws")).await.unwrap();
    fx.clock.advance(1);
    fx.post(&plan2, None).await.unwrap();

    use endpoint_core::ports::AuditLog;
    let q = endpoint_core::audit::AuditQuery {
        since: 0,
        limit: 100,
        ..Default::default()
    };
    let events = fx.store.audit_events(&q, fx.clock.now()).await.unwrap();
    let mut seen: Vec<(String, Option<String>, Option<String>)> = events
        .iter()
        .map(|e| (e.code.clone(), e.plan.clone(), e.reason.clone()))
        .collect();
    seen.reverse();
    assert_eq!(
        seen,
        [
            (
                "ES101I".into(),
                Some(plan.clone()),
                Some("valid_response".into())
            ),
            (
                "ES103W".into(),
                Some(plan2.clone()),
                Some("malformed".into())
            ),
            (
                "ES102W".into(),
                Some(plan2.clone()),
                Some("no_response".into())
            ),
        ]
    );
    let passed = events.iter().find(|e| e.code == "ES101I").unwrap();
    assert_eq!(passed.actor, "device:AUD-1");
    assert_eq!(passed.device.as_deref(), Some("AUD-1"));
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(&jws) && !all.contains(&response) && !all.contains(device_key.expose()));
}

#[tokio::test]
async fn auth_ia_is_limited_per_device_and_minute() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    admin::set_interactive_stage(&fx.store, &c.id, &s.id)
        .await
        .unwrap();
    let key = fx.enroll(&c.id, "IA-1").await;
    let auth = format!("Bearer+agent {}", key.expose());
    fx.clock.set(T0 - T0 % 60 + 15);
    for _ in 0..fx.settings.auth_ia_per_minute {
        agent::auth_ia(&fx.store, &fx.env(), Some(&auth))
            .await
            .unwrap();
    }
    let refused = agent::auth_ia(&fx.store, &fx.env(), Some(&auth)).await;
    assert_eq!(
        refused,
        Err(CoreError::RateLimited(45)),
        "until the minute ends"
    );
    // Another device is not affected; the next minute is a new window.
    let other = fx.enroll(&c.id, "IA-2").await;
    let other_auth = format!("Bearer+agent {}", other.expose());
    assert!(agent::auth_ia(&fx.store, &fx.env(), Some(&other_auth))
        .await
        .is_ok());
    fx.clock.advance(45);
    assert!(agent::auth_ia(&fx.store, &fx.env(), Some(&auth))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_plan_is_read_only_by_the_principal_that_created_it() {
    let fx = Fx::new();
    let (_, s) = fx.setup(StageMode::Optional, Some(KEY), true).await;
    let as_principal = |arn: Option<&str>| endpoint_core::audit::Caller {
        principal: arn.map(str::to_string),
        ..Default::default()
    };
    let alice = as_principal(Some("arn:aws:iam::111122223333:role/alice"));
    let bob = as_principal(Some("arn:aws:iam::111122223333:role/bob"));
    let env_of = |caller| endpoint_core::settings::Env { caller, ..fx.env() };
    let created = stage::create_plan(&fx.store, &env_of(&alice), &s.id, None, None)
        .await
        .unwrap();
    assert!(
        stage::read_own_plan(&fx.store, &env_of(&alice), &created.id)
            .await
            .is_ok()
    );
    assert_eq!(
        stage::read_own_plan(&fx.store, &env_of(&bob), &created.id).await,
        Err(CoreError::NotFound("plan".into())),
        "exactly as an unknown plan"
    );
    let nobody = as_principal(None);
    assert!(
        stage::read_own_plan(&fx.store, &env_of(&nobody), &created.id)
            .await
            .is_err()
    );
    // Unbound (no IAM locally): anyone.
    let local = stage::create_plan(&fx.store, &fx.env(), &s.id, None, None)
        .await
        .unwrap();
    assert!(stage::read_own_plan(&fx.store, &env_of(&bob), &local.id)
        .await
        .is_ok());
}

#[tokio::test]
async fn enrollment_checks_the_credentials_before_the_body() {
    let fx = Fx::new();
    let (c, _) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let bad_body = || Err(CoreError::BadRequest("not an object".into()));
    let unknown = agent::enroll(&fx.store, &fx.env(), Some("Bearer nope"), bad_body()).await;
    assert!(
        matches!(unknown, Err(CoreError::Forbidden(_))),
        "{unknown:?}"
    );
    let key = token_for(&fx, &c.id, Some(1), None).await;
    agent_enroll(&fx, &key, "ONCE").await.unwrap();
    let used_up = agent::enroll(
        &fx.store,
        &fx.env(),
        Some(&format!("Bearer {key}")),
        bad_body(),
    )
    .await;
    assert!(
        matches!(used_up, Err(CoreError::Forbidden(_))),
        "{used_up:?}"
    );
    let fresh = token_for(&fx, &c.id, None, None).await;
    let bad = agent::enroll(
        &fx.store,
        &fx.env(),
        Some(&format!("Bearer {fresh}")),
        bad_body(),
    )
    .await;
    assert!(matches!(bad, Err(CoreError::BadRequest(_))), "{bad:?}");
    // A refused request with an invalid serial is audited without it.
    let request = agent::EnrollRequest {
        device_serial: "bad\u{202E}serial".into(),
        device_name: "n".into(),
    };
    let r = agent::enroll(&fx.store, &fx.env(), Some("Bearer nope"), Ok(request)).await;
    assert!(r.is_err());
    use endpoint_core::ports::AuditLog;
    let q = endpoint_core::audit::AuditQuery {
        since: 0,
        limit: 100,
        ..Default::default()
    };
    let events = fx.store.audit_events(&q, fx.clock.now()).await.unwrap();
    assert!(events
        .iter()
        .all(|e| !e.actor.contains('\u{202E}') && e.any_device() != Some("bad\u{202E}serial")));
    assert!(events.iter().any(|e| e.actor == "anonymous"));
}
