//! What the device assertion and the DTH path ask of every store: a passed plan keeps one
//! assertion (the first kept wins), and the token and its device (with its lock) are read
//! together.

use endpoint_core::model::{DeviceLock, DeviceRef};
use endpoint_core::ports::{Finish, PlanStore, Store};
use endpoint_core::secret::sha256_hex;

use super::{device, operator, plan, token, T0};

/// A passed plan keeps the first assertion kept; a pending or unknown plan keeps none.
pub async fn kept_assertions<S: PlanStore>(s: &S) {
    s.create_plan(&plan("pa", T0 + 100)).await.unwrap();
    assert_eq!(
        s.keep_assertion("pa", "first").await.unwrap(),
        None,
        "a pending plan has no assertion"
    );
    let device = DeviceRef {
        id: Some("00000000-0000-4000-8000-00000000000b".into()),
        identifier: "S".into(),
        name: "n".into(),
    };
    assert!(s
        .finish_plan("pa", &Finish::Passed(Some(device)), None, T0, None, None)
        .await
        .unwrap());
    assert_eq!(
        s.keep_assertion("pa", "first").await.unwrap().as_deref(),
        Some("first")
    );
    // A concurrent first read that signed too loses: it answers the kept one.
    assert_eq!(
        s.keep_assertion("pa", "second").await.unwrap().as_deref(),
        Some("first")
    );
    let read = s.get_plan("pa", T0).await.unwrap().unwrap();
    assert_eq!(read.assertion.as_deref(), Some("first"));
    assert_eq!(s.keep_assertion("nope", "x").await.unwrap(), None);
    // A denied plan keeps none either.
    s.create_plan(&plan("pd", T0 + 100)).await.unwrap();
    assert!(s
        .finish_plan("pd", &Finish::Denied("no".into()), None, T0, None, None)
        .await
        .unwrap());
    assert_eq!(s.keep_assertion("pd", "x").await.unwrap(), None);
}

/// The token of a hash and the device, with its lock, in one read; unknown ones are `None`.
pub async fn token_and_device<S: Store>(s: &S) {
    s.enroll(
        &device("D", "d", None),
        &token("D", "c1", "d1", "kd1"),
        &operator(),
    )
    .await
    .unwrap();
    let lock = DeviceLock {
        since: T0,
        until: None,
        reason: Some("lost".into()),
    };
    assert!(s.set_device_lock("D", Some(&lock), None).await.unwrap());
    let hash = sha256_hex("kd1".as_bytes());
    let (t, d) = s.token_and_device(&hash, "D", T0).await.unwrap();
    let t = t.expect("the token");
    assert_eq!(
        (t.token_id.as_str(), t.device.as_str(), t.connector.as_str()),
        ("d1", "D", "c1")
    );
    let d = d.expect("the device");
    assert_eq!(d.lock.as_ref(), Some(&lock), "the lock comes with it");
    let (t, d) = s.token_and_device(&"0".repeat(64), "D", T0).await.unwrap();
    assert!(t.is_none() && d.is_some(), "an unknown hash has no token");
    let (t, d) = s.token_and_device(&hash, "NOBODY", T0).await.unwrap();
    assert!(t.is_some() && d.is_none(), "an unknown device is none");
    // Revoked: the token is gone, the device stays.
    s.revoke_tokens("D", "c1").await.unwrap();
    let (t, d) = s.token_and_device(&hash, "D", T0).await.unwrap();
    assert!(t.is_none() && d.is_some());
}
