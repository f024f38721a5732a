//! The device lock and the signal outbox, for every store.

use endpoint_core::model::{
    CaepStatus, DeliveryMethod, DeviceLock, InitiatingEntity, SignalEvent, Stream, StreamStatus,
};
use endpoint_core::ports::Store;

use super::{device, operator, token, T0};

/// A device's lock: set, read with the device (also by the login's query and the agent's
/// profile read), lifted; unknown devices are reported.
pub async fn device_lock<S: Store>(s: &S) {
    s.enroll(
        &device("L", "l", None),
        &token("L", "c1", "l1", "kl1"),
        &operator(),
    )
    .await
    .unwrap();
    let lock = DeviceLock {
        since: T0,
        until: Some(T0 + 100),
        reason: Some("stolen".into()),
    };
    assert!(s.set_device_lock("L", Some(&lock), None).await.unwrap());
    assert!(!s
        .set_device_lock("nobody", Some(&lock), None)
        .await
        .unwrap());
    let read = s.device_with_tokens("L", T0).await.unwrap().unwrap();
    assert_eq!(read.device.lock.as_ref(), Some(&lock));
    assert!(read.device.lock_at(T0 + 99).is_some() && read.device.lock_at(T0 + 100).is_none());
    let (profiled, _) = s.device_profile("L", T0).await.unwrap().unwrap();
    assert_eq!(profiled.lock.as_ref(), Some(&lock));
    // Until unlocked, without a reason.
    let open_ended = DeviceLock {
        since: T0,
        until: None,
        reason: None,
    };
    assert!(s
        .set_device_lock("L", Some(&open_ended), None)
        .await
        .unwrap());
    let read = s.get_device("L", T0).await.unwrap().unwrap();
    assert_eq!(read.lock, Some(open_ended));
    // Re-enrollment keeps the lock.
    s.enroll(
        &device("L", "l", None),
        &token("L", "c1", "l2", "kl2"),
        &operator(),
    )
    .await
    .unwrap();
    assert!(s
        .get_device("L", T0)
        .await
        .unwrap()
        .unwrap()
        .lock_at(T0 + 10_000)
        .is_some());
    assert!(s.set_device_lock("L", None, None).await.unwrap());
    assert_eq!(s.get_device("L", T0).await.unwrap().unwrap().lock, None);
}

/// A signal event of the outbox at `time` (its writer's clock).
pub(super) fn signal(time: i64, tag: &str) -> SignalEvent {
    SignalEvent {
        id: format!("{time:011}-{tag}"),
        seq: 0,
        time,
        device_id: "00000000-0000-4000-8000-000000000001".into(),
        serial: "O".into(),
        previous_status: CaepStatus::Compliant,
        current_status: CaepStatus::NotCompliant,
        initiating_entity: InitiatingEntity::Policy,
        reason: format!("event {tag}"),
        txn: tag.into(),
    }
}

fn settled(e: &SignalEvent, seq: u64) -> SignalEvent {
    SignalEvent { seq, ..e.clone() }
}

/// The outbox: signal events are written with their change (evaluations, a lock), settled in
/// the order they are committed whatever their writers' clocks said (an event written late by
/// a writer whose clock is a day slow comes after one already read), read after a position, a
/// page at a time; a refused write writes none; concurrent settlings give each event one
/// number; a receiver's SET of an event is kept once (the first wins).
pub async fn outbox<S: Store>(s: &S) {
    s.enroll(
        &device("O", "o", None),
        &token("O", "c1", "o1", "ko1"),
        &operator(),
    )
    .await
    .unwrap();
    let day = 86_400;
    let now = T0 + day + 10;
    let (a, b, c) = (
        signal(T0, "a"),
        signal(T0 + day, "b"),
        signal(T0 + day + 1, "c"),
    );
    let h0 = s.settle_signals(now).await.unwrap();
    s.put_evaluations("O", &[], &[], std::slice::from_ref(&b))
        .await
        .unwrap();
    let h1 = s.settle_signals(now).await.unwrap();
    assert_eq!(h1, h0 + 1);
    assert_eq!(
        s.signal_events(h0, h1, 10).await.unwrap(),
        [settled(&b, h1)]
    );
    // A reader is past `b` now. A writer whose clock is a day slow commits `a`; a lock commits
    // `c` with its event.
    s.put_evaluations("O", &[], &[], std::slice::from_ref(&a))
        .await
        .unwrap();
    let lock = DeviceLock {
        since: T0,
        until: None,
        reason: None,
    };
    assert!(s.set_device_lock("O", Some(&lock), Some(&c)).await.unwrap());
    // An unknown device: no lock, and no event either.
    let lost = signal(T0 + day + 2, "lost");
    assert!(!s
        .set_device_lock("nobody", Some(&lock), Some(&lost))
        .await
        .unwrap());
    // Not settled yet: not readable.
    assert!(s.signal_events(h1, h1 + 10, 10).await.unwrap().is_empty());
    let h2 = s.settle_signals(now).await.unwrap();
    assert_eq!(h2, h1 + 2, "a and c, not the lost one");
    assert_eq!(
        s.signal_events(h1, h2, 10).await.unwrap(),
        [settled(&a, h1 + 1), settled(&c, h1 + 2)],
        "after the reader's position, although a's writer stamped it a day early"
    );
    assert_eq!(
        s.signal_events(h0, h2, 2).await.unwrap(),
        [settled(&b, h1), settled(&a, h1 + 1)],
        "a page"
    );
    assert!(s.signal_events(h2, h2, 10).await.unwrap().is_empty());
    assert_eq!(s.settle_signals(now).await.unwrap(), h2, "nothing new");
    // Concurrent settlings of new events: each gets exactly one number.
    let more: Vec<SignalEvent> = (0..5).map(|i| signal(T0 + i, &format!("m{i}"))).collect();
    for e in &more {
        s.put_evaluations("O", &[], &[], std::slice::from_ref(e))
            .await
            .unwrap();
    }
    let (x, y) = futures::join!(s.settle_signals(now), s.settle_signals(now));
    // Each answers a head that holds every event committed before it was called.
    let h3 = h2 + 5;
    assert_eq!((x.unwrap(), y.unwrap()), (h3, h3));
    let read = s.signal_events(h2, h3, 10).await.unwrap();
    let seqs: Vec<u64> = read.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (h2 + 1..=h3).collect::<Vec<_>>());
    let mut ids: Vec<&str> = read.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "01800000000-m0",
            "01800000001-m1",
            "01800000002-m2",
            "01800000003-m3",
            "01800000004-m4"
        ]
    );
    // A receiver's SET of an event: the first kept wins.
    let first = settled(&a, h1 + 1);
    assert_eq!(
        s.keep_signed_set("r1", &first, "set-1", now).await.unwrap(),
        "set-1"
    );
    assert_eq!(
        s.keep_signed_set("r1", &first, "set-2", now).await.unwrap(),
        "set-1"
    );
    assert_eq!(
        s.keep_signed_set("r2", &first, "set-3", now).await.unwrap(),
        "set-3"
    );
    assert_eq!(
        s.signed_sets("r1", h1, h2).await.unwrap(),
        [(h1 + 1, "set-1".to_string())]
    );
    assert!(s.signed_sets("r1", h1 + 1, h2).await.unwrap().is_empty());
}

