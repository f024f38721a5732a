//! The port contracts: behaviour every store adapter must have, written once and run against
//! the in-memory store (`port_contract.rs`, no emulator) and the DynamoDB store against moto
//! (`aws_dynamodb.rs`), so the two can never drift. Each function takes a fresh, empty store.
#![allow(dead_code)]

use endpoint_core::audit::{AuditEvent, AuditKind, AuditQuery, Caller};
use endpoint_core::error::StoreError;
use endpoint_core::model::{
    Connector, Device, DeviceRef, DeviceToken, EnrollmentToken, ExistingSerial, FactsSnapshot,
    NextKey, PendingChallenge, Plan, PlanStatus, RetiredKey, Stage, StageMode, StageSnapshot,
    TokenInfo,
};
use endpoint_core::ports::{
    DeviceStore, Directory, EnrollGrant, EnrollOutcome, EnrollmentStore, Finish, PlanStore,
    Reserve, Store,
};
use endpoint_core::secret::Secret;

mod assertion;
mod audit;
mod oidc;
mod owners;
mod primary_move;
mod rollout;
pub mod signals;

pub use assertion::{kept_assertions, token_and_device};
pub use audit::audit;
pub use oidc::oidc_store;
pub use owners::device_owners;
pub use primary_move::primary_move;
pub use rollout::rollout;
pub use signals::{device_lock, outbox, streams};

/// The suites' one fixed time, from the shared test support.
pub use crate::common::T0;

/// A pending plan of a required stage (the contract suites and the DynamoDB suite share it).
pub fn plan(id: &str, expires_at: i64) -> Plan {
    Plan::pending(
        id,
        "stage",
        StageSnapshot {
            policy: None,
            mode: StageMode::Required,
            connector: "conn".into(),
            enabled: true,
            challenge_key: Some("key".into()),
            challenge_idle_timeout: 5,
            challenge_trigger_check_in: false,
            // The operator's help travels with the plan (the stores keep it as written).
            help: Some(endpoint_core::model::StageHelp {
                text: Some("Ask the help desk <x> & co.".into()),
                url: Some("https://help.example.com/device?a=1&b=2".into()),
            }),
        },
        "/next",
        T0,
        expires_at,
    )
}

