//! Shared Signals in memory: receivers, streams (versioned, at most so many per receiver), and
//! the outbox's order (events settled one at a time, each after every one settled before it,
//! numbered as the writer this store is: `ports::numbering`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::MemoryStore;
use crate::error::StoreError;
use crate::model::{Receiver, SignalEvent, Stream, UnixTime};
use crate::ports::{late_ranges, numbering, SignalStore};

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

    async fn settle_signals(&self, now: UnixTime) -> Result<u64, StoreError> {
        let mut g = self.lock()?;
        let own = g
            .heads
            .get(&self.signal_writer)
            .cloned()
            .unwrap_or_default();
        let others: BTreeMap<String, u64> = g
            .heads
            .iter()
            .filter(|(w, _)| **w != self.signal_writer)
            .map(|(w, h)| (w.clone(), h.last))
            .collect();
        let top = others.values().copied().max().unwrap_or(0);
        let first = !self.signal_writer.is_empty() && !self.numbered.load(Ordering::SeqCst);
        let mut head = numbering(&own, &others, first, now);
        // Other writers' events below this writer's epoch that arrived late: settled again.
        let (mut late, mut looked) = (Vec::new(), false);
        for (writer, after, upto) in late_ranges(&head, &others) {
            for (w, e) in g.settled.range(after + 1..=upto).map(|(_, v)| v) {
                if *w == writer {
                    late.push(e.clone());
                }
            }
            head.adopted.insert(writer, upto);
            looked = true;
        }
        let mut pending = std::mem::take(&mut g.signals);
        pending.sort_by(|a, b| a.id.cmp(&b.id));
        if !looked && pending.is_empty() {
            // Nothing to number: a new epoch begins with its first event.
            return Ok(own.last.max(top));
        }
        for mut e in late.into_iter().chain(pending) {
            head.last += 1;
            e.seq = head.last;
            g.settled.insert(head.last, (self.signal_writer.clone(), e));
        }
        let last = head.last;
        g.heads.insert(self.signal_writer.clone(), head);
        self.numbered.store(true, Ordering::SeqCst);
        Ok(last.max(top))
    }

    async fn signal_events(
        &self,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<SignalEvent>, StoreError> {
        let g = self.lock()?;
        if after >= upto {
            return Ok(Vec::new());
        }
        Ok(g.settled
            .range(after + 1..=upto)
            .take(limit)
            .map(|(_, (_, e))| e.clone())
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
