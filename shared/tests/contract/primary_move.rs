//! The signals outbox when the primary region moves, for every store: two regions' copies of
//! the table, and a stand-in for global tables' replication (last writer wins).

use std::collections::BTreeMap;

use endpoint_core::model::SignalEvent;
use endpoint_core::ports::{Store, EPOCH_BITS};

use super::signals::{signal, stream};
use super::{device, operator, token, T0};

/// How many times each event id is in `events`.
fn counts(events: &[SignalEvent]) -> BTreeMap<&str, usize> {
    let mut out = BTreeMap::new();
    for e in events {
        *out.entry(e.id.as_str()).or_default() += 1;
    }
    out
}

/// `a` and `b` are the stores of regions `use1` (the primary) and `euw1`, each on its own copy
/// of the table; `replicate(from, to)` copies every item of `from` into `to`, replacing `to`'s
/// item of the same key (a global table's replicated write that wins).
///
/// A settles `e1` (replicated) and then `e2` in its last replication window; A fails and the
/// primary moves to B, where `e3` is committed and settled; A's last window reaches B late.
/// Every event is read after the receiver's position (`e2` may be twice, at the move: same
/// `jti`); none is lost (before per-region epochs, `e3` and `e2` had the same number and one
/// write replaced the other). After the move, B numbers on without repeating anything, and a
/// move back to A numbers above B.
pub async fn primary_move<S: Store>(a: &S, b: &S, replicate: impl AsyncFn(&S, &S)) {
    let now = T0 + 10;
    let one = std::slice::from_ref;
    for s in [a, b] {
        s.enroll(
            &device("M", "m", None),
            &token("M", "c1", "m1", "km1"),
            &operator(),
        )
        .await
        .unwrap();
    }
    // A receiver's poll stream, made in the primary (A) at the log's start.
    assert!(a.create_stream(&stream("moving", "r1"), 10).await.unwrap());
    let e1 = signal(T0 + 1, "e1");
    a.put_evaluations("M", &[], &[], one(&e1)).await.unwrap();
    let h1 = a.settle_signals(now).await.unwrap();
    assert!(h1 > 0);
    // The receiver polled e1 from A.
    let mut st = a.get_stream("moving").await.unwrap().unwrap();
    st.position = h1;
    assert!(a.save_stream(&st).await.unwrap());
    replicate(a, b).await;
    // A's last replication window: e2 settled in A, not in B's copy yet.
    let e2 = signal(T0 + 2, "e2");
    a.put_evaluations("M", &[], &[], one(&e2)).await.unwrap();
    assert_eq!(a.settle_signals(now).await.unwrap(), h1 + 1);
    // A fails; B is the primary now: a check-in there commits e3, B settles it.
    let e3 = signal(T0 + 3, "e3");
    b.put_evaluations("M", &[], &[], one(&e3)).await.unwrap();
    let hb = b.settle_signals(now).await.unwrap();
    assert!(hb > h1);
    // A's last window reaches B (A came back), then B settles again (its next poll or run).
    replicate(a, b).await;
    let head = b.settle_signals(now).await.unwrap();
    let position = b.get_stream("moving").await.unwrap().unwrap().position;
    assert_eq!(position, h1, "the receiver's position, replicated");
    let read = b.signal_events(position, head, 100).await.unwrap();
    let seen = counts(&read);
    assert!(
        seen.contains_key(e3.id.as_str()),
        "e3 (settled by the new primary) is lost: {read:?}"
    );
    assert!(
        seen.contains_key(e2.id.as_str()),
        "e2 (the failed primary's last window) is lost: {read:?}"
    );
    assert_eq!(seen.len(), 2, "{read:?}");
    assert_eq!(seen[e3.id.as_str()], 1, "e3 once");
    let seqs: Vec<u64> = read.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    assert!(
        read.iter()
            .filter(|e| e.id == e3.id)
            .all(|e| e.seq >> EPOCH_BITS > h1 >> EPOCH_BITS),
        "B numbers in a new epoch: {seqs:?}"
    );
    // Normal operation on B: a new event is read once, nothing is settled twice (also when
    // A's writes are replicated again).
    let e4 = signal(T0 + 4, "e4");
    b.put_evaluations("M", &[], &[], one(&e4)).await.unwrap();
    let h4 = b.settle_signals(now).await.unwrap();
    let next = b.signal_events(head, h4, 100).await.unwrap();
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!((next[0].id.as_str(), next[0].seq), (e4.id.as_str(), h4));
    replicate(a, b).await;
    assert_eq!(b.settle_signals(now).await.unwrap(), h4, "nothing new");
    assert!(b.signal_events(h4, u64::MAX, 100).await.unwrap().is_empty());
    // The primary moves back to A once B's writes reached it: A numbers above B, nothing again.
    replicate(b, a).await;
    let e5 = signal(T0 + 5, "e5");
    a.put_evaluations("M", &[], &[], one(&e5)).await.unwrap();
    let h5 = a.settle_signals(now).await.unwrap();
    assert!(h5 >> EPOCH_BITS > h4 >> EPOCH_BITS, "{h5}");
    let back = a.signal_events(h4, h5, 100).await.unwrap();
    assert_eq!(counts(&back), BTreeMap::from([(e5.id.as_str(), 1)]));
}
