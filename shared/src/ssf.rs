//! The Shared Signals transmitter (SSF 1.0): receivers registered by an operator, their
//! streams, status and verification, and poll delivery (RFC 8936) of the outbox's events as
//! security event tokens. A receiver authenticates with its bearer token and sees only its own
//! streams. Push delivery (RFC 8935) is `delivery.rs`.

use crate::egress::Egress;
use crate::error::CoreError;
use crate::model::{DeliveryMethod, Receiver, Stream, StreamStatus, Verification};
use crate::ports::{
    random_alnum, random_id, ChallengeSigner, Clock, Limiter, Random, Resolve, SignalStore,
};
use crate::protocol::ct_eq;
use crate::secret::{sha256_hex, Secret};
use crate::signals::{sign_verification, DEVICE_COMPLIANCE_CHANGE};

mod poll;

pub use poll::{poll, poll_endpoint, PollAnswer, PollRequest};

/// The events this transmitter sends.
pub const EVENTS_SUPPORTED: [&str; 1] = [DEVICE_COMPLIANCE_CHANGE];
/// Most streams one receiver may hold.
pub const MAX_STREAMS_PER_RECEIVER: usize = 10;
/// Most SETs one poll answers (and the default).
pub const MAX_POLL_EVENTS: usize = 100;
/// Longest description, endpoint URL, authorization header.
pub const MAX_FIELD_CHARS: usize = 2048;
/// Longest `stream_id`: a longer one is as unknown as a missing stream (404), never read.
pub const MAX_STREAM_ID_CHARS: usize = 64;
/// Longest status `reason` (longer: 400).
pub const MAX_REASON_CHARS: usize = 256;
/// Most verifications one stream may ask for in a minute (each costs a signature).
pub const VERIFICATIONS_PER_MINUTE: u32 = 6;
/// Most verifications one receiver may ask for a minute over all its streams (as many as its
/// most streams may each ask for): streams created and deleted to escape the per-stream limit
/// cannot buy more signatures.
pub const RECEIVER_VERIFICATIONS_PER_MINUTE: u32 =
    VERIFICATIONS_PER_MINUTE * MAX_STREAMS_PER_RECEIVER as u32;
/// How often a write that lost a race with another writer of the stream is tried again.
const SAVE_ATTEMPTS: usize = 3;

/// What a receiver asks of a new or changed stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamRequest {
    /// The delivery method's URN, and for push the endpoint and its `Authorization` header.
    pub method: Option<String>,
    pub endpoint_url: Option<String>,
    pub authorization_header: Option<String>,
    pub events_requested: Option<Vec<String>>,
    pub description: Option<String>,
}

/// Registers a receiver; returns it with its bearer token (`<id>.<secret>`, shown once,
/// stored only as a hash).
pub async fn create_receiver<S, C, R>(
    store: &S,
    clock: &C,
    rng: &R,
    name: &str,
    audience: Option<&str>,
) -> Result<(Receiver, Secret), CoreError>
where
    S: SignalStore,
    C: Clock + ?Sized,
    R: Random + ?Sized,
{
    let bounded = |what: &str, v: &str| {
        if v.is_empty() || v.chars().count() > 256 || v.chars().any(char::is_control) {
            Err(CoreError::BadRequest(format!(
                "{what} must be 1 to 256 characters without control characters"
            )))
        } else {
            Ok(())
        }
    };
    bounded("name", name)?;
    if let Some(a) = audience {
        bounded("audience", a)?;
    }
    let id = random_id(rng, 16);
    let token = Secret::new(format!("{id}.{}", random_alnum(rng, 48)));
    let receiver = Receiver {
        audience: audience.map_or_else(|| id.clone(), str::to_string),
        id,
        name: name.to_string(),
        token_sha256: token.sha256_hex(),
        created_at: clock.now(),
        revoked_at: None,
    };
    store.put_receiver(&receiver).await?;
    Ok((receiver, token))
}

/// Revokes a receiver: its token is refused from then on. `Ok(false)` if unknown.
pub async fn revoke_receiver<S: SignalStore, C: Clock + ?Sized>(
    store: &S,
    clock: &C,
    id: &str,
) -> Result<bool, CoreError> {
    let Some(mut r) = store.get_receiver(id).await? else {
        return Ok(false);
    };
    r.revoked_at.get_or_insert(clock.now());
    store.put_receiver(&r).await?;
    Ok(true)
}

