//! Which devices have fetched a connector's next challenge key (`RolloutStore`), for every
//! store: recorded on the device token's index entry, listed by connector, live tokens only.

use endpoint_core::ports::{DeviceStore, RolloutStore};
use endpoint_core::secret::sha256_hex;

use super::{device, operator, token, T0};

pub async fn rollout<S: DeviceStore + RolloutStore>(s: &S) {
    for (serial, conn, id, key) in [
        ("S1", "c1", "t1", "k1"),
        ("S2", "c1", "t2", "k2"),
        ("S3", "c2", "t3", "k3"),
    ] {
        s.enroll(
            &device(serial, serial, None),
            &token(serial, conn, id, key),
            &operator(),
        )
        .await
        .unwrap();
    }
    // Listed by connector, none fetched yet.
    let listed = |v: Vec<endpoint_core::model::ConfigFetch>| {
        v.into_iter()
            .map(|f| (f.device, f.next_key, f.at))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed(s.config_fetches("c1", T0).await.unwrap()),
        [("S1".into(), None, None), ("S2".into(), None, None)]
    );
    // A recorded fetch is read back with the token (agent_config/'s first read) and listed.
    s.record_config_fetch(&sha256_hex(b"k1"), "c1", "next-a", T0 + 5)
        .await
        .unwrap();
    let t = s
        .token_by_hash(&sha256_hex(b"k1"), T0 + 6)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.config_next_key.as_deref(), Some("next-a"));
    assert_eq!(
        listed(s.config_fetches("c1", T0 + 6).await.unwrap()),
        [
            ("S1".into(), Some("next-a".into()), Some(T0 + 5)),
            ("S2".into(), None, None)
        ]
    );
    assert_eq!(s.config_fetches("c2", T0).await.unwrap().len(), 1);
    assert!(s.config_fetches("c3", T0).await.unwrap().is_empty());
    // A token that is gone is neither recreated nor listed.
    assert_eq!(s.revoke_tokens("S2", "c1").await.unwrap(), 1);
    s.record_config_fetch(&sha256_hex(b"k2"), "c1", "next-a", T0 + 7)
        .await
        .unwrap();
    assert!(s
        .token_by_hash(&sha256_hex(b"k2"), T0 + 7)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        listed(s.config_fetches("c1", T0 + 7).await.unwrap()),
        [("S1".into(), Some("next-a".into()), Some(T0 + 5))]
    );
    // Re-enrolling replaces the token: the new one has fetched nothing yet.
    s.enroll(
        &device("S1", "S1", None),
        &token("S1", "c1", "t4", "k4"),
        &operator(),
    )
    .await
    .unwrap();
    assert_eq!(
        listed(s.config_fetches("c1", T0 + 8).await.unwrap()),
        [("S1".into(), None, None)]
    );
    // Expired tokens are not live.
    let mut short = token("S5", "c1", "t5", "k5");
    short.expires_at = Some(T0 + 10);
    s.enroll(&device("S5", "S5", None), &short, &operator())
        .await
        .unwrap();
    assert_eq!(s.config_fetches("c1", T0 + 9).await.unwrap().len(), 2);
    assert_eq!(s.config_fetches("c1", T0 + 10).await.unwrap().len(), 1);
}
