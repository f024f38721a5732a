//! The ports of the Shared Signals transmitter (receivers, streams, the outbox's order, kept
//! SETs) and of the challenge key rollout (which devices fetched the next key).

use std::future::Future;

use crate::error::StoreError;
use crate::model::{ConfigFetch, Receiver, SignalEvent, Stream, UnixTime};

/// Shared Signals receivers, their streams, and the outbox's order.
///
/// Writers put events in the outbox with their change (`DeviceStore`), unordered: a writer's
/// clock may be off and writes commit in any order. Readers settle them first: the store gives
/// each newly committed event the next number of one sequence (a single conditional write, so
/// that two settlers never give the same number and a number once visible has every smaller one
/// visible too). Streams keep the number they have delivered up to, so an event that commits
/// late, or whose writer's clock was slow, is still after every stream's position.
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
    /// `seq`, after every event settled before it) and answers the highest `seq` given so far.
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