/// The receiver a `Authorization: Bearer <token>` header names, if the token is its live one
/// (compared in constant time); otherwise 401.
pub async fn authenticate<S: SignalStore>(
    store: &S,
    authorization: Option<&str>,
) -> Result<Receiver, CoreError> {
    let refused = || CoreError::Unauthorized("A receiver's bearer token is required.".into());
    let token = authorization
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or_else(refused)?;
    let id = token
        .split_once('.')
        .map(|(id, _)| id)
        .ok_or_else(refused)?;
    if id.is_empty() || id.len() > 64 {
        return Err(refused());
    }
    let receiver = store.get_receiver(id).await?.ok_or_else(refused)?;
    let hash = sha256_hex(token.as_bytes());
    if receiver.revoked_at.is_some() || !ct_eq(hash.as_bytes(), receiver.token_sha256.as_bytes()) {
        return Err(refused());
    }
    Ok(receiver)
}

/// A push endpoint as written; where it may lead is [`admit_endpoint`]'s.
fn push_endpoint(url: &str) -> Result<String, CoreError> {
    if url.len() > MAX_FIELD_CHARS {
        return Err(CoreError::BadRequest("endpoint_url is too long".into()));
    }
    Ok(url.to_string())
}

/// When a push stream is created or its delivery changed, its endpoint must be `https:` to a
/// public address (`egress`): 400 otherwise. Stored normalized.
async fn admit_endpoint<R: Resolve>(
    stream: &mut Stream,
    request: &StreamRequest,
    egress: &Egress<R>,
) -> Result<(), CoreError> {
    let changed = request.method.is_some() || request.endpoint_url.is_some();
    if let (DeliveryMethod::Push, Some(url), true) = (stream.method, &stream.endpoint_url, changed)
    {
        stream.endpoint_url = Some(egress.admit(url).await?);
    }
    Ok(())
}

/// Applies `request` to `stream`: delivery, events requested, description.
fn apply(stream: &mut Stream, request: &StreamRequest) -> Result<(), CoreError> {
    if let Some(method) = &request.method {
        stream.method = match method.as_str() {
            "urn:ietf:rfc:8935" => DeliveryMethod::Push,
            "urn:ietf:rfc:8936" => DeliveryMethod::Poll,
            other => {
                return Err(CoreError::BadRequest(format!(
                    "delivery method {other:?} is not supported (urn:ietf:rfc:8935 push, urn:ietf:rfc:8936 poll)"
                )))
            }
        };
    }
    match stream.method {
        DeliveryMethod::Push => {
            let url = request
                .endpoint_url
                .as_deref()
                .or(stream.endpoint_url.as_deref())
                .ok_or_else(|| CoreError::BadRequest("push delivery needs endpoint_url".into()))?;
            stream.endpoint_url = Some(push_endpoint(url)?);
            if let Some(h) = &request.authorization_header {
                if h.len() > MAX_FIELD_CHARS || h.chars().any(char::is_control) {
                    return Err(CoreError::BadRequest(
                        "authorization_header is too long or has control characters".into(),
                    ));
                }
                stream.authorization_header = Some(h.clone());
            }
        }
        DeliveryMethod::Poll => {
            // The transmitter fills in its own poll endpoint.
            stream.endpoint_url = None;
            stream.authorization_header = None;
        }
    }
    if let Some(events) = &request.events_requested {
        if events.len() > 50 || events.iter().any(|e| e.len() > 256) {
            return Err(CoreError::BadRequest("events_requested is too long".into()));
        }
        stream.events_requested = events.clone();
    }
    if let Some(d) = &request.description {
        if d.chars().count() > MAX_FIELD_CHARS || d.chars().any(char::is_control) {
            return Err(CoreError::BadRequest(
                "description is too long or has control characters".into(),
            ));
        }
        stream.description = Some(d.clone());
    }
    Ok(())
}

/// The events a stream delivers: those it requested that this transmitter supports.
pub fn events_delivered(stream: &Stream) -> Vec<&'static str> {
    EVENTS_SUPPORTED
        .into_iter()
        .filter(|e| stream.events_requested.iter().any(|r| r == e))
        .collect()
}

