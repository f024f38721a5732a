//! The transmitter's integrity and availability in the domain (memory store, injectable clock):
//! no event lost whatever the writers' clocks and commit order, a new stream gets only later
//! events, each SET signed once, verifications bounded, slow receivers backed off without
//! stalling others, and delivery never reverting a receiver's change.

use std::sync::atomic::{AtomicUsize, Ordering};

use endpoint_core::adapters::local_signer::LocalSigner;
use endpoint_core::adapters::memory::{FixedClock, StaticResolver};
use endpoint_core::admin;
use endpoint_core::egress::{Egress, EgressPolicy};
use endpoint_core::error::{CoreError, SignerError};
use endpoint_core::model::{DeviceLock, Receiver, Stream};
use endpoint_core::ports::{
    ChallengeSigner, Clock, DeviceStore, JoseSignature, KeyDescription, SignalStore,
};
use endpoint_core::protocol::keys::KeySpec;
use endpoint_core::secret::Secret;
use endpoint_core::signals::{lock_change, DEVICE_COMPLIANCE_CHANGE};
use endpoint_core::ssf::{self, PollRequest, StreamRequest};
use serde_json::Value;

use crate::common::Fx;
use crate::compliance_rules::{check_in, required_stage_with_policy, MAC_BAD, MAC_OK};

const SERIAL: &str = "C02XK1JHJGH5";
pub(crate) const ISSUER: &str = "https://t.example";

/// Deployed egress (public addresses only) whose resolver answers a public address for the
/// receivers' names these suites use.
pub(crate) fn egress() -> Egress<StaticResolver> {
    let public: [std::net::IpAddr; 1] = ["192.0.43.10".parse().expect("an IPv4 address")];
    let names = [
        "fast", "slowish", "moved", "old", "gone", "slow0", "slow1", "slow2", "slow3",
    ];
    let resolver = names.iter().fold(StaticResolver::new(), |r, n| {
        r.with(&format!("{n}.example"), &public)
    });
    Egress {
        policy: EgressPolicy::PublicOnly,
        resolver,
    }
}

/// Counts the signatures it makes.
struct Counting<'a> {
    inner: &'a LocalSigner,
    signed: AtomicUsize,
}

impl ChallengeSigner for Counting<'_> {
    async fn describe(&self, key: &str) -> Result<KeyDescription, SignerError> {
        self.inner.describe(key).await
    }
    async fn sign(&self, key: &str, message: &[u8]) -> Result<JoseSignature, SignerError> {
        self.signed.fetch_add(1, Ordering::SeqCst);
        self.inner.sign(key, message).await
    }
}

fn counting(fx: &Fx) -> Counting<'_> {
    Counting {
        inner: &fx.signer,
        signed: AtomicUsize::new(0),
    }
}

pub(crate) fn claims(set: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(set)
        .unwrap()
        .claims
}

/// A device under a policy (its key), a receiver, and its poll stream of compliance changes.
pub(crate) async fn poll_world() -> (Fx, Secret, Receiver, Stream) {
    let mut fx = Fx::new();
    fx.signer.generate("signals", KeySpec::EccNistP256).unwrap();
    let (_, _, key) = required_stage_with_policy(&fx).await;
    let (receiver, _) = ssf::create_receiver(&fx.store, &fx.clock, &fx.rng, "r", None)
        .await
        .unwrap();
    let stream = poll_stream(&fx, &receiver).await;
    (fx, key, receiver, stream)
}

async fn poll_stream(fx: &Fx, receiver: &Receiver) -> Stream {
    let request = StreamRequest {
        method: Some("urn:ietf:rfc:8936".into()),
        events_requested: Some(vec![DEVICE_COMPLIANCE_CHANGE.into()]),
        ..StreamRequest::default()
    };
    ssf::create_stream(&fx.store, &fx.clock, &fx.rng, &egress(), receiver, &request)
        .await
        .unwrap()
}

/// One poll acknowledging `ack`: the SETs by `jti`.
async fn poll(
    fx: &Fx,
    signer: &impl ChallengeSigner,
    receiver: &Receiver,
    stream: &Stream,
    ack: &[String],
) -> Vec<(String, String)> {
    let request = PollRequest {
        ack: ack.to_vec(),
        max_events: None,
    };
    ssf::poll(
        &fx.store,
        signer,
        ("signals", ISSUER),
        fx.clock.now(),
        receiver,
        &stream.id,
        &request,
    )
    .await
    .unwrap()
    .sets
}

/// Polls and acknowledges everything answered: the `jti`s.
async fn drain(fx: &Fx, receiver: &Receiver, stream: &Stream) -> Vec<String> {
    let got: Vec<String> = poll(fx, &fx.signer, receiver, stream, &[])
        .await
        .into_iter()
        .map(|(jti, _)| jti)
        .collect();
    assert!(poll(fx, &fx.signer, receiver, stream, &got)
        .await
        .is_empty());
    got
}

