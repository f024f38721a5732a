//! Push delivery's availability and integrity in the domain (memory store, injectable clock):
//! a slow receiver is backed off and stalls no other stream, each stream has its own time
//! budget per run, and a run never reverts a receiver's concurrent change nor brings a deleted
//! stream back.

use endpoint_core::adapters::memory::FixedClock;
use endpoint_core::delivery::{deliver_push, Backoff, Pusher, Run, SLOW_PUSH_MILLIS};
use endpoint_core::egress::PushFailure;
use endpoint_core::model::{Receiver, Stream};
use endpoint_core::ports::{Clock, SignalStore};
use endpoint_core::signals::DEVICE_COMPLIANCE_CHANGE;
use endpoint_core::ssf::{self, StreamRequest};

use crate::common::Fx;
use crate::compliance_rules::{check_in, MAC_BAD, MAC_OK};
use crate::ssf_integrity::{claims, egress, poll_world, ISSUER};

/// Receivers by URL: `slow` ones answer 202 after `slow_millis` (the shared clock moves on by
/// that much during the answer), the others at once. Keeps every (url, jti) answered.
struct Receivers<'a> {
    clock: &'a FixedClock,
    slow_seconds: i64,
    got: std::sync::Mutex<Vec<(String, String)>>,
}

impl Pusher for Receivers<'_> {
    async fn push(&self, url: &str, _auth: Option<&str>, set: &str) -> Result<u16, PushFailure> {
        if url.contains("slow") {
            self.clock.advance(self.slow_seconds);
        }
        let jti = claims(set)["jti"].as_str().unwrap_or_default().to_string();
        self.got.lock().unwrap().push((url.to_string(), jti));
        Ok(202)
    }
}

async fn push_stream(fx: &Fx, receiver: &Receiver, url: &str) -> Stream {
    let request = StreamRequest {
        method: Some("urn:ietf:rfc:8935".into()),
        endpoint_url: Some(url.into()),
        events_requested: Some(vec![DEVICE_COMPLIANCE_CHANGE.into()]),
        ..StreamRequest::default()
    };
    ssf::create_stream(&fx.store, &fx.clock, &fx.rng, &egress(), receiver, &request)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_receiver_answering_202_after_ten_seconds_is_backed_off_and_stalls_no_other_stream() {
    let (fx, key, receiver, _) = poll_world().await;
    let mut slow = Vec::new();
    for i in 0..3 {
        slow.push(push_stream(&fx, &receiver, &format!("https://slow{i}.example/e")).await);
    }
    let (fast_receiver, _) = ssf::create_receiver(&fx.store, &fx.clock, &fx.rng, "f", None)
        .await
        .unwrap();
    push_stream(&fx, &fast_receiver, "https://fast.example/e").await;
    for (i, facts) in [MAC_OK, MAC_BAD, MAC_OK, MAC_BAD, MAC_OK]
        .iter()
        .enumerate()
    {
        fx.clock.advance(60 + i as i64);
        check_in(&fx, &key, facts).await;
    }
    let receivers = Receivers {
        clock: &fx.clock,
        slow_seconds: SLOW_PUSH_MILLIS / 1000 + 1,
        got: Default::default(),
    };
    let run = Run {
        signer: &fx.signer,
        keys: ("signals", ISSUER),
        pusher: &receivers,
        clock: &fx.clock,
        schedule: Backoff::default(),
        rng: &fx.rng,
    };
    let report = deliver_push(&fx.store, &run).await.unwrap();
    let got = receivers.got.lock().unwrap().clone();
    let to = |url: &str| got.iter().filter(|(u, _)| u.contains(url)).count();
    assert_eq!(to("fast"), 4, "every event to the fast receiver: {got:?}");
    for s in &slow {
        let after = fx.store.get_stream(&s.id).await.unwrap().unwrap();
        assert_eq!(
            after.position,
            s.position + 1,
            "its one answer was a delivery"
        );
        assert_eq!(after.failures, 1, "and a failure for backoff");
        assert!(after.next_attempt.is_some_and(|t| t > fx.clock.now()));
        assert!(after
            .status_reason
            .unwrap_or_default()
            .contains("slow answer"));
    }
    assert_eq!(to("slow"), 3, "one push each, then backed off");
    assert_eq!((report.streams, report.delivered, report.failed), (4, 7, 3));
    // The next run (a minute later) leaves the backed-off streams alone.
    receivers.got.lock().unwrap().clear();
    fx.clock.advance(1);
    deliver_push(&fx.store, &run).await.unwrap();
    assert!(receivers.got.lock().unwrap().is_empty());
}

#[tokio::test]
async fn one_stream_gets_its_own_time_budget_per_run_and_the_rest_follows_in_the_next() {
    let (fx, key, receiver, _) = poll_world().await;
    let stream = push_stream(&fx, &receiver, "https://slowish.example/e").await;
    let mut facts = MAC_OK;
    for i in 0..11 {
        fx.clock.advance(60 + i);
        facts = if facts == MAC_OK { MAC_BAD } else { MAC_OK };
        check_in(&fx, &key, facts).await;
    }
    // Each answer takes four seconds: not slow, but the budget holds five of them.
    let receivers = Receivers {
        clock: &fx.clock,
        slow_seconds: 4,
        got: Default::default(),
    };
    let run = Run {
        signer: &fx.signer,
        keys: ("signals", ISSUER),
        pusher: &receivers,
        clock: &fx.clock,
        schedule: Backoff::default(),
        rng: &fx.rng,
    };
    deliver_push(&fx.store, &run).await.unwrap();
    let first = receivers.got.lock().unwrap().len();
    assert_eq!(first, 5, "20 s of budget, 4 s an answer");
    let s = fx.store.get_stream(&stream.id).await.unwrap().unwrap();
    assert_eq!((s.failures, s.position), (0, stream.position + 5));
    deliver_push(&fx.store, &run).await.unwrap();
    deliver_push(&fx.store, &run).await.unwrap();
    let jtis: Vec<String> = receivers
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|(_, j)| j.clone())
        .collect();
    let mut unique = jtis.clone();
    unique.dedup();
    assert_eq!((jtis.len(), unique.len()), (10, 10), "all, in order, once");
}