fn device(serial: &str, name: &str, expires_at: Option<i64>) -> Device {
    Device {
        lock: None,
        owners: Vec::new(),
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

/// An operator's enrollment at T0: no policy, no enrollment token.
fn operator() -> EnrollGrant {
    EnrollGrant {
        existing: ExistingSerial::Approved,
        enrollment_token: None,
        now: T0,
        audit: None,
    }
}

fn event(kind: AuditKind, time: i64, random: &str) -> AuditEvent {
    AuditEvent::new(kind, time, random, "device:S".into(), &Caller::UNKNOWN)
}

/// The attempt budget of `p1`: exactly `max` reservations, then refusals that show the plan.
async fn attempt_budget<S: PlanStore>(s: &S) {
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
}

/// Denial without a challenge; an expired plan cannot be finished.
async fn denials_and_expiry<S: PlanStore>(s: &S) {
    s.create_plan(&plan("p2", T0 + 100)).await.unwrap();
    assert!(s
        .finish_plan(
            "p2",
            &Finish::Denied("Too many attempts".into()),
            None,
            T0,
            None,
            None
        )
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
        .finish_plan("p3", &Finish::Passed(None), None, T0 + 10, None, None)
        .await
        .unwrap());
}

/// Plans: unique ids, expiry on read, the attempt budget, single use of a challenge, finality.
pub async fn plans<S: PlanStore>(s: &S) {
    let mut p = plan("p1", T0 + 100);
    // What its device assertion will carry round-trips with it.
    p.nonce = Some("n-0S6_WzA2Mj".into());
    p.audience = Some("https://app.example".into());
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

    attempt_budget(s).await;

    // Single use: only the pending challenge can be consumed, once.
    let pending = PendingChallenge {
        jws: "a.b.c".into(),
        exp: T0 + 300,
    };
    assert!(s.set_challenge("p1", &pending, T0).await.unwrap());
    let device = DeviceRef {
        id: Some("00000000-0000-4000-8000-00000000000a".into()),
        identifier: "S".into(),
        name: "n".into(),
    };
    let passed = Finish::Passed(Some(device.clone()));
    assert!(!s
        .finish_plan("p1", &passed, Some("x.y.z"), T0, None, None)
        .await
        .unwrap());
    assert!(s
        .finish_plan("p1", &passed, Some("a.b.c"), T0, None, None)
        .await
        .unwrap());
    assert!(!s
        .finish_plan("p1", &passed, Some("a.b.c"), T0, None, None)
        .await
        .unwrap());
    let done = s.get_plan("p1", T0).await.unwrap().unwrap();
    assert_eq!(done.status, PlanStatus::Passed);
    assert_eq!(done.pending_challenge, None);
    assert_eq!(done.device, Some(device), "with its stable id");
    assert_eq!(done.ended_at, Some(T0));
    // A final plan takes no new challenge and no other ending.
    assert!(!s.set_challenge("p1", &pending, T0).await.unwrap());
    assert!(!s
        .finish_plan("p1", &Finish::Denied("no".into()), None, T0, None, None)
        .await
        .unwrap());

    denials_and_expiry(s).await;
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
        redirect_origins: None,
        audiences: Vec::new(),
        help: None,
        policy: None,
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

/// Revocation of one connection of `serial` (tokens `k3` on c1, `k2` on c2), its facts, and
/// its deletion.
async fn revocation_facts_and_deletion<S: DeviceStore>(s: &S, serial: &str) {
    let hash = |k: &str| Secret::new(k).sha256_hex();
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
}

/// An expired device is filtered everywhere.
async fn expired_devices_are_filtered<S: DeviceStore>(s: &S) {
    s.enroll(
        &device("OLD", "h", Some(T0 + 10)),
        &token("OLD", "c1", "o1", "k9"),
        &operator(),
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

/// What an operator sees of `serial`: the same tokens, without their keys.
async fn operator_view<S: DeviceStore>(s: &S, serial: &str, device: &Device) {
    let (shown, mut infos) = s.device_token_info(serial, T0).await.unwrap().unwrap();
    assert_eq!(&shown, device);
    infos.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        infos,
        [
            TokenInfo {
                id: "t2".into(),
                connector: "c1".into(),
                created_at: T0,
                expires_at: None
            },
            TokenInfo {
                id: "u1".into(),
                connector: "c2".into(),
                created_at: T0,
                expires_at: None
            }
        ]
    );
    assert_eq!(s.device_token_info("nobody", T0).await.unwrap(), None);
}

/// Devices: enrollment creates the device once (re-enrollment keeps it and replaces only that
/// connection's tokens), the token index follows, revocation, facts, deletion, expiry.
pub async fn devices<S: DeviceStore>(s: &S) {
    let serial = "VMware-56 4d 1a 2b";
    s.enroll(
        &device(serial, "first-name", None),
        &token(serial, "c1", "t1", "k1"),
        &operator(),
    )
    .await
    .unwrap();
    s.enroll(
        &device(serial, "ignored", None),
        &token(serial, "c2", "u1", "k2"),
        &operator(),
    )
    .await
    .unwrap();
    let mut again = device(serial, "renamed", Some(T0 + 5));
    again.id = "another-id".into();
    assert_eq!(
        s.enroll(&again, &token(serial, "c1", "t2", "k3"), &operator())
            .await
            .unwrap(),
        EnrollOutcome::Enrolled {
            existed: true,
            replaced: true,
        }
    );
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
    operator_view(s, serial, &d.device).await;
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

    revocation_facts_and_deletion(s, serial).await;
    expired_devices_are_filtered(s).await;
}

fn enrollment_token(id: &str, key: &str) -> EnrollmentToken {
    EnrollmentToken {
        id: id.into(),
        key_sha256: Secret::new(key).sha256_hex(),
        connector: "c1".into(),
        name: "laptops".into(),
        expires_at: Some(T0 + 60),
        created_at: Some(T0),
        max_uses: None,
        serial: None,
        owner: None,
        uses: 0,
        last_used_at: None,
        revoked_at: None,
    }
}

/// Enrollment tokens: found by the hash of their key (also once expired or revoked: the
/// domain says why it refuses), listed, revoked.
pub async fn enrollments<S: EnrollmentStore>(s: &S) {
    let mut t = enrollment_token("e1", "enroll-key");
    t.max_uses = Some(3);
    t.serial = Some("SER-1".into());
    s.put_enrollment_token(&t).await.unwrap();
    s.put_enrollment_token(&enrollment_token("e2", "other-key"))
        .await
        .unwrap();
    assert_eq!(
        s.enrollment_token_by_hash(&t.key_sha256).await.unwrap(),
        Some(t.clone())
    );
    assert_eq!(
        s.enrollment_token_by_hash(&Secret::new("nope").sha256_hex())
            .await
            .unwrap(),
        None
    );
    let mut ids: Vec<String> = s
        .list_enrollment_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["e1", "e2"]);
    assert!(s
        .revoke_enrollment_token(&t.key_sha256, T0 + 5)
        .await
        .unwrap());
    assert!(s
        .revoke_enrollment_token(&t.key_sha256, T0 + 9)
        .await
        .unwrap());
    assert_eq!(
        s.enrollment_token_by_hash(&t.key_sha256)
            .await
            .unwrap()
            .and_then(|t| t.revoked_at),
        Some(T0 + 5),
        "the first revocation's time stays"
    );
    assert!(!s
        .revoke_enrollment_token(&Secret::new("nope").sha256_hex(), T0)
        .await
        .unwrap());
}

/// A grant of the enrollment token `hash` at `now`, with its audit record.
fn grant(hash: &str, existing: ExistingSerial, now: i64) -> EnrollGrant {
    EnrollGrant {
        existing,
        enrollment_token: Some(hash.to_string()),
        now,
        audit: Some(event(AuditKind::EnrollmentAccepted, now, "e")),
    }
}

/// A general token on connector `target`, with the connectors that are open.
fn general(target: &str, open: &[&str]) -> ExistingSerial {
    ExistingSerial::OnlyIfOpen {
        target: target.into(),
        open: open.iter().map(|c| c.to_string()).collect(),
    }
}

/// Serial `A` enrolling on `conn` with device token `id`/`key`.
fn enroll(conn: &str, id: &str, key: &str) -> (Device, DeviceToken) {
    (device("A", "a", None), token("A", conn, id, key))
}

fn hash_of(key: &str) -> String {
    Secret::new(key).sha256_hex()
}

/// Approved (a token bound to the serial, or an operator), serial `A` enrolls again; with
/// everything open too; the token `hash` (4 uses) is then used up.
async fn approvals_and_uses<S: Store>(s: &S, hash: &str) {
    let grant = |existing, now| grant(hash, existing, now);
    let (d, tk) = enroll("c1", "a4", "ka4");
    let approved = s
        .enroll(&d, &tk, &grant(ExistingSerial::Approved, T0 + 3))
        .await
        .unwrap();
    assert_eq!(
        approved,
        EnrollOutcome::Enrolled {
            existed: true,
            replaced: false
        }
    );
    // Everything open (the target and every connector of the serial): the reference's way.
    let (d, tk) = enroll("c1", "a5", "ka5");
    let all_open = grant(general("c1", &["c1", "c2"]), T0 + 4);
    let open = s.enroll(&d, &tk, &all_open).await.unwrap();
    assert_eq!(
        open,
        EnrollOutcome::Enrolled {
            existed: true,
            replaced: true
        }
    );
    assert_eq!(
        s.token_by_hash(&hash_of("ka4"), T0 + 4).await.unwrap(),
        None
    );
    assert!(s
        .token_by_hash(&hash_of("ka5"), T0 + 4)
        .await
        .unwrap()
        .is_some());
    // A new connection on an approve connector, approved; then that connector is not open,
    // so a general token is refused even where the target is.
    let (d, tk) = enroll("c3", "c1", "kc1");
    let third = s
        .enroll(&d, &tk, &grant(ExistingSerial::Approved, T0 + 5))
        .await
        .unwrap();
    assert_eq!(
        third,
        EnrollOutcome::Enrolled {
            existed: true,
            replaced: false
        }
    );
    // The token is now used up (4 of 4): refused whatever the rule.
    let used_up = s
        .enroll(
            &device("B", "b", None),
            &token("B", "c1", "x1", "kx1"),
            &grant(ExistingSerial::Approved, T0 + 6),
        )
        .await
        .unwrap();
    assert_eq!(used_up, EnrollOutcome::TokenRefused);
    assert_eq!(
        s.get_device("B", T0 + 6).await.unwrap(),
        None,
        "nothing written"
    );
    let stored = s.enrollment_token_by_hash(hash).await.unwrap().unwrap();
    assert_eq!((stored.uses, stored.last_used_at), (4, Some(T0 + 5)));
    let serials: Vec<String> = s
        .enrollment_token_uses(hash)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.serial)
        .collect();
    assert_eq!(serials, ["A"], "one entry per serial");
}

/// A revoked or expired enrollment token refuses.
async fn expired_and_revoked_tokens_refuse<S: Store>(s: &S) {
    let mut other = enrollment_token("g2", "other-key");
    other.expires_at = Some(T0 + 50);
    s.put_enrollment_token(&other).await.unwrap();
    let other_grant = |now| EnrollGrant {
        existing: ExistingSerial::Approved,
        enrollment_token: Some(other.key_sha256.clone()),
        now,
        audit: None,
    };
    let new_device =
        |id: &'static str, key: &'static str| (device("C", "c", None), token("C", "c1", id, key));
    let (d, tk) = new_device("c1", "kc1");
    let expired = s.enroll(&d, &tk, &other_grant(T0 + 50)).await.unwrap();
    assert_eq!(expired, EnrollOutcome::TokenRefused, "expired");
    s.revoke_enrollment_token(&other.key_sha256, T0 + 6)
        .await
        .unwrap();
    let (d, tk) = new_device("c2", "kc2");
    let revoked = s.enroll(&d, &tk, &other_grant(T0 + 7)).await.unwrap();
    assert_eq!(revoked, EnrollOutcome::TokenRefused, "revoked");
}

/// Enrollment under a grant: the re-enrollment rule for existing serials (any connector, live
/// or revoked tokens), enrollment token use counting (atomic with the enrollment), the audit
/// record in the same write.
pub async fn enrollment_grants<S: Store>(s: &S) {
    let key = "grant-key";
    let mut t = enrollment_token("g1", key);
    t.max_uses = Some(4);
    s.put_enrollment_token(&t).await.unwrap();
    let hash = Secret::new(key).sha256_hex();
    let grant = |existing, now| grant(&hash, existing, now);
    let (d, tk) = enroll("c1", "a1", "ka1");
    let first = s
        .enroll(&d, &tk, &grant(general("c1", &[]), T0))
        .await
        .unwrap();
    assert_eq!(
        first,
        EnrollOutcome::Enrolled {
            existed: false,
            replaced: false
        }
    );
    // The serial exists: refused on the same connector, nothing written, no use counted.
    let (d, tk) = enroll("c1", "a2", "ka2");
    let refused = s
        .enroll(&d, &tk, &grant(general("c1", &[]), T0 + 1))
        .await
        .unwrap();
    assert_eq!(refused, EnrollOutcome::NeedsApproval);
    assert!(s
        .token_by_hash(&hash_of("ka1"), T0 + 1)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        s.token_by_hash(&hash_of("ka2"), T0 + 1).await.unwrap(),
        None
    );
    let uses = || async {
        s.enrollment_token_by_hash(&hash)
            .await
            .unwrap()
            .map(|t| t.uses)
    };
    assert_eq!(uses().await, Some(1));
    // ... on another connector, even an open one (the side door), and after its tokens were
    // revoked (a stolen laptop).
    let (d, tk) = enroll("c2", "b1", "kb1");
    let side_door = s
        .enroll(&d, &tk, &grant(general("c2", &["c2"]), T0 + 1))
        .await
        .unwrap();
    assert_eq!(side_door, EnrollOutcome::NeedsApproval);
    assert_eq!(s.revoke_tokens("A", "c1").await.unwrap(), 1);
    let (d, tk) = enroll("c1", "a3", "ka3");
    let revoked = s
        .enroll(&d, &tk, &grant(general("c1", &[]), T0 + 2))
        .await
        .unwrap();
    assert_eq!(revoked, EnrollOutcome::NeedsApproval);
    assert_eq!(uses().await, Some(1));
    approvals_and_uses(s, &hash).await;
    expired_and_revoked_tokens_refuse(s).await;
    // Every accepted enrollment carried its audit record (4 with the `g1` token).
    let q = AuditQuery {
        since: T0,
        limit: 100,
        ..Default::default()
    };
    let recorded = s.audit_events(&q, T0 + 10).await.unwrap();
    assert_eq!(recorded.len(), 4, "{recorded:?}");
}