/// Creates a stream for `receiver`: only events after its creation are delivered. A push
/// endpoint is checked with `egress`.
pub async fn create_stream<S, C, R, D>(
    store: &S,
    clock: &C,
    rng: &R,
    egress: &Egress<D>,
    receiver: &Receiver,
    request: &StreamRequest,
) -> Result<Stream, CoreError>
where
    S: SignalStore,
    C: Clock + ?Sized,
    R: Random + ?Sized,
    D: Resolve,
{
    if request.method.is_none() {
        return Err(CoreError::BadRequest("delivery.method is required".into()));
    }
    let now = clock.now();
    let mut stream = Stream {
        id: random_id(rng, 16),
        receiver: receiver.id.clone(),
        method: DeliveryMethod::Poll,
        endpoint_url: None,
        authorization_header: None,
        events_requested: Vec::new(),
        description: None,
        status: StreamStatus::Enabled,
        status_reason: None,
        // After every event settled so far: the stream receives those created after it.
        position: store.settle_signals(now).await?,
        version: 0,
        verification: None,
        created_at: now,
        failures: 0,
        failing_since: None,
        last_error: None,
        next_attempt: None,
    };
    apply(&mut stream, request)?;
    admit_endpoint(&mut stream, request, egress).await?;
    // The limit is counted in the write itself: concurrent creations cannot pass it.
    if !store
        .create_stream(&stream, MAX_STREAMS_PER_RECEIVER)
        .await?
    {
        return Err(CoreError::Conflict(format!(
            "a receiver holds at most {MAX_STREAMS_PER_RECEIVER} streams"
        )));
    }
    Ok(stream)
}

/// An oversized (or empty) id names no stream: answered like an unknown one (404), without a
/// read (a key that long would be refused by the table: a 503 for a receiver's typo).
fn known_id(id: &str) -> Result<(), CoreError> {
    if id.is_empty() || id.chars().count() > MAX_STREAM_ID_CHARS {
        return Err(CoreError::NotFound("stream".into()));
    }
    Ok(())
}

/// `receiver`'s stream `id`: another receiver's is as unknown as a missing one (404).
pub async fn own_stream<S: SignalStore>(
    store: &S,
    receiver: &Receiver,
    id: &str,
) -> Result<Stream, CoreError> {
    known_id(id)?;
    match store.get_stream(id).await? {
        Some(s) if s.receiver == receiver.id => Ok(s),
        _ => Err(CoreError::NotFound("stream".into())),
    }
}

/// Every stream of `receiver`.
pub async fn own_streams<S: SignalStore>(
    store: &S,
    receiver: &Receiver,
) -> Result<Vec<Stream>, CoreError> {
    let mut streams: Vec<Stream> = store
        .list_streams()
        .await?
        .into_iter()
        .filter(|s| s.receiver == receiver.id)
        .collect();
    streams.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(streams)
}

/// Reads `receiver`'s stream `id`, changes it with `change` and writes it back on condition
/// that nobody wrote it since it was read (a concurrent delivery's position, a concurrent change,
/// a deletion are never reverted); read again and retried when somebody did.
async fn change<S, F>(
    store: &S,
    receiver: &Receiver,
    id: &str,
    mut change: F,
) -> Result<Stream, CoreError>
where
    S: SignalStore,
    F: FnMut(&mut Stream) -> Result<(), CoreError>,
{
    for _ in 0..SAVE_ATTEMPTS {
        let mut stream = own_stream(store, receiver, id).await?;
        change(&mut stream)?;
        if store.save_stream(&stream).await? {
            stream.version += 1;
            return Ok(stream);
        }
    }
    Err(CoreError::Conflict(
        "the stream is being changed concurrently; try again".into(),
    ))
}

