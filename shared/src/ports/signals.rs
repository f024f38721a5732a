//! The ports of the Shared Signals transmitter (receivers, streams, the outbox's order, kept
//! SETs) and of the challenge key rollout (which devices fetched the next key).

use std::collections::BTreeMap;
use std::future::Future;

use crate::error::StoreError;
use crate::model::{ConfigFetch, Receiver, SignalEvent, Stream, UnixTime};

/// How many numbers one epoch of the outbox's sequence holds (`seq >> EPOCH_BITS` is its epoch):
/// 2^31, so that an epoch named after a Unix time in seconds stays below 2^63 (a DynamoDB number
/// read as `i64`) until 2106.
pub const EPOCH_BITS: u32 = 31;

/// One writer's (one region's) last settling, kept by the store under that writer's name: the
/// last `seq` it gave, and for each other writer up to which of that writer's `seq`s it has
/// accounted for (seen when it started its epoch, or settled again since: [`late_ranges`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignalHead {
    pub last: u64,
    pub adopted: BTreeMap<String, u64>,
}

/// The first `seq` of an epoch, less one (`0` for epoch 0: the numbering of one region).
pub fn epoch_base(epoch: u64) -> u64 {
    epoch << EPOCH_BITS
}

/// Where a writer numbers from, given its own head, every other writer's `last` it can read (its
/// region's copy of the global table), whether this is the first settling of a regional writer's
/// process (`first`: a function's cold start, for example after the primary moved to its
/// region), and the time.
///
/// One writer settles at a time (the primary region), but when the primary moves, the new one
/// may not yet hold what the failed one settled in its last replication window, nor know that
/// the failed one had started an epoch of its own. Numbering on after the highest head it can
/// see would give those numbers again (last writer wins on the same item: one event lost), and a
/// stream position the failed one wrote could later pass the new one's events. So a writer that
/// sees another writer's head above its own, or settles for the first time since it started,
/// starts a new epoch: above every head it sees, and at least the current time in seconds. A
/// primary move happens after the failed primary's last settling, so the new primary's numbers
/// are above every number the failed one gave, seen or not, and every reader's position is below
/// them. When the primary moved to it, what it sees of the others counts as accounted for
/// (`adopted`); their events that reach it later are settled again in its epoch
/// ([`late_ranges`]): delivered late, never lost.
pub fn numbering(
    own: &SignalHead,
    others: &BTreeMap<String, u64>,
    first: bool,
    now: UnixTime,
) -> SignalHead {
    let top = others.values().copied().max().unwrap_or(0);
    if top <= own.last && !first {
        return own.clone();
    }
    let seen = own.last.max(top);
    let epoch = ((seen >> EPOCH_BITS) + 1).max(now.max(0) as u64);
    let mut adopted = own.adopted.clone();
    if top > own.last {
        // The primary moved here: what the others settled so far is in this copy, read in order.
        // (A process's own new epoch accounts for nothing more: what arrived since is late.)
        for (writer, last) in others {
            let a = adopted.entry(writer.clone()).or_default();
            *a = (*a).max(*last);
        }
    }
    SignalHead {
        last: epoch_base(epoch),
        adopted,
    }
}

/// For each other writer whose head is above what `head` accounted for: the `seq`s to look
/// through for its events that arrived late (after the accounted one, at most its head and below
/// `head`'s epoch). Only that writer's events in them are settled again. None in epoch 0 (one
/// region).
pub fn late_ranges(head: &SignalHead, others: &BTreeMap<String, u64>) -> Vec<(String, u64, u64)> {
    let base = epoch_base(head.last >> EPOCH_BITS);
    if base == 0 {
        return Vec::new();
    }
    others
        .iter()
        .filter_map(|(writer, last)| {
            let after = head.adopted.get(writer).copied().unwrap_or(0);
            let upto = (*last).min(base - 1);
            (after < upto).then(|| (writer.clone(), after, upto))
        })
        .collect()
}

