//! The port contracts: behaviour every store adapter must have, written once and run against
//! the in-memory store (`port_contract.rs`, no emulator) and the DynamoDB store against moto
//! (`aws_dynamodb.rs`), so the two can never drift. Each function takes a fresh, empty store.
#![allow(dead_code)]

use endpoint_core::error::StoreError;
use endpoint_core::model::*;
use endpoint_core::ports::*;
use endpoint_core::secret::Secret;

pub const T0: i64 = 1_800_000_000;

fn plan(id: &str, expires_at: i64) -> Plan {
    Plan {
        id: id.into(),
        stage: "stage".into(),
        config: StageSnapshot {
            mode: StageMode::Required,
            connector: "conn".into(),
            enabled: true,
            challenge_key: Some("key".into()),
            challenge_idle_timeout: 5,
            challenge_trigger_check_in: false,
        },
        redirect: "/next".into(),
        status: PlanStatus::Pending,
        pending_challenge: None,
        challenges_issued: 0,
        device: None,
        device_auth: None,
        denial: None,
        created_at: T0,
        expires_at,
    }
}

fn device(serial: &str, name: &str, expires_at: Option<i64>) -> Device {
    Device {
        id: format!("id-of-{serial}"),
        identifier: serial.into(),
        name: name.into(),
        created_at: T0,
        expires_at,
    }
}

fn token(serial: &str, connector: &str, id: &str, key: &str) -> DeviceToken {
    DeviceToken {
        id: id.into(),
        device: serial.into(),
        connector: connector.into(),
        key: Secret::new(key),
        created_at: T0,
        expires_at: None,
    }
}

