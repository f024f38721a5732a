//! Push delivery (RFC 8935): the outbox's events POSTed, in order, to each enabled push stream's
//! endpoint as security event tokens. 202 is delivered (the stream's cursor moves past it, so a
//! worker killed mid-run resends at most what it had not recorded: receivers dedupe by `jti`);
//! anything else is retried with exponential backoff and jitter (30 s doubling to at most an
//! hour, for as long as the outbox keeps the event: far more than 24 hours), and the stream's
//! status says since when its receiver fails.

use std::future::Future;

use crate::egress::PushFailure;
use crate::error::CoreError;
use crate::model::{DeliveryMethod, Stream, StreamStatus, UnixTime};
use crate::ports::{ChallengeSigner, DeviceStore, Random, SignalStore};
use crate::signals::{sign_set, sign_verification};

/// The first retry's delay (before jitter), doubling per failure up to [`MAX_BACKOFF`].
pub const FIRST_RETRY: i64 = 30;
pub const MAX_BACKOFF: i64 = 3600;

/// The retry schedule: `first` seconds doubling per failure up to `max` (the deployed stack
/// uses the defaults; `PUSH_FIRST_RETRY_SECONDS` shortens the first for the local stack).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub first: i64,
    pub max: i64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: FIRST_RETRY,
            max: MAX_BACKOFF,
        }
    }
}
/// Most SETs one run pushes to one stream.
pub const MAX_PER_RUN: usize = 100;

/// Sends one SET to a receiver's endpoint; answers the HTTP status, or why there was none in
/// generic terms (what the stream's status shows: never the HTTP client's own error text).
pub trait Pusher: Send + Sync {
    fn push(
        &self,
        url: &str,
        authorization: Option<&str>,
        set: &str,
    ) -> impl Future<Output = Result<u16, PushFailure>> + Send;
}

/// The delay before the next attempt after `failures` consecutive failures: `schedule.first`
/// doubled per failure, at most `schedule.max`, of which a random half (full jitter on the
/// upper half, so receivers that failed together do not retry together).
pub fn backoff(failures: u32, schedule: Backoff, rng: &(impl Random + ?Sized)) -> i64 {
    let base = (schedule.first << failures.saturating_sub(1).min(10)).min(schedule.max);
    let mut b = [0u8; 8];
    rng.fill(&mut b);
    let half = base / 2;
    half + (u64::from_le_bytes(b) % (half as u64 + 1)) as i64
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub streams: usize,
    pub delivered: usize,
    pub failed: usize,
}

/// One run over every push stream that is due at `now`.
pub async fn deliver_push<S, K, P>(
    store: &S,
    signer: &K,
    pusher: &P,
    (key, issuer): (&str, &str),
    now: UnixTime,
    schedule: Backoff,
    rng: &(impl Random + ?Sized),
) -> Result<DeliveryReport, CoreError>
where
    S: SignalStore + DeviceStore,
    K: ChallengeSigner,
    P: Pusher,
{
    let mut report = DeliveryReport::default();
    for mut stream in store.list_streams().await? {
        let due = stream.method == DeliveryMethod::Push
            && stream.status == StreamStatus::Enabled
            && stream.next_attempt.is_none_or(|t| t <= now);
        let Some(url) = stream.endpoint_url.clone().filter(|_| due) else {
            continue;
        };
        let receiver = match store.get_receiver(&stream.receiver).await? {
            Some(r) if r.revoked_at.is_none() => r,
            _ => continue,
        };
        report.streams += 1;
        let auth = stream.authorization_header.clone();
        // The pending verification first, then the outbox after the cursor, in order.
        let mut sets: Vec<(Option<String>, String)> = Vec::new();
        if let Some(v) = &stream.verification {
            let set =
                sign_verification(signer, key, issuer, &receiver.audience, &stream.id, v, now)
                    .await?;
            sets.push((None, set));
        }
        if !crate::ssf::events_delivered(&stream).is_empty() {
            for e in store
                .signal_events(Some(&stream.cursor), MAX_PER_RUN, now)
                .await?
            {
                let set = sign_set(signer, key, &e, issuer, &receiver.audience, now).await?;
                sets.push((Some(e.id.clone()), set));
            }
        }
        for (event, set) in sets {
            match pusher.push(&url, auth.as_deref(), &set).await {
                Ok(202) => {
                    match event {
                        Some(id) => stream.cursor = id,
                        None => stream.verification = None,
                    }
                    recovered(&mut stream);
                    store.put_stream(&stream).await?;
                    report.delivered += 1;
                }
                other => {
                    let why = other.map_or_else(|e| e, PushFailure::Status).to_string();
                    failed(&mut stream, (now, schedule), why, rng);
                    store.put_stream(&stream).await?;
                    report.failed += 1;
                    break;
                }
            }
        }
    }
    Ok(report)
}

fn recovered(stream: &mut Stream) {
    if stream.failures > 0 {
        stream.failures = 0;
        stream.failing_since = None;
        stream.last_error = None;
        stream.next_attempt = None;
        stream.status_reason = None;
    }
}

fn failed(
    stream: &mut Stream,
    (now, schedule): (UnixTime, Backoff),
    why: String,
    rng: &(impl Random + ?Sized),
) {
    stream.failures += 1;
    let since = *stream.failing_since.get_or_insert(now);
    stream.next_attempt = Some(now + backoff(stream.failures, schedule, rng));
    stream.status_reason = Some(format!(
        "push delivery failing since {since} ({} attempts): {why}; retrying",
        stream.failures
    ));
    tracing::warn!(
        event = "push_failed",
        failures = stream.failures,
        "push delivery failed"
    );
    stream.last_error = Some(why);
}