/// A receiver that, while it answers, changes its stream (endpoint, header, status: the one at
/// `old.example`) or deletes it (`gone.example`): what a concurrent PATCH or DELETE does during
/// a delivery run; it answers 503, so that the run writes its failure.
struct Meddling<'a> {
    fx: &'a Fx,
    receiver: &'a Receiver,
    streams: (String, String),
}

impl Pusher for Meddling<'_> {
    async fn push(&self, url: &str, _auth: Option<&str>, _set: &str) -> Result<u16, PushFailure> {
        let (store, receiver) = (&self.fx.store, self.receiver);
        if url.contains("gone") {
            ssf::delete_stream(store, receiver, &self.streams.1)
                .await
                .map_err(|_| PushFailure::ConnectionFailed)?;
        } else {
            let request = StreamRequest {
                endpoint_url: Some("https://moved.example/e".into()),
                authorization_header: Some("Bearer new".into()),
                ..StreamRequest::default()
            };
            let id = &self.streams.0;
            ssf::update_stream(store, &egress(), receiver, id, &request)
                .await
                .map_err(|_| PushFailure::ConnectionFailed)?;
            ssf::set_status(store, receiver, id, "paused", Some("maintenance".into()))
                .await
                .map_err(|_| PushFailure::ConnectionFailed)?;
        }
        Ok(503)
    }
}

#[tokio::test]
async fn delivery_never_reverts_a_receivers_concurrent_change_nor_brings_a_deleted_stream_back() {
    let (fx, key, receiver, _) = poll_world().await;
    let changed = push_stream(&fx, &receiver, "https://old.example/e").await;
    let deleted = push_stream(&fx, &receiver, "https://gone.example/e").await;
    check_in(&fx, &key, MAC_OK).await;
    fx.clock.advance(60);
    check_in(&fx, &key, MAC_BAD).await;
    let meddling = Meddling {
        fx: &fx,
        receiver: &receiver,
        streams: (changed.id.clone(), deleted.id.clone()),
    };
    let run = Run {
        signer: &fx.signer,
        keys: ("signals", ISSUER),
        pusher: &meddling,
        clock: &fx.clock,
        schedule: Backoff::default(),
        rng: &fx.rng,
    };
    let report = deliver_push(&fx.store, &run).await.unwrap();
    assert_eq!((report.streams, report.failed), (2, 2));
    let after = fx.store.get_stream(&changed.id).await.unwrap().unwrap();
    assert_eq!(
        after.endpoint_url.as_deref(),
        Some("https://moved.example/e")
    );
    assert_eq!(after.authorization_header.as_deref(), Some("Bearer new"));
    assert_eq!(after.status_reason.as_deref(), Some("maintenance"));
    assert_eq!(after.failures, 0, "the stale run wrote nothing");
    assert!(fx.store.get_stream(&deleted.id).await.unwrap().is_none());
}
