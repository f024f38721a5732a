//! What one device can make the stack spend (the contract's "Capacity and abuse limits"):
//! `check_in/` at most 20 a minute, a refusal before anything is parsed, evaluated or stored;
//! refusals of `check_in/` and `auth_ia/` write at most one audit record per device and minute.

use crate::common::{Fx, KEY, T0};
use endpoint_core::admin;
use endpoint_core::agent;
use endpoint_core::audit::AuditQuery;
use endpoint_core::model::StageMode;
use endpoint_core::ports::{AuditLog, Clock, DeviceStore};
use endpoint_core::CoreError;

/// The codes of the audit records of `serial`, oldest first.
async fn codes(fx: &Fx, serial: &str) -> Vec<String> {
    let q = AuditQuery {
        device: Some(serial.into()),
        limit: 1000,
        ..Default::default()
    };
    let mut events = fx.store.audit_events(&q, fx.clock.now()).await.unwrap();
    events.reverse();
    events.into_iter().map(|e| e.code).collect()
}

fn count(codes: &[String], code: &str) -> usize {
    codes.iter().filter(|c| *c == code).count()
}

#[tokio::test]
async fn check_ins_are_limited_per_device_and_minute_and_a_refusal_reads_nothing() {
    let fx = Fx::new();
    let (c, _) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let key = fx.enroll(&c.id, "CI-1").await;
    let auth = format!("Bearer+agent {}", key.expose());
    let check_in = |body: &'static str| {
        let (fx, auth) = (&fx, &auth);
        async move { agent::check_in(&fx.store, &fx.env(), Some(auth), body.as_bytes()).await }
    };
    fx.clock.set(T0 - T0 % 60 + 15);
    let limit = fx.settings.check_ins_per_minute;
    assert_eq!(limit, 20, "the contract's default");
    for _ in 0..limit {
        check_in(r#"{"os": {"family": "linux"}}"#).await.unwrap();
    }
    // Refused before the body is even parsed: not JSON, yet 429, not 400; and nothing stored.
    assert_eq!(
        check_in("not json").await,
        Err(CoreError::RateLimited(45)),
        "until the minute ends"
    );
    assert_eq!(
        check_in(r#"{"os": {"family": "windows"}}"#).await,
        Err(CoreError::RateLimited(45))
    );
    let stored = fx.store.latest_facts("CI-1", fx.clock.now()).await.unwrap();
    let facts = endpoint_core::facts::load(&stored.unwrap().facts_deflate).unwrap();
    assert_eq!(
        facts.get("os").unwrap()["family"],
        "linux",
        "the refused facts were not stored"
    );

    // Another device is not affected; the next minute is a new window.
    let other = fx.enroll(&c.id, "CI-2").await;
    let other_auth = format!("Bearer+agent {}", other.expose());
    assert!(
        agent::check_in(&fx.store, &fx.env(), Some(&other_auth), b"{}")
            .await
            .is_ok()
    );
    fx.clock.advance(45);
    assert!(check_in("{}").await.is_ok());
}

#[tokio::test]
async fn check_in_refusals_write_at_most_one_audit_record_a_minute() {
    let fx = Fx::new();
    let (c, _) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let key = fx.enroll(&c.id, "CI-AUDIT").await;
    let auth = format!("Bearer+agent {}", key.expose());
    fx.clock.set(T0 - T0 % 60);
    for minute in 0..3 {
        for i in 0..100 {
            let r = agent::check_in(&fx.store, &fx.env(), Some(&auth), b"{}").await;
            assert_eq!(r.is_ok(), i < 20, "minute {minute}, check-in {i}: {r:?}");
        }
        fx.clock.advance(60);
    }
    let codes = codes(&fx, "CI-AUDIT").await;
    // Each accepted check-in is recorded (20 a minute), each minute's refusals once.
    assert_eq!(count(&codes, "ES004I"), 60, "{codes:?}");
    assert_eq!(count(&codes, "ES011W"), 3, "{codes:?}");
}

#[tokio::test]
async fn auth_ia_refusals_write_at_most_one_audit_record_a_minute() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    admin::set_interactive_stage(&fx.store, &c.id, &s.id)
        .await
        .unwrap();
    let key = fx.enroll(&c.id, "IA-AUDIT").await;
    let auth = format!("Bearer+agent {}", key.expose());
    fx.clock.set(T0 - T0 % 60);
    for minute in 0..2 {
        for i in 0..50 {
            let r = agent::auth_ia(&fx.store, &fx.env(), Some(&auth)).await;
            assert_eq!(r.is_ok(), i < 10, "minute {minute}, call {i}: {r:?}");
        }
        fx.clock.advance(60);
    }
    assert_eq!(count(&codes(&fx, "IA-AUDIT").await, "ES104W"), 2);

    // A locked device's refusals too: one record a minute, however many calls.
    admin::lock_device(&fx.store, &fx.clock, &fx.rng, "IA-AUDIT", None, None)
        .await
        .unwrap();
    for _ in 0..30 {
        assert!(matches!(
            agent::auth_ia(&fx.store, &fx.env(), Some(&auth)).await,
            Err(CoreError::Forbidden(_))
        ));
    }
    assert_eq!(count(&codes(&fx, "IA-AUDIT").await, "ES104W"), 3);
}