#[tokio::test]
async fn a_lock_by_an_operator_whose_clock_is_ten_minutes_slow_reaches_a_stream_already_past_it() {
    let (fx, key, receiver, stream) = poll_world().await;
    check_in(&fx, &key, MAC_OK).await;
    fx.clock.advance(60);
    check_in(&fx, &key, MAC_BAD).await;
    let delivered = drain(&fx, &receiver, &stream).await;
    assert_eq!(delivered.len(), 1, "the compliance change");
    // The operator's workstation is ten minutes slow: its lock is stamped before the change
    // the receiver already acknowledged.
    fx.clock.advance(5);
    let slow = FixedClock::new(fx.clock.now() - 600);
    admin::lock_device(&fx.store, &slow, &fx.rng, SERIAL, None, Some("stolen"))
        .await
        .unwrap();
    let sets = poll(&fx, &fx.signer, &receiver, &stream, &[]).await;
    assert_eq!(sets.len(), 1, "the lock is delivered: {sets:?}");
    let (jti, set) = &sets[0];
    assert!(jti < &delivered[0], "its id is the slow clock's: {jti}");
    let change = &claims(set)["events"][DEVICE_COMPLIANCE_CHANGE];
    assert_eq!(
        (&change["current_status"], &change["initiating_entity"]),
        (&Value::from("not-compliant"), &Value::from("admin"))
    );
}

#[tokio::test]
async fn two_writers_committing_out_of_order_are_both_delivered() {
    let (fx, key, receiver, stream) = poll_world().await;
    check_in(&fx, &key, MAC_BAD).await;
    let device = fx.store.get_device(SERIAL, 0).await.unwrap().unwrap();
    // Writer A stamps its event first; writer B stamps later but commits first.
    let first = lock_change(&fx.rng, &fx.clock, &device, &[], true, Some("A"));
    fx.clock.advance(2);
    let second = lock_change(&fx.rng, &fx.clock, &device, &[], true, Some("B"));
    assert!(first.id < second.id);
    let lock = DeviceLock {
        since: fx.clock.now(),
        until: None,
        reason: Some("B".into()),
    };
    assert!(fx
        .store
        .set_device_lock(SERIAL, Some(&lock), Some(&second))
        .await
        .unwrap());
    assert_eq!(drain(&fx, &receiver, &stream).await, [second.id]);
    // A commits now, after B was delivered and acknowledged.
    fx.store
        .put_evaluations(SERIAL, &[], &[], std::slice::from_ref(&first))
        .await
        .unwrap();
    assert_eq!(drain(&fx, &receiver, &stream).await, [first.id]);
}

#[tokio::test]
async fn a_new_stream_receives_the_events_created_after_it_and_no_older_one() {
    let (fx, key, receiver, _) = poll_world().await;
    check_in(&fx, &key, MAC_OK).await;
    fx.clock.advance(60);
    check_in(&fx, &key, MAC_BAD).await;
    fx.clock.advance(60);
    let late = poll_stream(&fx, &receiver).await;
    assert!(poll(&fx, &fx.signer, &receiver, &late, &[])
        .await
        .is_empty());
    fx.clock.advance(60);
    check_in(&fx, &key, MAC_OK).await;
    let got = poll(&fx, &fx.signer, &receiver, &late, &[]).await;
    assert_eq!(got.len(), 1);
    let change = &claims(&got[0].1)["events"][DEVICE_COMPLIANCE_CHANGE];
    assert_eq!(change["current_status"], "compliant");
}

