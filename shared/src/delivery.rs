//! Push delivery (RFC 8935): the outbox's events POSTed, in order, to each enabled push stream's
//! endpoint as security event tokens. 202 is delivered (the stream's position moves past it, so a
//! worker killed mid-run resends at most what it had not recorded: receivers dedupe by `jti`);
//! anything else, and an answer slower than [`SLOW_PUSH_MILLIS`], is a failure, retried with
//! exponential backoff and jitter (30 s doubling to at most an hour, for as long as the outbox
//! keeps the event: far more than 24 hours), and the stream's status says since when its
//! receiver fails.
//!
//! Streams are delivered concurrently (at most [`CONCURRENT_STREAMS`] at once), each within its
//! own time budget ([`STREAM_BUDGET_MILLIS`]): a slow receiver delays only its own streams. A run
//! writes a stream only on condition that it is still at the version the run read (a receiver's
//! concurrent change is never reverted, a deleted stream never comes back).

use std::future::Future;

use futures::stream::{self as stream_of, StreamExt};

use crate::egress::PushFailure;
use crate::error::CoreError;
use crate::model::{DeliveryMethod, Receiver, Stream, StreamStatus, UnixTime};
use crate::ports::{ChallengeSigner, Clock, Random, SignalStore};
use crate::signals::sets_of;

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
/// An answer slower than this is a failure (backed off like one), even a 202.
pub const SLOW_PUSH_MILLIS: i64 = 5_000;
/// How long one run spends on one stream: no push starts after it.
pub const STREAM_BUDGET_MILLIS: i64 = 20_000;
/// No stream starts after this much of a run (a run ends well within its minute).
pub const RUN_BUDGET_MILLIS: i64 = 25_000;
/// Most streams one run delivers at once.
pub const CONCURRENT_STREAMS: usize = 16;

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

/// What one run needs besides the store: the signer and its key, the issuer, the pusher, the
/// clock (also to time each answer), the retry schedule, and randomness for the jitter.
pub struct Run<'a, K, P, C: ?Sized, R: ?Sized> {
    pub signer: &'a K,
    pub keys: (&'a str, &'a str),
    pub pusher: &'a P,
    pub clock: &'a C,
    pub schedule: Backoff,
    pub rng: &'a R,
}

/// One run over every push stream that is due now.
pub async fn deliver_push<S, K, P, C, R>(
    store: &S,
    run: &Run<'_, K, P, C, R>,
) -> Result<DeliveryReport, CoreError>
where
    S: SignalStore,
    K: ChallengeSigner,
    P: Pusher,
    C: Clock + ?Sized,
    R: Random + ?Sized,
{
    let (now, run_started) = (run.clock.now(), run.clock.now_millis());
    let head = store.settle_signals(now).await?;
    let due: Vec<Stream> = store
        .list_streams()
        .await?
        .into_iter()
        .filter(|s| {
            s.method == DeliveryMethod::Push
                && s.status == StreamStatus::Enabled
                && s.endpoint_url.is_some()
                && s.next_attempt.is_none_or(|t| t <= now)
        })
        .collect();
    let outcomes: Vec<Result<Option<(usize, usize)>, CoreError>> = stream_of::iter(due)
        .map(|stream| deliver_stream(store, run, stream, (head, run_started)))
        .buffer_unordered(CONCURRENT_STREAMS)
        .collect()
        .await;
    let mut report = DeliveryReport::default();
    let mut error = None;
    for outcome in outcomes {
        match outcome {
            Ok(Some((delivered, failed))) => {
                report.streams += 1;
                report.delivered += delivered;
                report.failed += failed;
            }
            Ok(None) => {}
            // One stream's store failure does not stop the others; the run reports it.
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// One stream's part of a run: its pending verification, then its events after its position,
/// in order, until one fails, the budget is spent, or the stream changed under the run.
/// `None` if it has no live receiver; else how many were delivered and failed.
async fn deliver_stream<S, K, P, C, R>(
    store: &S,
    run: &Run<'_, K, P, C, R>,
    mut stream: Stream,
    (head, run_started): (u64, i64),
) -> Result<Option<(usize, usize)>, CoreError>
where
    S: SignalStore,
    K: ChallengeSigner,
    P: Pusher,
    C: Clock + ?Sized,
    R: Random + ?Sized,
{
    let Some(url) = stream.endpoint_url.clone() else {
        return Ok(None);
    };
    if run.clock.now_millis() - run_started >= RUN_BUDGET_MILLIS {
        // Left for the next run (a minute later at most).
        return Ok(None);
    }
    let receiver: Receiver = match store.get_receiver(&stream.receiver).await? {
        Some(r) if r.revoked_at.is_none() => r,
        _ => return Ok(None),
    };
    let now = run.clock.now();
    let started = run.clock.now_millis();
    let auth = stream.authorization_header.clone();
    // The pending verification first, then the events after the position, in order: each the
    // string signed once for this receiver.
    let mut sets: Vec<(Option<u64>, String)> = Vec::new();
    if let Some(v) = &stream.verification {
        sets.push((None, v.set.clone()));
    }
    if !crate::ssf::events_delivered(&stream).is_empty() {
        let events = store
            .signal_events(stream.position, head, MAX_PER_RUN)
            .await?;
        let signed = sets_of(store, run.signer, run.keys, &receiver, &events, now).await?;
        sets.extend(
            events
                .iter()
                .map(|e| Some(e.seq))
                .zip(signed.into_iter().map(|(_, s)| s)),
        );
    }
    let (mut delivered, mut failed_count) = (0, 0);
    for (event, set) in sets {
        if run.clock.now_millis() - started >= STREAM_BUDGET_MILLIS {
            break;
        }
        let sent = run.clock.now_millis();
        let answer = if set.is_empty() {
            // A verification from before SETs were signed once: nothing to send.
            Ok(202)
        } else {
            run.pusher.push(&url, auth.as_deref(), &set).await
        };
        let took = run.clock.now_millis() - sent;
        let mut failure = None;
        match answer {
            Ok(202) => {
                match event {
                    Some(seq) => stream.position = seq,
                    None => stream.verification = None,
                }
                delivered += 1;
                if took >= SLOW_PUSH_MILLIS {
                    // Delivered, but a receiver this slow is backed off like a failing one.
                    failure = Some(format!("slow answer ({} s)", took / 1000));
                } else {
                    recovered(&mut stream);
                }
            }
            // Generic terms only (`status 503`, `timeout`, `connection refused`): never the HTTP
            // client's own text, which would make the status a port and host scanner.
            Ok(status) => failure = Some(PushFailure::Status(status).to_string()),
            Err(e) => failure = Some(e.to_string()),
        }
        if let Some(why) = &failure {
            let at = run.clock.now();
            failed(&mut stream, (at, run.schedule), why.clone(), run.rng);
            failed_count += 1;
        }
        // Only if nobody changed (or deleted) the stream since it was read.
        if !store.save_stream(&stream).await? {
            tracing::info!(
                event = "push_stream_changed",
                "the stream changed during delivery; the next run goes on"
            );
            break;
        }
        stream.version += 1;
        if failure.is_some() {
            break;
        }
    }
    Ok(Some((delivered, failed_count)))
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
