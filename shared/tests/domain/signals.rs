//! Signals out in the domain: which changes are events (compliant <-> non-compliant at check-in,
//! a lock, an unlock; never `unknown`), and their security event tokens, verified with a
//! standard JWT library (`jsonwebtoken`), not our code.

use endpoint_core::admin;
use endpoint_core::model::{CaepStatus, InitiatingEntity, SignalEvent};
use endpoint_core::ports::{ChallengeSigner, Clock, DeviceStore, SignalStore};
use endpoint_core::protocol::keys::KeySpec;
use endpoint_core::signals::{sign_set, DEVICE_COMPLIANCE_CHANGE};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::common::Fx;
use crate::compliance_rules::{check_in, required_stage_with_policy, MAC_BAD, MAC_OK};

/// Every settled event of the outbox, in order.
pub async fn outbox(fx: &Fx) -> Vec<SignalEvent> {
    let head = fx.store.settle_signals(fx.clock.now()).await.unwrap();
    fx.store.signal_events(0, head, 1000).await.unwrap()
}

/// An operator's lock and unlock of the device (non-compliant under its policy, two events in
/// the outbox already), with the status under its policies; an unlock of an unlocked device
/// tells nobody anything.
async fn lock_and_unlock_are_events(fx: &Fx) {
    // An operator's lock and unlock, with the status under its policies (a second apart: the
    // outbox orders events of one second by the millisecond, which this clock does not have).
    fx.clock.advance(1);
    admin::lock_device(
        &fx.store,
        &fx.clock,
        &fx.rng,
        "C02XK1JHJGH5",
        None,
        Some("stolen"),
    )
    .await
    .unwrap();
    fx.clock.advance(1);
    admin::unlock_device(&fx.store, &fx.clock, &fx.rng, "C02XK1JHJGH5")
        .await
        .unwrap();
    // Unlocking a device that is not locked tells nobody anything.
    admin::unlock_device(&fx.store, &fx.clock, &fx.rng, "C02XK1JHJGH5")
        .await
        .unwrap();
    let events = outbox(fx).await;
    assert_eq!(events.len(), 4, "{events:?}");
    let (lock, unlock) = (&events[2], &events[3]);
    assert_eq!(lock.initiating_entity, InitiatingEntity::Admin);
    assert_eq!(lock.current_status, CaepStatus::NotCompliant);
    assert!(lock.reason.contains("stolen"));
    assert_eq!(
        (unlock.previous_status, unlock.initiating_entity),
        (CaepStatus::NotCompliant, InitiatingEntity::Admin)
    );
}

#[tokio::test]
async fn a_change_between_compliant_and_non_compliant_is_one_event_and_nothing_else_is() {
    let fx = Fx::new();
    let (_, policy, key) = required_stage_with_policy(&fx).await;
    // unknown -> compliant: the first status is no change of a known one.
    check_in(&fx, &key, MAC_OK).await;
    assert!(outbox(&fx).await.is_empty());
    // compliant -> compliant: nothing.
    fx.clock.advance(60);
    check_in(&fx, &key, MAC_OK).await;
    assert!(outbox(&fx).await.is_empty());
    // compliant -> non-compliant: exactly one event, by the policy.
    fx.clock.advance(60);
    check_in(&fx, &key, MAC_BAD).await;
    let events = outbox(&fx).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(
        (e.previous_status, e.current_status, e.initiating_entity),
        (
            CaepStatus::Compliant,
            CaepStatus::NotCompliant,
            InitiatingEntity::Policy
        )
    );
    assert!(
        e.reason.contains(&policy) && e.reason.contains("failing"),
        "{}",
        e.reason
    );
    let device = fx
        .store
        .get_device("C02XK1JHJGH5", 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.device_id, device.id);
    // Facts nobody can judge (unknown) emit nothing: the last known status stands, so
    // non-compliant again is no change, and compliant afterwards is one from non-compliant.
    fx.clock.advance(60);
    check_in(&fx, &key, "{}").await;
    assert_eq!(outbox(&fx).await.len(), 1);
    fx.clock.advance(60);
    check_in(&fx, &key, MAC_BAD).await;
    assert_eq!(
        outbox(&fx).await.len(),
        1,
        "unknown in between changes nothing"
    );
    fx.clock.advance(60);
    check_in(&fx, &key, MAC_OK).await;
    let events = outbox(&fx).await;
    assert_eq!(events.len(), 2);
    assert_eq!(
        (events[1].previous_status, events[1].current_status),
        (CaepStatus::NotCompliant, CaepStatus::Compliant)
    );

    lock_and_unlock_are_events(&fx).await;
}

