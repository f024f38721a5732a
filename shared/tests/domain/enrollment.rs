//! Enrollment: an enrolled serial enrolls again only with an approval, refusals are anonymous
//! and limited per token and source address, enrollment tokens expire, count their uses, bind
//! to a serial and can be revoked.

use crate::common::{Fx, KEY, T0};
use endpoint_core::admin;
use endpoint_core::agent;
use endpoint_core::model::{ReenrollPolicy, StageMode};
use endpoint_core::ports::{Clock, DeviceStore};
use endpoint_core::CoreError;

/// An enrollment token for `connector` with `max_uses` / `serial`, valid for a day.
pub(crate) async fn token_for(
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
            owner: None,
        },
    )
    .await
    .unwrap();
    key.expose().to_string()
}

/// One enrollment through the agent API, a second after the previous event (audit records of
/// one second have no order among themselves).
pub(crate) async fn agent_enroll(
    fx: &Fx,
    key: &str,
    serial: &str,
) -> Result<agent::Enrolled, CoreError> {
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

pub(crate) async fn audit_codes(fx: &Fx) -> Vec<(String, Option<String>)> {
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
            owner: None,
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
                owner: None,
            },
        )
        .await;
        assert!(matches!(r, Err(CoreError::BadRequest(_))), "{r:?}");
    }
}
