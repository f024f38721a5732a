//! The audit trail and the abuse counters, for every store.

use endpoint_core::audit::{AuditEvent, AuditKind, AuditQuery};
use endpoint_core::ports::{AuditLog, Finish, Limiter, PlanStore};

use super::{event, plan, T0};

/// A query of every record since before `T0`, changed by `f`.
fn audit_query(f: &dyn Fn(&mut AuditQuery)) -> AuditQuery {
    let mut q = AuditQuery {
        since: T0 - 100,
        limit: 100,
        ..Default::default()
    };
    f(&mut q);
    q
}

fn audit_ids(events: Vec<AuditEvent>) -> Vec<String> {
    events.into_iter().map(|e| e.id).collect()
}

/// One device's records, proven or only claimed (unverified), from its own key: newest first
/// across days, whatever order they were written in, paged.
async fn device_records<S: AuditLog>(s: &S, now: i64) {
    let (query, ids) = (audit_query, audit_ids);
    let day = 86_400;
    let s3 = [
        event(AuditKind::CheckIn, T0 + 3, "s1").device("S3"),
        event(AuditKind::EnrollmentRefused, T0 + day + 7, "s4").unverified_device("S3"),
        event(AuditKind::CheckIn, T0 + day + 1, "s2").device("S3"),
        event(AuditKind::CheckIn, T0 + day + 9, "s5").device("S3"),
        event(AuditKind::CheckIn, T0 + day + 4, "s3").device("S3"),
    ];
    for r in &s3 {
        s.record(r).await.unwrap();
    }
    let mut newest: Vec<String> = s3.iter().map(|e| e.id.clone()).collect();
    newest.sort_by(|a, b| b.cmp(a));
    let device_page = |limit, before: Option<String>| {
        query(&move |q| {
            q.device = Some("S3".into());
            q.limit = limit;
            q.before = before.clone();
        })
    };
    let first = ids(s.audit_events(&device_page(3, None), now).await.unwrap());
    assert_eq!(first, newest[..3]);
    let rest = ids(s
        .audit_events(&device_page(3, Some(first[2].clone())), now)
        .await
        .unwrap());
    assert_eq!(rest, newest[3..]);
}

/// A plan's end stores its record; a finish that does not happen stores none.
async fn plan_end_records<S: AuditLog + PlanStore>(s: &S, now: i64) {
    let (query, ids) = (audit_query, audit_ids);
    s.create_plan(&plan("pa", T0 + 100)).await.unwrap();
    let ended = event(AuditKind::StagePassed, T0 + 20, "e").plan("pa");
    assert!(s
        .finish_plan(
            "pa",
            &Finish::Passed(None),
            None,
            T0 + 20,
            Some(&ended),
            None
        )
        .await
        .unwrap());
    let lost = event(AuditKind::StageDenied, T0 + 21, "f").plan("pa");
    assert!(!s
        .finish_plan(
            "pa",
            &Finish::Denied("x".into()),
            None,
            T0 + 21,
            Some(&lost),
            None
        )
        .await
        .unwrap());
    let pa = ids(s
        .audit_events(&query(&|q| q.plan = Some("pa".into())), now)
        .await
        .unwrap());
    assert_eq!(pa, std::slice::from_ref(&ended.id));
}

/// Counters: `limit` takes per bucket, then refused; their counts read together.
async fn counters<S: Limiter>(s: &S) {
    for _ in 0..3 {
        assert!(s.take("dev#1", 3, T0 + 60).await.unwrap());
    }
    assert!(!s.take("dev#1", 3, T0 + 60).await.unwrap());
    assert!(
        s.take("dev#2", 3, T0 + 60).await.unwrap(),
        "buckets are separate"
    );
    // Their counts, read together; an unknown bucket or an ended window counts 0.
    let buckets = ["dev#1".to_string(), "dev#2".into(), "none".into()];
    assert_eq!(s.counts(&buckets, T0).await.unwrap(), [3, 1, 0]);
    assert_eq!(s.counts(&buckets, T0 + 60).await.unwrap(), [0, 0, 0]);
}

/// The audit trail (newest first, filtered, paged) and the abuse counters.
pub async fn audit<S: AuditLog + Limiter + PlanStore>(s: &S) {
    let day = 86_400;
    let records = [
        event(AuditKind::CheckIn, T0, "a")
            .device("S1")
            .connector("c1"),
        event(AuditKind::StagePassed, T0 + 10, "b")
            .plan("p1")
            .connector("c1"),
        event(AuditKind::StageDenied, T0 + day, "c")
            .plan("p2")
            .connector("c2"),
        event(AuditKind::CheckIn, T0 + day + 5, "d")
            .device("S2")
            .connector("c2"),
    ];
    for r in &records {
        s.record(r).await.unwrap();
    }
    let now = T0 + day + 10;
    let (query, ids) = (audit_query, audit_ids);
    let all = ids(s.audit_events(&query(&|_| {}), now).await.unwrap());
    let expected: Vec<String> = records.iter().rev().map(|e| e.id.clone()).collect();
    assert_eq!(all, expected, "newest first across days");
    let by_device = ids(s
        .audit_events(&query(&|q| q.device = Some("S1".into())), now)
        .await
        .unwrap());
    assert_eq!(by_device, [records[0].id.clone()]);
    let by_connector = ids(s
        .audit_events(&query(&|q| q.connector = Some("c2".into())), now)
        .await
        .unwrap());
    assert_eq!(by_connector, [records[3].id.clone(), records[2].id.clone()]);
    let by_plan = ids(s
        .audit_events(&query(&|q| q.plan = Some("p1".into())), now)
        .await
        .unwrap());
    assert_eq!(by_plan, [records[1].id.clone()]);
    let recent = ids(s
        .audit_events(&query(&|q| q.since = T0 + day), now)
        .await
        .unwrap());
    assert_eq!(recent, [records[3].id.clone(), records[2].id.clone()]);
    // Pages: two, then the two before the last id.
    let page1 = ids(s.audit_events(&query(&|q| q.limit = 2), now).await.unwrap());
    assert_eq!(page1, expected[..2]);
    let last = page1[1].clone();
    let page2 = ids(s
        .audit_events(
            &query(&|q| {
                q.limit = 2;
                q.before = Some(last.clone());
            }),
            now,
        )
        .await
        .unwrap());
    assert_eq!(page2, expected[2..]);
    device_records(s, now).await;
    plan_end_records(s, now).await;
    counters(s).await;
}
