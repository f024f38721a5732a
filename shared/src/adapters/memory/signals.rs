//! Shared Signals in memory: receivers, streams (versioned, at most so many per receiver), and
//! the outbox's order (events settled one at a time, each after every one settled before it).

use super::MemoryStore;
use crate::error::StoreError;
use crate::model::{Receiver, SignalEvent, Stream, UnixTime};
use crate::ports::SignalStore;

impl SignalStore for MemoryStore {
    async fn put_receiver(&self, r: &Receiver) -> Result<(), StoreError> {
        self.lock()?.receivers.insert(r.id.clone(), r.clone());
        Ok(())
    }

    async fn get_receiver(&self, id: &str) -> Result<Option<Receiver>, StoreError> {
        Ok(self.lock()?.receivers.get(id).cloned())
    }

    async fn list_receivers(&self) -> Result<Vec<Receiver>, StoreError> {
        Ok(self.lock()?.receivers.values().cloned().collect())
    }

    async fn create_stream(&self, st: &Stream, max: usize) -> Result<bool, StoreError> {
        let mut g = self.lock()?;
        let held = g.streams.values().filter(|s| s.receiver == st.receiver);
        if held.count() >= max || g.streams.contains_key(&st.id) {
            return Ok(false);
        }
        g.streams.insert(st.id.clone(), st.clone());
        Ok(true)
    }

    async fn save_stream(&self, st: &Stream) -> Result<bool, StoreError> {
        let mut g = self.lock()?;
        match g.streams.get_mut(&st.id) {
            Some(current) if current.version == st.version => {
                *current = Stream {
                    version: st.version + 1,
                    ..st.clone()
                };
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn get_stream(&self, id: &str) -> Result<Option<Stream>, StoreError> {
        Ok(self.lock()?.streams.get(id).cloned())
    }

    async fn list_streams(&self) -> Result<Vec<Stream>, StoreError> {
        Ok(self.lock()?.streams.values().cloned().collect())
    }

    async fn delete_stream(&self, st: &Stream) -> Result<bool, StoreError> {
        Ok(self.lock()?.streams.remove(&st.id).is_some())
    }

    async fn settle_signals(&self, _now: UnixTime) -> Result<u64, StoreError> {
        let mut g = self.lock()?;
        let mut pending = std::mem::take(&mut g.signals);
        pending.sort_by(|a, b| a.id.cmp(&b.id));
        for mut e in pending {
            e.seq = g.settled.len() as u64 + 1;
            g.settled.push(e);
        }
        Ok(g.settled.len() as u64)
    }

    async fn signal_events(
        &self,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<SignalEvent>, StoreError> {
        let g = self.lock()?;
        Ok(g.settled
            .iter()
            .filter(|e| e.seq > after && e.seq <= upto)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn signed_sets(
        &self,
        receiver: &str,
        after: u64,
        upto: u64,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let g = self.lock()?;
        if after >= upto {
            return Ok(Vec::new());
        }
        let range = (receiver.to_string(), after + 1)..=(receiver.to_string(), upto);
        Ok(g.signed
            .range(range)
            .map(|((_, seq), set)| (*seq, set.clone()))
            .collect())
    }

    async fn keep_signed_set(
        &self,
        receiver: &str,
        event: &SignalEvent,
        set: &str,
        _now: UnixTime,
    ) -> Result<String, StoreError> {
        let mut g = self.lock()?;
        Ok(g.signed
            .entry((receiver.to_string(), event.seq))
            .or_insert_with(|| set.to_string())
            .clone())
    }
}