#[tokio::test]
async fn a_re_poll_carries_the_same_strings_and_costs_no_signature() {
    let (fx, key, receiver, stream) = poll_world().await;
    for (i, facts) in [MAC_OK, MAC_BAD, MAC_OK, MAC_BAD].iter().enumerate() {
        fx.clock.advance(60 + i as i64);
        check_in(&fx, &key, facts).await;
    }
    let signer = counting(&fx);
    let first = poll(&fx, &signer, &receiver, &stream, &[]).await;
    assert_eq!(first.len(), 3);
    assert_eq!(signer.signed.load(Ordering::SeqCst), 3, "one per event");
    for _ in 0..20 {
        fx.clock.advance(1);
        assert_eq!(poll(&fx, &signer, &receiver, &stream, &[]).await, first);
    }
    assert_eq!(
        signer.signed.load(Ordering::SeqCst),
        3,
        "re-polls sign nothing"
    );
    // A second stream of the same receiver carries the same strings too.
    let request = StreamRequest {
        method: Some("urn:ietf:rfc:8936".into()),
        events_requested: Some(vec![DEVICE_COMPLIANCE_CHANGE.into()]),
        ..StreamRequest::default()
    };
    let mut other = ssf::create_stream(
        &fx.store,
        &fx.clock,
        &fx.rng,
        &egress(),
        &receiver,
        &request,
    )
    .await
    .unwrap();
    other.position = 0;
    other.version = fx
        .store
        .get_stream(&other.id)
        .await
        .unwrap()
        .unwrap()
        .version;
    assert!(fx.store.save_stream(&other).await.unwrap());
    assert_eq!(poll(&fx, &signer, &receiver, &other, &[]).await, first);
    assert_eq!(signer.signed.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn at_most_six_verifications_a_minute_per_stream_and_a_refused_one_signs_nothing() {
    let (fx, _, receiver, stream) = poll_world().await;
    let other = poll_stream(&fx, &receiver).await;
    let signer = counting(&fx);
    let verify = |id: String| {
        let signer = &signer;
        let (fx, receiver) = (&fx, &receiver);
        async move {
            ssf::verify(
                &fx.store,
                signer,
                ("signals", ISSUER),
                &fx.clock,
                &fx.rng,
                receiver,
                &id,
                Some("s".into()),
            )
            .await
        }
    };
    fx.clock
        .set(fx.clock.now() - fx.clock.now().rem_euclid(60) + 10);
    for _ in 0..ssf::VERIFICATIONS_PER_MINUTE {
        verify(stream.id.clone()).await.unwrap();
    }
    assert_eq!(signer.signed.load(Ordering::SeqCst), 6);
    match verify(stream.id.clone()).await {
        Err(CoreError::RateLimited(seconds)) => assert_eq!(seconds, 50),
        other => panic!("the seventh is refused: {other:?}"),
    }
    assert_eq!(signer.signed.load(Ordering::SeqCst), 6, "no signature");
    // Another stream has its own limit; the next minute this one has its own again.
    verify(other.id.clone()).await.unwrap();
    fx.clock.advance(50);
    verify(stream.id.clone()).await.unwrap();
    // The verification SET is delivered as it was signed, and a re-poll repeats it unsigned.
    let before = signer.signed.load(Ordering::SeqCst);
    let a = poll(&fx, &signer, &receiver, &stream, &[]).await;
    let b = poll(&fx, &signer, &receiver, &stream, &[]).await;
    assert_eq!((a.len(), &a), (1, &b));
    assert_eq!(signer.signed.load(Ordering::SeqCst), before);
}

/// Streams created and deleted to escape the per-stream limit buy no more signatures: a
/// receiver's verifications are bounded a minute over all its streams.
#[tokio::test]
async fn new_streams_do_not_escape_the_receivers_verification_limit() {
    let (fx, _, receiver, stream) = poll_world().await;
    let signer = counting(&fx);
    fx.clock
        .set(fx.clock.now() - fx.clock.now().rem_euclid(60) + 10);
    ssf::delete_stream(&fx.store, &receiver, &stream.id)
        .await
        .unwrap();
    let mut refused = 0;
    for _ in 0..20 {
        let s = poll_stream(&fx, &receiver).await;
        for _ in 0..ssf::VERIFICATIONS_PER_MINUTE {
            match ssf::verify(
                &fx.store,
                &signer,
                ("signals", ISSUER),
                &fx.clock,
                &fx.rng,
                &receiver,
                &s.id,
                None,
            )
            .await
            {
                Ok(()) => {}
                Err(CoreError::RateLimited(_)) => refused += 1,
                Err(e) => panic!("{e:?}"),
            }
        }
        ssf::delete_stream(&fx.store, &receiver, &s.id)
            .await
            .unwrap();
    }
    let signed = signer.signed.load(Ordering::SeqCst);
    assert_eq!(signed, ssf::RECEIVER_VERIFICATIONS_PER_MINUTE as usize);
    assert_eq!(refused, 20 * 6 - signed);
}

#[tokio::test]
async fn ssf_inputs_are_bounded() {
    let (fx, _, receiver, stream) = poll_world().await;
    // An oversized stream id is an unknown stream.
    let long = "s".repeat(ssf::MAX_STREAM_ID_CHARS + 1);
    for result in [
        ssf::own_stream(&fx.store, &receiver, &long)
            .await
            .map(|_| ()),
        ssf::delete_stream(&fx.store, &receiver, &long).await,
        ssf::set_status(&fx.store, &receiver, &long, "paused", None)
            .await
            .map(|_| ()),
    ] {
        assert!(matches!(result, Err(CoreError::NotFound(_))), "{result:?}");
    }
    // A status reason of at most 256 characters.
    let reason = |n: usize| Some("r".repeat(n));
    ssf::set_status(&fx.store, &receiver, &stream.id, "paused", reason(256))
        .await
        .unwrap();
    let refused = ssf::set_status(&fx.store, &receiver, &stream.id, "paused", reason(257)).await;
    assert!(
        matches!(refused, Err(CoreError::BadRequest(_))),
        "{refused:?}"
    );
    // Ten streams a receiver (it holds one), then 409.
    for _ in 1..ssf::MAX_STREAMS_PER_RECEIVER {
        poll_stream(&fx, &receiver).await;
    }
    let request = StreamRequest {
        method: Some("urn:ietf:rfc:8936".into()),
        ..StreamRequest::default()
    };
    let over = ssf::create_stream(
        &fx.store,
        &fx.clock,
        &fx.rng,
        &egress(),
        &receiver,
        &request,
    )
    .await;
    assert!(matches!(over, Err(CoreError::Conflict(_))), "{over:?}");
    // A deletion frees a place.
    ssf::delete_stream(&fx.store, &receiver, &stream.id)
        .await
        .unwrap();
    poll_stream(&fx, &receiver).await;
}
