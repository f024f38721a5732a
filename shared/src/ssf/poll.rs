//! Poll delivery (RFC 8936): acknowledgements move a poll stream's position, then the pending
//! verification and the settled events after the position, each the SET signed once.

use super::{events_delivered, known_id, own_stream, MAX_POLL_EVENTS, SAVE_ATTEMPTS};
use crate::error::CoreError;
use crate::model::{DeliveryMethod, Receiver, StreamStatus, UnixTime};
use crate::ports::{ChallengeSigner, SignalStore};
use crate::signals::sets_of;

/// A poll: the SETs acknowledged, how many to answer at most.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollRequest {
    pub ack: Vec<String>,
    pub max_events: Option<usize>,
}

/// A poll's answer: SETs by `jti`, and whether more are waiting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollAnswer {
    pub sets: Vec<(String, String)>,
    pub more_available: bool,
}

/// Where a poll stream is polled.
pub fn poll_endpoint(issuer: &str, stream: &str) -> String {
    format!("{issuer}/ssf/poll/{stream}")
}

/// A poll of `receiver`'s poll stream (RFC 8936): the acknowledged SETs move the stream's
/// position past them (in order: an event not acknowledged is answered again); then up to
/// `max_events` SETs (the pending verification first), each the string signed when it was first
/// delivered (a re-poll costs no signature). A paused or disabled stream answers none. Always
/// immediately (no long polling).
pub async fn poll<S, K>(
    store: &S,
    signer: &K,
    keys: (&str, &str),
    now: UnixTime,
    receiver: &Receiver,
    id: &str,
    request: &PollRequest,
) -> Result<PollAnswer, CoreError>
where
    S: SignalStore,
    K: ChallengeSigner,
{
    let max = request
        .max_events
        .unwrap_or(MAX_POLL_EVENTS)
        .min(MAX_POLL_EVENTS);
    let acked = |jti: &str| request.ack.iter().any(|a| a == jti);
    known_id(id)?;
    let head = store.settle_signals(now).await?;
    let (stream, mut pending, more_in_store) = 'acked: {
        for _ in 0..SAVE_ATTEMPTS {
            let mut stream = own_stream(store, receiver, id).await?;
            if stream.method != DeliveryMethod::Poll {
                return Err(CoreError::BadRequest(
                    "this stream is delivered by push".into(),
                ));
            }
            let delivers = !events_delivered(&stream).is_empty();
            let mut changed = false;
            if stream.verification.as_ref().is_some_and(|v| acked(&v.jti)) {
                stream.verification = None;
                changed = true;
            }
            // Past the acknowledged prefix.
            let read = request.ack.len() + max + 1;
            let mut pending = store.signal_events(stream.position, head, read).await?;
            // A short read is everything settled after the position.
            let more_in_store = pending.len() == read;
            let skip = pending
                .iter()
                .take_while(|e| acked(&e.id) || !delivers)
                .count();
            if let Some(last) = skip.checked_sub(1).map(|i| pending[i].seq) {
                stream.position = last;
                changed = true;
            }
            pending.drain(..skip);
            if !changed {
                break 'acked (stream, pending, more_in_store);
            }
            if store.save_stream(&stream).await? {
                stream.version += 1;
                break 'acked (stream, pending, more_in_store);
            }
        }
        return Err(CoreError::Conflict(
            "the stream is being changed concurrently; try again".into(),
        ));
    };
    let mut answer = PollAnswer::default();
    if stream.status != StreamStatus::Enabled {
        return Ok(answer);
    }
    if let Some(v) = stream.verification.as_ref().filter(|v| !v.set.is_empty()) {
        answer.sets.push((v.jti.clone(), v.set.clone()));
    }
    if !events_delivered(&stream).is_empty() {
        if more_in_store && pending.len() < max + 1 {
            // The read was full but the prefix took most of it: read what follows.
            pending = store.signal_events(stream.position, head, max + 1).await?;
        }
        let room = max.saturating_sub(answer.sets.len());
        answer.more_available = pending.len() > room;
        pending.truncate(room);
        let sets = sets_of(store, signer, keys, receiver, &pending, now).await?;
        answer.sets.extend(sets);
    }
    Ok(answer)
}
