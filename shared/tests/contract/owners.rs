//! Device owners, for every store: set, read back by every read of a device, cleared; an
//! enrollment with an owner sets it (replacing those of an existing device), one without keeps
//! them; enrollment tokens keep their owner.

use endpoint_core::ports::Store;

use super::{device, enrollment_token, hash_of, operator, token, T0};

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Every read of the device the login, the agent and the operator use shows `owners`.
async fn reads_show<S: Store>(s: &S, serial: &str, owners: &[&str]) {
    let owners = names(owners);
    let with_tokens = s.device_with_tokens(serial, T0).await.unwrap().unwrap();
    assert_eq!(with_tokens.device.owners, owners, "device_with_tokens");
    let (profiled, _) = s.device_profile(serial, T0).await.unwrap().unwrap();
    assert_eq!(profiled.owners, owners, "device_profile");
    let (info, _) = s.device_token_info(serial, T0).await.unwrap().unwrap();
    assert_eq!(info.owners, owners, "device_token_info");
    let got = s.get_device(serial, T0).await.unwrap().unwrap();
    assert_eq!(got.owners, owners, "get_device");
    let listed = s.list_devices(T0).await.unwrap();
    let listed = listed.iter().find(|d| d.identifier == serial).unwrap();
    assert_eq!(listed.owners, owners, "list_devices");
}

pub async fn device_owners<S: Store>(s: &S) {
    s.enroll(
        &device("O", "o", None),
        &token("O", "c1", "o1", "ko1"),
        &operator(),
    )
    .await
    .unwrap();
    reads_show(s, "O", &[]).await;
    let two = names(&["alice@example.com", "bob"]);
    assert!(s.set_device_owners("O", &two).await.unwrap());
    reads_show(s, "O", &["alice@example.com", "bob"]).await;
    assert!(!s.set_device_owners("nobody", &two).await.unwrap());
    assert!(s.get_device("nobody", T0).await.unwrap().is_none());

    // Re-enrolled without an owner: the owners stay.
    s.enroll(
        &device("O", "o", None),
        &token("O", "c1", "o2", "ko2"),
        &operator(),
    )
    .await
    .unwrap();
    reads_show(s, "O", &["alice@example.com", "bob"]).await;
    // Re-enrolled with an owner (an enrollment token's): that person alone.
    let mut handed_over = device("O", "o", None);
    handed_over.owners = names(&["carol@example.com"]);
    s.enroll(&handed_over, &token("O", "c1", "o3", "ko3"), &operator())
        .await
        .unwrap();
    reads_show(s, "O", &["carol@example.com"]).await;
    // A new device enrolled with an owner has it.
    let mut fresh = device("P", "p", None);
    fresh.owners = names(&["dave"]);
    s.enroll(&fresh, &token("P", "c1", "p1", "kp1"), &operator())
        .await
        .unwrap();
    reads_show(s, "P", &["dave"]).await;
    // Cleared.
    assert!(s.set_device_owners("O", &[]).await.unwrap());
    reads_show(s, "O", &[]).await;

    // An enrollment token keeps its owner.
    let mut t = enrollment_token("et-owner", "key-owner");
    t.owner = Some("erin@example.com".into());
    s.put_enrollment_token(&t).await.unwrap();
    let read = s
        .enrollment_token_by_hash(&hash_of("key-owner"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.owner.as_deref(), Some("erin@example.com"));
    assert_eq!(read, t);
}