/// Plans: unique ids, expiry on read, the attempt budget, single use of a challenge, finality.
pub async fn plans<S: PlanStore>(s: &S) {
    let p = plan("p1", T0 + 100);
    s.create_plan(&p).await.unwrap();
    assert!(matches!(
        s.create_plan(&p).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(s.get_plan("p1", T0).await.unwrap(), Some(p.clone()));
    assert_eq!(s.get_plan("nope", T0).await.unwrap(), None);
    assert_eq!(
        s.get_plan("p1", T0 + 100).await.unwrap(),
        None,
        "expired on read"
    );

    // The attempt budget: exactly `max` reservations, then refusals that show the plan.
    for n in 1..=2 {
        match s.reserve_challenge("p1", 2, T0).await.unwrap() {
            Reserve::Granted(p) => assert_eq!(p.challenges_issued, n),
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        s.reserve_challenge("p1", 2, T0).await.unwrap(),
        Reserve::Refused(Some(p)) if p.challenges_issued == 2
    ));
    assert_eq!(
        s.reserve_challenge("nope", 2, T0).await.unwrap(),
        Reserve::Refused(None)
    );
    assert!(matches!(
        s.reserve_challenge("p1", 5, T0 + 100).await.unwrap(),
        Reserve::Refused(_)
    ));

    // Single use: only the pending challenge can be consumed, once.
    let pending = PendingChallenge {
        jws: "a.b.c".into(),
        exp: T0 + 300,
    };
    assert!(s.set_challenge("p1", &pending, T0).await.unwrap());
    let passed = Finish::Passed(Some(DeviceRef {
        identifier: "S".into(),
        name: "n".into(),
    }));
    assert!(!s
        .finish_plan("p1", &passed, Some("x.y.z"), T0)
        .await
        .unwrap());
    assert!(s
        .finish_plan("p1", &passed, Some("a.b.c"), T0)
        .await
        .unwrap());
    assert!(!s
        .finish_plan("p1", &passed, Some("a.b.c"), T0)
        .await
        .unwrap());
    let done = s.get_plan("p1", T0).await.unwrap().unwrap();
    assert_eq!(done.status, PlanStatus::Passed);
    assert_eq!(done.pending_challenge, None);
    assert_eq!(done.device.map(|d| d.identifier).as_deref(), Some("S"));
    // A final plan takes no new challenge and no other ending.
    assert!(!s.set_challenge("p1", &pending, T0).await.unwrap());
    assert!(!s
        .finish_plan("p1", &Finish::Denied("no".into()), None, T0)
        .await
        .unwrap());

    // Denial without a challenge.
    s.create_plan(&plan("p2", T0 + 100)).await.unwrap();
    assert!(s
        .finish_plan("p2", &Finish::Denied("Too many attempts".into()), None, T0)
        .await
        .unwrap());
    let denied = s.get_plan("p2", T0).await.unwrap().unwrap();
    assert_eq!(
        (denied.status, denied.denial.as_deref()),
        (PlanStatus::Denied, Some("Too many attempts"))
    );
    // An expired plan cannot be finished.
    s.create_plan(&plan("p3", T0 + 10)).await.unwrap();
    assert!(!s
        .finish_plan("p3", &Finish::Passed(None), None, T0 + 10)
        .await
        .unwrap());
}

/// Stages and connectors: what is put is got back whole; lists hold every connector.
pub async fn directory<S: Directory>(s: &S) {
    let mut c = Connector::new("c1", "first");
    c.challenge_key = Some("alias/k".into());
    c.challenge_key_since = Some(T0);
    c.next_key = Some(NextKey {
        key: "alias/next".into(),
        added_at: T0 + 1,
    });
    c.retired_keys = vec![RetiredKey {
        key: "old".into(),
        until: T0 + 50,
        retired_at: Some(T0),
    }];
    s.put_connector(&c).await.unwrap();
    s.put_connector(&Connector::new("c2", "second"))
        .await
        .unwrap();
    assert_eq!(s.get_connector("c1").await.unwrap(), Some(c.clone()));
    assert_eq!(s.get_connector("nope").await.unwrap(), None);
    let mut ids: Vec<String> = s
        .list_connectors()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["c1", "c2"]);
    let stage = Stage {
        id: "s1".into(),
        connector: "c1".into(),
        mode: StageMode::Required,
    };
    s.put_stage(&stage).await.unwrap();
    assert_eq!(s.get_stage("s1").await.unwrap(), Some(stage));
    assert_eq!(s.get_stage("nope").await.unwrap(), None);
    assert_eq!(
        s.get_stage("c1").await.unwrap(),
        None,
        "ids of other kinds do not collide"
    );
}

/// Devices: enrollment creates the device once (re-enrollment keeps it and replaces only that
/// connection's tokens), the token index follows, revocation, facts, deletion, expiry.
pub async fn devices<S: DeviceStore>(s: &S) {
    let serial = "VMware-56 4d 1a 2b";
    s.enroll(
        &device(serial, "first-name", None),
        &token(serial, "c1", "t1", "k1"),
    )
    .await
    .unwrap();
    s.enroll(
        &device(serial, "ignored", None),
        &token(serial, "c2", "u1", "k2"),
    )
    .await
    .unwrap();
    let mut again = device(serial, "renamed", Some(T0 + 5));
    again.id = "another-id".into();
    s.enroll(&again, &token(serial, "c1", "t2", "k3"))
        .await
        .unwrap();
    let d = s.device_with_tokens(serial, T0).await.unwrap().unwrap();
    assert_eq!(
        d.device,
        device(serial, "first-name", None),
        "kept on re-enrollment"
    );
    let mut tokens: Vec<(String, String)> = d
        .tokens
        .iter()
        .map(|t| (t.connector.clone(), t.id.clone()))
        .collect();
    tokens.sort();
    assert_eq!(
        tokens,
        [
            ("c1".to_string(), "t2".to_string()),
            ("c2".into(), "u1".into())
        ]
    );
    let hash = |k: &str| Secret::new(k).sha256_hex();
    assert_eq!(s.token_by_hash(&hash("k1"), T0).await.unwrap(), None);
    let t = s.token_by_hash(&hash("k3"), T0).await.unwrap().unwrap();
    assert_eq!(
        (t.token_id.as_str(), t.device.as_str(), t.connector.as_str()),
        ("t2", serial, "c1")
    );
    assert_eq!(
        s.get_device(serial, T0).await.unwrap().map(|d| d.id),
        Some(format!("id-of-{serial}"))
    );

    // Revocation of one connection.
    assert_eq!(s.revoke_tokens(serial, "c1").await.unwrap(), 1);
    assert_eq!(s.token_by_hash(&hash("k3"), T0).await.unwrap(), None);
    assert!(s.token_by_hash(&hash("k2"), T0).await.unwrap().is_some());

    // Facts: the newest unexpired snapshot of any connector.
    let snapshot = |connector: &str, created_at: i64, bytes: &[u8]| FactsSnapshot {
        device: serial.into(),
        connector: connector.into(),
        facts_deflate: bytes.to_vec(),
        truncated: connector == "c2",
        created_at,
        expires_at: created_at + 100,
    };
    s.put_facts(&snapshot("c1", T0, b"one")).await.unwrap();
    s.put_facts(&snapshot("c2", T0 + 10, b"two")).await.unwrap();
    assert_eq!(
        s.latest_facts(serial, T0 + 20).await.unwrap(),
        Some(snapshot("c2", T0 + 10, b"two"))
    );
    assert_eq!(
        s.latest_facts(serial, T0 + 110).await.unwrap(),
        None,
        "expired on read"
    );

    // Deletion takes the device, its tokens and index entries, and its facts.
    assert!(s.delete_device(serial).await.unwrap());
    assert!(!s.delete_device(serial).await.unwrap());
    assert_eq!(s.device_with_tokens(serial, T0).await.unwrap(), None);
    assert_eq!(s.token_by_hash(&hash("k2"), T0).await.unwrap(), None);
    assert_eq!(s.latest_facts(serial, T0 + 20).await.unwrap(), None);

    // An expired device is filtered everywhere.
    s.enroll(
        &device("OLD", "h", Some(T0 + 10)),
        &token("OLD", "c1", "o1", "k9"),
    )
    .await
    .unwrap();
    assert!(s.get_device("OLD", T0 + 9).await.unwrap().is_some());
    assert_eq!(s.get_device("OLD", T0 + 10).await.unwrap(), None);
    assert_eq!(s.device_with_tokens("OLD", T0 + 10).await.unwrap(), None);
    assert!(s
        .list_devices(T0 + 10)
        .await
        .unwrap()
        .iter()
        .all(|d| d.identifier != "OLD"));
}

/// Enrollment tokens: found by the hash of their key, until they expire.
pub async fn enrollments<S: EnrollmentStore>(s: &S) {
    let t = EnrollmentToken {
        id: "e1".into(),
        key_sha256: Secret::new("enroll-key").sha256_hex(),
        connector: "c1".into(),
        name: "laptops".into(),
        expires_at: Some(T0 + 60),
    };
    s.put_enrollment_token(&t).await.unwrap();
    assert_eq!(
        s.enrollment_token_by_hash(&t.key_sha256, T0).await.unwrap(),
        Some(t.clone())
    );
    assert_eq!(
        s.enrollment_token_by_hash(&t.key_sha256, T0 + 60)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.enrollment_token_by_hash(&Secret::new("other").sha256_hex(), T0)
            .await
            .unwrap(),
        None
    );
}