#[tokio::test]
async fn a_security_event_token_is_what_rfc_8417_and_caep_say() {
    let mut fx = Fx::new();
    fx.signer.generate("signals", KeySpec::EccNistP256).unwrap();
    let (_, _, key) = required_stage_with_policy(&fx).await;
    check_in(&fx, &key, MAC_OK).await;
    check_in(&fx, &key, MAC_BAD).await;
    let event = outbox(&fx).await.remove(0);
    let issuer = "https://signals.example";
    let audience = "https://receiver.example/ssf";
    let now = fx.clock.now();
    let set = sign_set(&fx.signer, "signals", &event, issuer, audience, now)
        .await
        .unwrap();
    let header = decode_header(&set).unwrap();
    assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
    assert_eq!(header.alg, Algorithm::ES256);
    let jwk = fx.signer.describe("signals").await.unwrap().jwk;
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(serde_json::to_value(&jwk).unwrap()).unwrap();
    let mut v = Validation::new(Algorithm::ES256);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    // A SET has no `exp` (RFC 8417): nothing to require.
    v.set_required_spec_claims(&["iss", "aud"]);
    v.validate_exp = false;
    let claims: Value = decode(&set, &DecodingKey::from_jwk(&jwk).unwrap(), &v)
        .expect("verifies")
        .claims;
    assert!(
        claims.get("sub").is_none() && claims.get("exp").is_none(),
        "{claims}"
    );
    assert_eq!(claims["jti"], event.id.as_str());
    assert_eq!(claims["iat"], now);
    assert!(claims["txn"].is_string());
    assert_eq!(
        claims["sub_id"],
        serde_json::json!({"format": "complex", "device": {"format": "opaque", "id": event.device_id}})
    );
    let events = claims["events"].as_object().unwrap();
    assert_eq!(events.len(), 1, "one event per SET");
    let change = &events[DEVICE_COMPLIANCE_CHANGE];
    assert_eq!(change["previous_status"], "compliant");
    assert_eq!(change["current_status"], "not-compliant");
    assert_eq!(change["initiating_entity"], "policy");
    assert!(change["reason_admin"]["en"].is_string());
    assert_eq!(change["event_timestamp"], event.time);
}

/// A receiver's endpoint that answers `503` until `healthy_from`, then `202`; it keeps what it
/// accepted by `jti` and the times of every attempt.
struct Endpoint {
    clock: std::sync::Arc<endpoint_core::adapters::memory::FixedClock>,
    healthy_from: i64,
    attempts: std::sync::Mutex<Vec<i64>>,
    accepted: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl endpoint_core::delivery::Pusher for Endpoint {
    async fn push(
        &self,
        url: &str,
        auth: Option<&str>,
        set: &str,
    ) -> Result<u16, endpoint_core::egress::PushFailure> {
        assert_eq!(
            (url, auth),
            ("https://receiver.example/events", Some("Bearer rcv"))
        );
        let now = self.clock.now();
        self.attempts.lock().unwrap().push(now);
        if now < self.healthy_from {
            return Ok(503);
        }
        let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(set)
            .map(|d| d.claims)
            .map_err(|_| endpoint_core::egress::PushFailure::Status(400))?;
        self.accepted
            .lock()
            .unwrap()
            .insert(claims["jti"].as_str().unwrap_or_default().to_string());
        Ok(202)
    }
}

#[tokio::test]
async fn push_retries_with_backoff_for_more_than_a_day_and_then_delivers_everything() {
    use endpoint_core::delivery::{deliver_push, Backoff, Run, MAX_BACKOFF};
    let (fx, stream) = push_world(Some("Bearer rcv"), &[MAC_OK, MAC_BAD, MAC_OK, MAC_BAD]).await;
    assert_eq!(outbox(&fx).await.len(), 3);
    // The receiver is down for 25 hours; the worker runs every minute.
    let start = fx.clock.now();
    let endpoint = Endpoint {
        clock: std::sync::Arc::new(endpoint_core::adapters::memory::FixedClock::new(start)),
        healthy_from: start + 25 * 3600,
        attempts: Default::default(),
        accepted: Default::default(),
    };
    let mut t = start;
    while t < start + 26 * 3600 {
        endpoint.clock.set(t);
        let run = Run {
            signer: &fx.signer,
            keys: ("signals", "https://t.example"),
            pusher: &endpoint,
            clock: &*endpoint.clock,
            schedule: Backoff::default(),
            rng: &fx.rng,
        };
        deliver_push(&fx.store, &run).await.unwrap();
        if t == start + 24 * 3600 {
            let failing = fx.store.get_stream(&stream.id).await.unwrap().unwrap();
            let reason = failing.status_reason.unwrap_or_default();
            assert!(
                reason.contains("failing since") && reason.contains("503"),
                "{reason}"
            );
        }
        t += 60;
    }
    let attempts = endpoint.attempts.lock().unwrap().clone();
    let gaps: Vec<i64> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g <= MAX_BACKOFF + 60),
        "never more than the cap apart: {gaps:?}"
    );
    assert!(
        gaps[0] <= 60 && gaps.iter().rev().skip(3).any(|g| *g >= MAX_BACKOFF / 2),
        "{gaps:?}"
    );
    assert!(
        attempts.iter().filter(|a| **a >= start + 24 * 3600).count() >= 1,
        "still retrying after a day"
    );
    assert!(
        attempts.len() < 80,
        "backed off: {} attempts in 25 hours",
        attempts.len()
    );
    // Everything arrived once it was up, in order, each jti once.
    let ids: std::collections::BTreeSet<String> =
        outbox(&fx).await.into_iter().map(|e| e.id).collect();
    assert_eq!(*endpoint.accepted.lock().unwrap(), ids);
    let healed = fx.store.get_stream(&stream.id).await.unwrap().unwrap();
    assert_eq!((healed.failures, healed.status_reason), (0, None));
}

