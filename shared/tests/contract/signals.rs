//! The device lock and the signal outbox, for every store.

use endpoint_core::model::{CaepStatus, DeviceLock, InitiatingEntity, SignalEvent};
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

/// A signal event of the outbox at `time`.
fn signal(time: i64, tag: &str) -> SignalEvent {
    SignalEvent {
        id: format!("{time:011}-{tag}"),
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

/// The outbox: signal events are written with their change (evaluations, a lock), read back
/// oldest first across days, after a cursor, a page at a time; a refused write writes none.
pub async fn outbox<S: Store>(s: &S) {
    s.enroll(
        &device("O", "o", None),
        &token("O", "c1", "o1", "ko1"),
        &operator(),
    )
    .await
    .unwrap();
    let day = 86_400;
    let (a, b, c) = (
        signal(T0, "a"),
        signal(T0 + day, "b"),
        signal(T0 + day + 1, "c"),
    );
    s.put_evaluations("O", &[], &[], std::slice::from_ref(&b))
        .await
        .unwrap();
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
    let now = T0 + day + 10;
    let all = s.signal_events(None, 10, now).await.unwrap();
    assert_eq!(
        all,
        [a.clone(), b.clone(), c.clone()],
        "oldest first, across days"
    );
    let page = s.signal_events(None, 2, now).await.unwrap();
    assert_eq!(page, [a.clone(), b.clone()]);
    let rest = s.signal_events(Some(&b.id), 10, now).await.unwrap();
    assert_eq!(rest, [c]);
    assert!(s
        .signal_events(Some(&rest[0].id), 10, now)
        .await
        .unwrap()
        .is_empty());
}