/// Shared Signals receivers, their streams, and the outbox's order.
///
/// Writers put events in the outbox with their change (`DeviceStore`), unordered: a writer's
/// clock may be off and writes commit in any order. Readers settle them first: the store gives
/// each newly committed event the next number of one sequence (a single conditional write, so
/// that two settlers never give the same number and a number once visible has every smaller one
/// visible too). Streams keep the number they have delivered up to, so an event that commits
/// late, or whose writer's clock was slow, is still after every stream's position.
///
/// Each writer (region) keeps its own head and numbers in its own epoch ([`numbering`]): two
/// writers never give the same number, also when the primary region moves.
pub trait SignalStore: Send + Sync {
    /// Creates or replaces a receiver.
    fn put_receiver(&self, r: &Receiver) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get_receiver(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Receiver>, StoreError>> + Send;
    fn list_receivers(&self) -> impl Future<Output = Result<Vec<Receiver>, StoreError>> + Send;
    /// Creates a stream if its receiver holds fewer than `max` streams, counted in the same
    /// write (concurrent creations cannot pass the limit). `Ok(false)` at the limit.
    fn create_stream(
        &self,
        s: &Stream,
        max: usize,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Replaces a stream if it still exists at `s.version`, storing `s.version + 1`.
    /// `Ok(false)` if it was changed or deleted since it was read (nothing is written).
    fn save_stream(&self, s: &Stream) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn get_stream(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Stream>, StoreError>> + Send;
    /// Every stream, of every receiver.
    fn list_streams(&self) -> impl Future<Output = Result<Vec<Stream>, StoreError>> + Send;
    /// Deletes a stream and frees its place under its receiver's limit. `Ok(false)` if it did
    /// not exist.
    fn delete_stream(&self, s: &Stream) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Settles the outbox's events committed since the last settling (each gets the next
    /// `seq`, after every event settled before it), and other writers' events that reached this
    /// writer's copy late ([`late_ranges`]); answers the highest `seq` given so far by any
    /// writer (every settled event this store can read is at most it).
    fn settle_signals(&self, now: UnixTime)
        -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// The settled events whose `seq` is after `after` and at most `upto`, in order, at most
    /// `limit`, from at most the retention period back.
    fn signal_events(
        &self,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<SignalEvent>, StoreError>> + Send;
    /// The SETs already signed for `receiver` of the events whose `seq` is after `after` and at
    /// most `upto`, by `seq`.
    fn signed_sets(
        &self,
        receiver: &str,
        after: u64,
        upto: u64,
    ) -> impl Future<Output = Result<Vec<(u64, String)>, StoreError>> + Send;
    /// Keeps `set` as `receiver`'s SET of `event` unless one is kept already; answers the one
    /// kept (the first wins: every delivery carries the same string).
    fn keep_signed_set(
        &self,
        receiver: &str,
        event: &SignalEvent,
        set: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// Which devices have fetched their configuration since a connector's next challenge key was
/// published: `agent_config/` records it (at most once per device and next key), `connector
/// rotate` reads it before the new key signs.
pub trait RolloutStore: Send + Sync {
    /// Records that the device of the token whose key hashes to `key_sha256` (of `connector`)
    /// fetched a configuration that published `next_key`, at `at`. Nothing if the token is gone.
    fn record_config_fetch(
        &self,
        key_sha256: &str,
        connector: &str,
        next_key: &str,
        at: UnixTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every unexpired device token of the connector, with the configuration fetch it recorded.
    fn config_fetches(
        &self,
        connector: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<Vec<ConfigFetch>, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = 1_800_000_000;

    fn heads(list: &[(&str, u64)]) -> BTreeMap<String, u64> {
        list.iter().map(|(w, l)| (w.to_string(), *l)).collect()
    }

    #[test]
    fn a_writer_below_another_or_just_started_begins_a_new_epoch_above_every_head() {
        let own = SignalHead {
            last: 7,
            adopted: BTreeMap::new(),
        };
        // Alone, or the highest, and not new: numbering goes on, nothing is looked through.
        assert_eq!(numbering(&own, &heads(&[]), false, NOW), own);
        assert_eq!(numbering(&own, &heads(&[("a", 7)]), false, NOW), own);
        assert!(late_ranges(&own, &heads(&[("a", 7)])).is_empty());
        // Another writer's head is above: an epoch named after the time, what was seen accounted.
        let moved = numbering(&own, &heads(&[("a", 9)]), false, NOW);
        let base = epoch_base(NOW as u64);
        assert_eq!(
            moved,
            SignalHead {
                last: base,
                adopted: heads(&[("a", 9)])
            }
        );
        assert!(late_ranges(&moved, &heads(&[("a", 9)])).is_empty());
        // The other's later events (its last window) arrive: looked through, below the epoch.
        assert_eq!(
            late_ranges(&moved, &heads(&[("a", 12)])),
            [("a".to_string(), 9, 12)]
        );
        assert_eq!(
            late_ranges(&moved, &heads(&[("a", base + 3)])),
            [("a".to_string(), 9, base - 1)]
        );
        // Its first settling since it started: a new epoch too, also when it is the highest;
        // what it accounted for stays.
        let restarted = numbering(
            &SignalHead {
                last: base + 5,
                ..moved.clone()
            },
            &heads(&[("a", 9)]),
            true,
            NOW + 60,
        );
        assert_eq!(
            restarted,
            SignalHead {
                last: epoch_base(NOW as u64 + 60),
                adopted: heads(&[("a", 9)])
            }
        );
        // ... and what another writer settled since, arrived late, is still looked through.
        let late = numbering(
            &SignalHead {
                last: base + 5,
                ..moved.clone()
            },
            &heads(&[("a", 12)]),
            true,
            NOW + 60,
        );
        assert_eq!(late.adopted, heads(&[("a", 9)]));
        assert_eq!(
            late_ranges(&late, &heads(&[("a", 12)])),
            [("a".to_string(), 9, 12)]
        );
        // A clock behind the epochs seen: the epoch after the highest.
        let ahead = numbering(
            &moved,
            &heads(&[("a", epoch_base(NOW as u64 + 100) + 3)]),
            false,
            NOW,
        );
        assert_eq!(ahead.last, epoch_base(NOW as u64 + 101));
        // Every seq stays below 2^63 until 2106.
        assert!(epoch_base(u32::MAX as u64) + (1 << EPOCH_BITS) - 1 <= i64::MAX as u64);
        // One region: epoch 0, nothing to look through.
        assert!(late_ranges(&own, &heads(&[("a", 12)])).is_empty());
    }
}