/// A receiver that accepts everything, and a worker that is killed while it waits for the
/// second answer of its run (the run's future dropped at that await, as a killed process).
struct Hanging {
    calls: std::sync::atomic::AtomicUsize,
    hang_on: usize,
    accepted: std::sync::Mutex<Vec<String>>,
}

impl endpoint_core::delivery::Pusher for Hanging {
    async fn push(
        &self,
        _url: &str,
        _auth: Option<&str>,
        set: &str,
    ) -> Result<u16, endpoint_core::egress::PushFailure> {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let jti = jsonwebtoken::dangerous::insecure_decode::<Value>(set)
            .map(|d| d.claims["jti"].as_str().unwrap_or_default().to_string())
            .map_err(|_| endpoint_core::egress::PushFailure::Status(400))?;
        // The receiver got it; the worker dies before it hears the answer.
        self.accepted.lock().unwrap().push(jti);
        if n == self.hang_on {
            std::future::pending::<()>().await;
        }
        Ok(202)
    }
}

#[tokio::test]
async fn a_worker_killed_mid_run_loses_nothing_and_resends_at_most_what_was_in_flight() {
    use endpoint_core::delivery::{deliver_push, Backoff, Run};
    let (fx, _) = push_world(None, &[MAC_OK, MAC_BAD, MAC_OK, MAC_BAD, MAC_OK]).await;
    let ids: Vec<String> = outbox(&fx).await.into_iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 4);
    let pusher = Hanging {
        calls: Default::default(),
        hang_on: 2,
        accepted: Default::default(),
    };
    let run = Run {
        signer: &fx.signer,
        keys: ("signals", "https://t.example"),
        pusher: &pusher,
        clock: &fx.clock,
        schedule: Backoff::default(),
        rng: &fx.rng,
    };
    let killed = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        deliver_push(&fx.store, &run),
    )
    .await;
    assert!(killed.is_err(), "the run was killed while it waited");
    // The next run starts after the last recorded delivery: the one in flight comes again.
    fx.clock.advance(60);
    deliver_push(&fx.store, &run).await.unwrap();
    let got = pusher.accepted.lock().unwrap().clone();
    let unique: std::collections::BTreeSet<&String> = got.iter().collect();
    assert_eq!(
        unique.into_iter().cloned().collect::<Vec<_>>(),
        ids,
        "every event"
    );
    assert_eq!(
        got.len(),
        ids.len() + 1,
        "exactly the one in flight twice: {got:?}"
    );
}

/// A device under a policy, a receiver with a push stream of compliance changes (with
/// `authorization`), and the device's check-ins of `facts`, a second apart.
pub async fn push_world(
    authorization: Option<&str>,
    facts: &[&str],
) -> (Fx, endpoint_core::model::Stream) {
    use endpoint_core::ssf::{create_receiver, create_stream, StreamRequest};
    let mut fx = Fx::new();
    fx.signer.generate("signals", KeySpec::EccNistP256).unwrap();
    let (_, _, key) = required_stage_with_policy(&fx).await;
    let (receiver, _) = create_receiver(&fx.store, &fx.clock, &fx.rng, "r", None)
        .await
        .unwrap();
    let request = StreamRequest {
        method: Some("urn:ietf:rfc:8935".into()),
        endpoint_url: Some("https://receiver.example/events".into()),
        authorization_header: authorization.map(str::to_string),
        events_requested: Some(vec![endpoint_core::signals::DEVICE_COMPLIANCE_CHANGE.into()]),
        description: None,
    };
    // receiver.example is a public address (documentation addresses are refused).
    let egress = endpoint_core::egress::Egress {
        policy: endpoint_core::egress::EgressPolicy::PublicOnly,
        resolver: endpoint_core::adapters::memory::StaticResolver::new()
            .with("receiver.example", &["192.0.43.10".parse().unwrap()]),
    };
    let stream = create_stream(&fx.store, &fx.clock, &fx.rng, &egress, &receiver, &request)
        .await
        .unwrap();
    for f in facts {
        fx.clock.advance(1);
        check_in(&fx, &key, f).await;
    }
    (fx, stream)
}
