//! Rules of the agent-facing side over the in-memory store (fast; the same rules run over
//! HTTP against moto in the end-to-end suite): key rotation that real agents survive, the
//! ES512 refusal, device identifiers on every path, re-enrollment keeping the device, and the
//! agent's `Authorization` parsing.

use crate::common::{passed, Fx, KEY, T0};
use endpoint_core::adapters::local_signer::LocalSigner;
use endpoint_core::admin::{self, DEFAULT_ROTATION_GRACE, KEY_OVERLAP};
use endpoint_core::agent;
use endpoint_core::model::{NextKey, ReenrollPolicy, RetiredKey, StageMode};
use endpoint_core::ports::{ChallengeSigner, DeviceStore};
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
    let c2 = admin::rotate(&fx.store, &fx.clock, &c.id, DEFAULT_ROTATION_GRACE)
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
    let refused = admin::rotate(&fx.store, &fx.clock, &c.id, DEFAULT_ROTATION_GRACE).await;
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
    let c = admin::rotate(&fx.store, &fx.clock, &c.id, 1).await.unwrap();
    assert_eq!(c.retired_keys[0].until, T0 + KEY_OVERLAP);
}

#[tokio::test]
async fn p521_keys_are_refused_for_challenges_with_the_reason() {
    let mut signer = LocalSigner::new();
    signer.generate("p521", KeySpec::EccNistP521).unwrap();
    signer.generate("p384", KeySpec::EccNistP384).unwrap();
    signer.generate("rsa", KeySpec::Rsa2048).unwrap();
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

/// An enrollment token for `connector` with `max_uses` / `serial`, valid for a day.
async fn token_for(
    fx: &Fx,
    connector: &str,
    max_uses: Option<u32>,
    serial: Option<&str>,
) -> String {
    let (_, key) = admin::create_enrollment_token(
        &fx.store,
        &fx.clock,
        &fx.rng,
        admin::NewEnrollmentToken {
            connector: connector.into(),
            name: "t".into(),
            lifetime: Some(86_400),
            max_uses,
            serial: serial.map(str::to_string),
        },
    )
    .await
    .unwrap();
    key.expose().to_string()
}

/// One enrollment through the agent API, a second after the previous event (audit records of
/// one second have no order among themselves).
async fn agent_enroll(fx: &Fx, key: &str, serial: &str) -> Result<agent::Enrolled, CoreError> {
    fx.clock.advance(1);
    let request = agent::EnrollRequest {
        device_serial: serial.into(),
        device_name: format!("host-{serial}"),
    };
    agent::enroll(
        &fx.store,
        &fx.env(),
        Some(&format!("Bearer {key}")),
        Ok(request),
    )
    .await
}

async fn audit_codes(fx: &Fx) -> Vec<(String, Option<String>)> {
    use endpoint_core::ports::AuditLog;
    let q = endpoint_core::audit::AuditQuery {
        since: 0,
        limit: 1000,
        ..Default::default()
    };
    let mut events = fx.store.audit_events(&q, fx.clock.now()).await.unwrap();
    events.reverse();
    events.into_iter().map(|e| (e.code, e.reason)).collect()
}

use endpoint_core::ports::Clock;

/// Whether a device's authorization header authenticates.
async fn works(fx: &Fx, auth: &str) -> bool {
    agent::authenticate_device(&fx.store, &fx.clock, Some(auth))
        .await
        .is_ok()
}

/// The operator's approval is a single-use token bound to the serial: the reinstalled device
/// enrolls with it once; the general token `key` still cannot; only for its serial, and only
/// until it expires.
async fn approvals_are_single_use_and_bound(fx: &Fx, connector: &str, key: &str) {
    let (approval, approval_key) =
        admin::allow_reenroll(&fx.store, &fx.clock, &fx.rng, connector, "VICTIM-1", 3600)
            .await
            .unwrap();
    assert_eq!(
        (
            approval.serial.as_deref(),
            approval.max_uses,
            approval.expires_at
        ),
        (Some("VICTIM-1"), Some(1), Some(fx.clock.now() + 3600))
    );
    assert!(agent_enroll(fx, key, "VICTIM-1").await.is_err());
    let again = agent_enroll(fx, approval_key.expose(), "VICTIM-1")
        .await
        .unwrap();
    assert!(works(fx, &format!("Bearer+agent {}", again.token.expose())).await);
    assert!(
        agent_enroll(fx, approval_key.expose(), "VICTIM-1")
            .await
            .is_err(),
        "single use"
    );
    let (_, other) =
        admin::allow_reenroll(&fx.store, &fx.clock, &fx.rng, connector, "VICTIM-1", 60)
            .await
            .unwrap();
    assert!(agent_enroll(fx, other.expose(), "SOMEONE-ELSE")
        .await
        .is_err());
    fx.clock.advance(61);
    assert!(agent_enroll(fx, other.expose(), "VICTIM-1").await.is_err());
    assert!(
        admin::allow_reenroll(&fx.store, &fx.clock, &fx.rng, connector, "VICTIM-1", 0)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn an_enrolled_serial_enrolls_again_only_with_a_token_bound_to_it_unless_all_is_open() {
    let fx = Fx::new();
    let (c, _) = fx.setup(StageMode::Required, Some(KEY), true).await;
    assert_eq!(c.reenroll, ReenrollPolicy::Approve, "the default");
    let key = token_for(&fx, &c.id, None, None).await;
    let victim = agent_enroll(&fx, &key, "VICTIM-1").await.unwrap();

    // The takeover: another holder of the token enrolls the victim's serial. Refused with a
    // sentence that does not say the serial exists, and the victim's token still works.
    let e = agent_enroll(&fx, &key, "VICTIM-1").await.unwrap_err();
    assert!(
        matches!(&e, CoreError::Forbidden(m) if m.contains("allow-reenroll") && !m.contains("already")),
        "{e:?}"
    );
    let auth = format!("Bearer+agent {}", victim.token.expose());
    assert!(works(&fx, &auth).await);
    // After its tokens were revoked (a stolen laptop) a general token still cannot take it.
    fx.store.revoke_tokens("VICTIM-1", &c.id).await.unwrap();
    assert!(agent_enroll(&fx, &key, "VICTIM-1").await.is_err());

    approvals_are_single_use_and_bound(&fx, &c.id, &key).await;

    // An open connector is no side door to a serial enrolled on an approve one.
    let (open, _) = fx.setup(StageMode::Required, Some(KEY), true).await;
    admin::set_reenroll(&fx.store, &open.id, ReenrollPolicy::Open)
        .await
        .unwrap();
    let open_key = token_for(&fx, &open.id, None, None).await;
    assert!(agent_enroll(&fx, &open_key, "VICTIM-1").await.is_err());
    // Everything open: the reference's behaviour.
    admin::set_reenroll(&fx.store, &c.id, ReenrollPolicy::Open)
        .await
        .unwrap();
    assert!(agent_enroll(&fx, &open_key, "VICTIM-1").await.is_ok());
    assert!(agent_enroll(&fx, &key, "VICTIM-1").await.is_ok());

    let codes: Vec<String> = audit_codes(&fx).await.into_iter().map(|(c, _)| c).collect();
    assert_eq!(
        codes,
        [
            "ES001I", "ES002W", "ES002W", "ES002W", "ES001I", "ES002W", "ES002W", "ES002W",
            "ES002W", "ES001I", "ES001I"
        ],
        "accepted; refused (takeover, after revocation, general token after the approval); \
         accepted with the approval; refused (used, other serial, expired, side door); \
         accepted twice (all open)"
    );
}

/// Ten refusals of one token within a minute: the rest of the minute is 429, also for an
/// enrollment that would succeed, and is not recorded; the next minute the token works again.
async fn refusals_per_token(fx: &Fx, key: &str, q: &endpoint_core::audit::AuditQuery) {
    use endpoint_core::ports::AuditLog;
    fx.clock
        .set(fx.clock.now() - fx.clock.now().rem_euclid(60) + 60);
    let start = fx.clock.now();
    let mut outcomes = Vec::new();
    for i in 0..12 {
        let r = endpoint_core::agent::enroll(
            &fx.store,
            &fx.env(),
            Some(&format!("Bearer {key}")),
            Ok(agent::EnrollRequest {
                device_serial: if i < 11 {
                    "VICTIM-2".into()
                } else {
                    format!("NEW-{i}")
                },
                device_name: "x".into(),
            }),
        )
        .await;
        outcomes.push(match r {
            Ok(_) => 200,
            Err(CoreError::Forbidden(_)) => 403,
            Err(CoreError::RateLimited(s)) => {
                assert!((1..=60).contains(&s));
                429
            }
            Err(e) => panic!("{e:?}"),
        });
    }
    assert_eq!(outcomes, [[403; 10].as_slice(), &[429, 429]].concat());
    let recorded = fx.store.audit_events(q, fx.clock.now()).await.unwrap();
    assert_eq!(recorded.iter().filter(|e| e.time >= start).count(), 10);
    // The next minute the token works again.
    fx.clock.advance(60);
    assert!(agent_enroll(fx, key, "NEW-LATER").await.is_ok());
}

#[tokio::test]
async fn refused_enrollments_are_anonymous_unverified_and_limited_per_token() {
    let fx = Fx::new();
    let (c, _) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let key = token_for(&fx, &c.id, None, None).await;
    agent_enroll(&fx, &key, "VICTIM-2").await.unwrap();
    // An unknown token, claiming the victim's serial: anonymous, the serial unverified.
    let e = agent_enroll(&fx, "not-a-token", "VICTIM-2")
        .await
        .unwrap_err();
    assert!(matches!(e, CoreError::Forbidden(_)), "{e:?}");
    let q = endpoint_core::audit::AuditQuery {
        since: 0,
        limit: 10,
        device: Some("VICTIM-2".into()),
        ..Default::default()
    };
    use endpoint_core::ports::AuditLog;
    let events = fx.store.audit_events(&q, fx.clock.now()).await.unwrap();
    let refusal = &events[0];
    assert_eq!(
        (refusal.actor.as_str(), refusal.device.as_deref()),
        ("anonymous", None)
    );
    assert_eq!(refusal.unverified_device.as_deref(), Some("VICTIM-2"));
    assert_eq!(
        events.len(),
        2,
        "the device's own key lists both: {events:?}"
    );
    // A valid token's holder is named by the token, the serial still unverified.
    agent_enroll(&fx, &key, "VICTIM-2").await.unwrap_err();
    let events = fx.store.audit_events(&q, fx.clock.now()).await.unwrap();
    assert!(
        events[0].actor.starts_with("enrollment_token:"),
        "{:?}",
        events[0]
    );
    assert_eq!(events[0].unverified_device.as_deref(), Some("VICTIM-2"));
    refusals_per_token(&fx, &key, &q).await;
}

#[tokio::test]
async fn refused_enrollments_are_limited_per_source_address() {
    let fx = Fx::new();
    fx.setup(StageMode::Required, Some(KEY), true).await;
    // Sixty refusals from one source address, each with another made-up token: the 61st
    // attempt of that address is 429; another address is not affected.
    let from = |ip: &str| endpoint_core::audit::Caller {
        source_ip: Some(ip.into()),
        ..Default::default()
    };
    let (flooder, bystander) = (from("198.51.100.7"), from("198.51.100.8"));
    let attempt = |caller, token: String| {
        let fx = &fx;
        async move {
            let env = endpoint_core::settings::Env { caller, ..fx.env() };
            let request = agent::EnrollRequest {
                device_serial: "VICTIM-2".into(),
                device_name: "x".into(),
            };
            endpoint_core::agent::enroll(
                &fx.store,
                &env,
                Some(&format!("Bearer {token}")),
                Ok(request),
            )
            .await
        }
    };
    for i in 0..60 {
        let r = attempt(&flooder, format!("made-up-{i}")).await;
        assert!(
            matches!(r, Err(CoreError::Forbidden(_))),
            "{i}: {:?}",
            r.err()
        );
    }
    let limited = attempt(&flooder, "made-up-60".into()).await;
    assert!(
        matches!(limited, Err(CoreError::RateLimited(_))),
        "{:?}",
        limited.err()
    );
    let other = attempt(&bystander, "made-up-61".into()).await;
    assert!(
        matches!(other, Err(CoreError::Forbidden(_))),
        "{:?}",
        other.err()
    );
}

fn forbidden(r: Result<agent::Enrolled, CoreError>, why: &str) {
    assert!(
        matches!(&r, Err(CoreError::Forbidden(m)) if m.contains(why)),
        "{why}: {:?}",
        r.err()
    )
}

/// A revoked enrollment token refuses.
async fn revoked_token_refuses(fx: &Fx, connector: &str) {
    let revoked = token_for(fx, connector, None, None).await;
    let tokens = admin::list_enrollment_tokens(&fx.store, Some(connector))
        .await
        .unwrap();
    let id = tokens
        .iter()
        .find(|t| t.key_sha256 == endpoint_core::secret::sha256_hex(revoked.as_bytes()))
        .map(|t| t.id.clone())
        .unwrap();
    let t = admin::revoke_enrollment_token(&fx.store, &fx.clock, &id)
        .await
        .unwrap();
    assert_eq!(t.revoked_at, Some(fx.clock.now()));
    forbidden(agent_enroll(fx, &revoked, "C-1").await, "revoked");
}

/// Expired: the default lifetime is 7 days.
async fn expired_token_refuses(fx: &Fx, connector: &str) {
    let (t, default_key) = admin::create_enrollment_token(
        &fx.store,
        &fx.clock,
        &fx.rng,
        admin::NewEnrollmentToken {
            connector: connector.to_string(),
            name: "default".into(),
            lifetime: Some(admin::DEFAULT_ENROLLMENT_TOKEN_LIFETIME),
            max_uses: None,
            serial: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(t.expires_at, Some(fx.clock.now() + 7 * 86_400));
    fx.clock.advance(7 * 86_400);
    forbidden(
        agent_enroll(fx, default_key.expose(), "D-1").await,
        "expired",
    );
}

#[tokio::test]
async fn enrollment_tokens_expire_count_their_uses_bind_to_a_serial_and_can_be_revoked() {
    let fx = Fx::new();
    let (c, _) = fx.setup(StageMode::Required, Some(KEY), true).await;

    // Max uses: two serials, then used up.
    let two = token_for(&fx, &c.id, Some(2), None).await;
    agent_enroll(&fx, &two, "A-1").await.unwrap();
    fx.clock.advance(5);
    agent_enroll(&fx, &two, "A-2").await.unwrap();
    forbidden(agent_enroll(&fx, &two, "A-3").await, "used as many times");
    assert_eq!(
        fx.store.get_device("A-3", fx.clock.now()).await.unwrap(),
        None
    );

    // Bound to one serial.
    let bound = token_for(&fx, &c.id, None, Some("B-1")).await;
    forbidden(agent_enroll(&fx, &bound, "B-2").await, "another device");
    agent_enroll(&fx, &bound, "B-1").await.unwrap();

    revoked_token_refuses(&fx, &c.id).await;
    expired_token_refuses(&fx, &c.id).await;

    // What an operator sees: use count, last use, serials, never the key.
    let tokens = admin::list_enrollment_tokens(&fx.store, Some(&c.id))
        .await
        .unwrap();
    let used = tokens.iter().find(|t| t.max_uses == Some(2)).unwrap();
    assert_eq!((used.uses, used.last_used_at), (2, Some(T0 + 7)));
    let shown = admin::show_enrollment_token(&fx.store, &used.id)
        .await
        .unwrap();
    let serials: Vec<&str> = shown.enrolled.iter().map(|u| u.serial.as_str()).collect();
    assert_eq!(serials, ["A-1", "A-2"]);

    // Every refusal is audited with its reason class.
    let refusals: Vec<String> = audit_codes(&fx)
        .await
        .into_iter()
        .filter(|(c, _)| c == "ES002W")
        .filter_map(|(_, r)| r)
        .collect();
    assert_eq!(
        refusals,
        [
            "token_used_up",
            "token_bound_to_other_serial",
            "token_revoked",
            "token_expired"
        ]
    );
}

#[tokio::test]
async fn enrollment_token_settings_are_bounded() {
    let fx = Fx::new();
    let (c, _) = fx.setup(StageMode::Required, Some(KEY), true).await;
    // Bad settings are refused.
    for (max_uses, lifetime) in [(Some(0), Some(60)), (None, Some(0))] {
        let r = admin::create_enrollment_token(
            &fx.store,
            &fx.clock,
            &fx.rng,
            admin::NewEnrollmentToken {
                connector: c.id.clone(),
                name: "bad".into(),
                lifetime,
                max_uses,
                serial: None,
            },
        )
        .await;
        assert!(matches!(r, Err(CoreError::BadRequest(_))), "{r:?}");
    }
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