/// A poll stream of `receiver`, enabled, at the start of the log (tests build others from it).
pub fn stream(id: &str, receiver: &str) -> Stream {
    Stream {
        id: id.into(),
        receiver: receiver.into(),
        method: DeliveryMethod::Poll,
        endpoint_url: None,
        authorization_header: None,
        events_requested: Vec::new(),
        description: None,
        status: StreamStatus::Enabled,
        status_reason: None,
        position: 0,
        version: 0,
        verification: None,
        created_at: T0,
        failures: 0,
        failing_since: None,
        last_error: None,
        next_attempt: None,
    }
}

/// Streams: at most `max` per receiver also when created concurrently; a write is conditioned
/// on the version read (a stale copy is refused, a deleted stream does not come back); a
/// deletion frees a place; a push stream's authorization header reads back as written.
pub async fn streams<S: Store>(s: &S) {
    let made = futures::future::join_all((0..14).map(|i| async move {
        s.create_stream(&stream(&format!("s{i:02}"), "r1"), 10)
            .await
    }))
    .await;
    let created = made.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(created, 10, "concurrent creations stop at the limit");
    assert!(
        s.create_stream(&stream("other", "r2"), 10).await.unwrap(),
        "per receiver"
    );
    let mine: Vec<Stream> = s
        .list_streams()
        .await
        .unwrap()
        .into_iter()
        .filter(|x| x.receiver == "r1")
        .collect();
    assert_eq!(mine.len(), 10);
    // Versions: a write of what was read succeeds once; the stale copy is refused.
    let read = s.get_stream(&mine[0].id).await.unwrap().unwrap();
    let mut changed = read.clone();
    changed.description = Some("new".into());
    assert!(s.save_stream(&changed).await.unwrap());
    let mut stale = read.clone();
    stale.position = 7;
    assert!(
        !s.save_stream(&stale).await.unwrap(),
        "a stale copy is refused"
    );
    let now = s.get_stream(&read.id).await.unwrap().unwrap();
    assert_eq!(
        (now.version, now.description.as_deref(), now.position),
        (read.version + 1, Some("new"), 0)
    );
    // A deleted stream does not come back; its place is free again.
    assert!(s.delete_stream(&now).await.unwrap());
    assert!(!s.delete_stream(&now).await.unwrap());
    assert!(!s.save_stream(&now).await.unwrap(), "no resurrection");
    assert!(s.get_stream(&now.id).await.unwrap().is_none());
    assert!(s.create_stream(&stream("again", "r1"), 10).await.unwrap());
    assert!(!s.create_stream(&stream("over", "r1"), 10).await.unwrap());
    // A push stream's authorization header reads back as written.
    let mut push = stream("push", "r3");
    push.method = DeliveryMethod::Push;
    push.endpoint_url = Some("https://receiver.example/events".into());
    push.authorization_header = Some("Bearer secret-of-r3".into());
    assert!(s.create_stream(&push, 10).await.unwrap());
    let back = s.get_stream("push").await.unwrap().unwrap();
    assert_eq!(
        back.authorization_header.as_deref(),
        Some("Bearer secret-of-r3")
    );
    let mut moved = back.clone();
    moved.position = 3;
    assert!(s.save_stream(&moved).await.unwrap());
    let back = s.get_stream("push").await.unwrap().unwrap();
    assert_eq!(
        (back.authorization_header.as_deref(), back.position),
        (Some("Bearer secret-of-r3"), 3)
    );
}