/// Changes `receiver`'s stream `id` as `request` says.
/// A push endpoint is checked with `egress` before the write.
pub async fn update_stream<S: SignalStore, D: Resolve>(
    store: &S,
    egress: &Egress<D>,
    receiver: &Receiver,
    id: &str,
    request: &StreamRequest,
) -> Result<Stream, CoreError> {
    // The endpoint is checked (its name resolved) before the conditional write, on a copy;
    // the write then takes the admitted form of the same URL.
    let mut preview = own_stream(store, receiver, id).await?;
    apply(&mut preview, request)?;
    let raw = preview.endpoint_url.clone();
    admit_endpoint(&mut preview, request, egress).await?;
    let admitted = preview.endpoint_url;
    change(store, receiver, id, |stream| {
        apply(stream, request)?;
        if stream.method == DeliveryMethod::Push && stream.endpoint_url != admitted {
            if stream.endpoint_url != raw {
                // Changed concurrently since the check: checked again on the next try.
                return Err(CoreError::Conflict(
                    "the stream is being changed concurrently; try again".into(),
                ));
            }
            stream.endpoint_url.clone_from(&admitted);
        }
        Ok(())
    })
    .await
}

/// Deletes `receiver`'s stream `id`.
pub async fn delete_stream<S: SignalStore>(
    store: &S,
    receiver: &Receiver,
    id: &str,
) -> Result<(), CoreError> {
    let stream = own_stream(store, receiver, id).await?;
    if !store.delete_stream(&stream).await? {
        return Err(CoreError::NotFound("stream".into()));
    }
    Ok(())
}

/// Sets the stream's status (`enabled`, `paused`, `disabled`) with an optional reason (at most
/// [`MAX_REASON_CHARS`]).
pub async fn set_status<S: SignalStore>(
    store: &S,
    receiver: &Receiver,
    id: &str,
    status: &str,
    reason: Option<String>,
) -> Result<Stream, CoreError> {
    let status = match status {
        "enabled" => StreamStatus::Enabled,
        "paused" => StreamStatus::Paused,
        "disabled" => StreamStatus::Disabled,
        other => {
            return Err(CoreError::BadRequest(format!(
                "status {other:?} is not enabled, paused or disabled"
            )))
        }
    };
    if reason
        .as_deref()
        .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS || r.chars().any(char::is_control))
    {
        return Err(CoreError::BadRequest(format!(
            "reason must be at most {MAX_REASON_CHARS} characters without control characters"
        )));
    }
    change(store, receiver, id, |stream| {
        stream.status = status;
        stream.status_reason.clone_from(&reason);
        Ok(())
    })
    .await
}

/// A verification event for the stream (delivered with its next SETs), signed now, once: at
/// most [`VERIFICATIONS_PER_MINUTE`] a minute per stream and
/// [`RECEIVER_VERIFICATIONS_PER_MINUTE`] per receiver, then 429 with the seconds until the
/// minute ends (and no signature).
#[allow(clippy::too_many_arguments)]
pub async fn verify<S, K, C, R>(
    store: &S,
    signer: &K,
    (key, issuer): (&str, &str),
    clock: &C,
    rng: &R,
    receiver: &Receiver,
    id: &str,
    state: Option<String>,
) -> Result<(), CoreError>
where
    S: SignalStore + Limiter,
    K: ChallengeSigner,
    C: Clock + ?Sized,
    R: Random + ?Sized,
{
    if state.as_ref().is_some_and(|s| s.len() > 256) {
        return Err(CoreError::BadRequest("state is too long".into()));
    }
    let stream = own_stream(store, receiver, id).await?;
    let now = clock.now();
    let window_end = now - now.rem_euclid(60) + 60;
    let bucket = format!("ssf_verify#{}#{window_end}", stream.id);
    let all = format!("ssf_verify_receiver#{}#{window_end}", receiver.id);
    // Both counters in one round: the stream's and the receiver's.
    let (one, every) = futures::join!(
        store.take(&bucket, VERIFICATIONS_PER_MINUTE, window_end),
        store.take(&all, RECEIVER_VERIFICATIONS_PER_MINUTE, window_end)
    );
    if !(one? && every?) {
        return Err(CoreError::RateLimited((window_end - now).max(1) as u32));
    }
    let mut verification = Verification {
        jti: format!("{now:011}-{}", random_alnum(rng, 12)),
        state,
        time: now,
        set: String::new(),
    };
    verification.set = sign_verification(
        signer,
        key,
        issuer,
        &receiver.audience,
        &stream.id,
        &verification,
        now,
    )
    .await?;
    change(store, receiver, id, |stream| {
        stream.verification = Some(verification.clone());
        Ok(())
    })
    .await?;
    Ok(())
}
