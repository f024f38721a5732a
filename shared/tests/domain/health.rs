//! `/health`'s decision (`endpoint_core::health`) over in-memory ports and a fixed clock: which
//! checks make a region unhealthy, and the per-instance report that bounds the AWS calls a
//! caller can cause (one round per `HEALTH_CACHE_SECONDS`).

use endpoint_core::adapters::memory::{FixedClock, MemoryDataKeys, MemoryHealth};
use endpoint_core::health::{Check, CheckState, Health, HEALTH_CACHE_SECONDS};
use endpoint_core::model::DataKeyRecord;
use endpoint_core::ports::{DataKeyRecords, KeyUse};

const KEY: &str = "alias/es-challenge";

fn healthy_region() -> (MemoryHealth, MemoryDataKeys, FixedClock) {
    let aws = MemoryHealth::new();
    aws.set_key(KEY, KeyUse::Sign, true);
    (aws, MemoryDataKeys::new(), FixedClock::new(1_000_000))
}

#[tokio::test]
async fn a_region_whose_table_and_key_answer_is_healthy() {
    let (aws, data_keys, clock) = healthy_region();
    let health = Health::new(Some(KEY.into()));
    let report = health.report(&aws, &aws, &data_keys, &clock).await;
    assert!(report.healthy(), "{report:?}");
    assert_eq!(
        report.checks,
        vec![
            (Check::Table, CheckState::Ok),
            (Check::ChallengeKey, CheckState::Ok)
        ]
    );
    // One table read and one key description: no cryptographic call exists in the port.
    assert_eq!(aws.calls(), (1, 1));
}

#[tokio::test]
async fn a_table_that_does_not_answer_makes_the_region_unavailable() {
    let (aws, data_keys, clock) = healthy_region();
    aws.set_table_fails(true);
    let report = Health::new(Some(KEY.into()))
        .report(&aws, &aws, &data_keys, &clock)
        .await;
    assert!(!report.healthy());
    assert_eq!(report.state(Check::Table), Some(CheckState::Unavailable));
    assert_eq!(report.state(Check::ChallengeKey), Some(CheckState::Ok));
}

#[tokio::test]
async fn a_disabled_missing_or_wrong_key_makes_the_region_unavailable() {
    let (aws, data_keys, clock) = healthy_region();
    aws.set_key(KEY, KeyUse::Sign, false);
    let report = Health::new(Some(KEY.into()))
        .report(&aws, &aws, &data_keys, &clock)
        .await;
    assert!(!report.healthy());
    assert_eq!(report.state(Check::Table), Some(CheckState::Ok));
    assert_eq!(
        report.state(Check::ChallengeKey),
        Some(CheckState::Unusable)
    );

    let report = Health::new(Some("alias/gone".into()))
        .report(&aws, &aws, &data_keys, &clock)
        .await;
    assert_eq!(report.state(Check::ChallengeKey), Some(CheckState::Missing));

    // An enabled key made to decrypt cannot sign challenges.
    aws.set_key("alias/symmetric", KeyUse::Wrap, true);
    let report = Health::new(Some("alias/symmetric".into()))
        .report(&aws, &aws, &data_keys, &clock)
        .await;
    assert_eq!(
        report.state(Check::ChallengeKey),
        Some(CheckState::Unusable)
    );
}

#[tokio::test]
async fn a_data_key_needs_its_record_and_an_enabled_wrapping_key() {
    let (aws, data_keys, clock) = healthy_region();
    let health = Health::new(Some("datakey:kid1".into()));
    let report = health.report(&aws, &aws, &data_keys, &clock).await;
    assert_eq!(report.state(Check::ChallengeKey), Some(CheckState::Missing));
    assert_eq!(
        aws.calls(),
        (1, 0),
        "no record: its wrapping key is not asked"
    );

    data_keys
        .put_data_key(&DataKeyRecord {
            kid: "kid1".into(),
            public_key: vec![1],
            wrapped_private_key: vec![2],
            wrapping_key: "arn:aws:kms:us-east-1:111122223333:key/mrk-wrap".into(),
            created_at: 0,
        })
        .await
        .unwrap();
    aws.set_key(
        "arn:aws:kms:us-east-1:111122223333:key/mrk-wrap",
        KeyUse::Wrap,
        false,
    );
    let health = Health::new(Some("datakey:kid1".into()));
    let report = health.report(&aws, &aws, &data_keys, &clock).await;
    assert_eq!(
        report.state(Check::ChallengeKey),
        Some(CheckState::Unusable)
    );
    aws.set_key(
        "arn:aws:kms:us-east-1:111122223333:key/mrk-wrap",
        KeyUse::Wrap,
        true,
    );
    let health = Health::new(Some("datakey:kid1".into()));
    assert!(health
        .report(&aws, &aws, &data_keys, &clock)
        .await
        .healthy());
}

#[tokio::test]
async fn a_report_is_reused_within_its_window_and_checked_again_after_it() {
    let (aws, data_keys, clock) = healthy_region();
    let health = Health::new(Some(KEY.into()));
    let first = health.report(&aws, &aws, &data_keys, &clock).await;
    assert!(first.healthy());
    // The table fails: within the window, every caller gets the report already made, and no
    // AWS call is made (100 callers, one round of calls).
    aws.set_table_fails(true);
    for _ in 0..100 {
        assert_eq!(health.report(&aws, &aws, &data_keys, &clock).await, first);
    }
    clock.advance(HEALTH_CACHE_SECONDS - 1);
    assert_eq!(health.report(&aws, &aws, &data_keys, &clock).await, first);
    assert_eq!(aws.calls(), (1, 1));

    // At the window's end: checked again, the failure seen, and that report kept in turn.
    clock.advance(1);
    let second = health.report(&aws, &aws, &data_keys, &clock).await;
    assert_eq!(second.state(Check::Table), Some(CheckState::Unavailable));
    assert_eq!(aws.calls(), (2, 2));
    aws.set_table_fails(false);
    for _ in 0..10 {
        assert!(!health
            .report(&aws, &aws, &data_keys, &clock)
            .await
            .healthy());
    }
    assert_eq!(aws.calls(), (2, 2));
    clock.advance(HEALTH_CACHE_SECONDS);
    assert!(health
        .report(&aws, &aws, &data_keys, &clock)
        .await
        .healthy());
    assert_eq!(aws.calls(), (3, 3));
}

#[tokio::test]
async fn concurrent_callers_share_one_round_of_checks() {
    let (aws, data_keys, clock) = healthy_region();
    let health = Health::new(Some(KEY.into()));
    let calls = (0..50).map(|_| health.report(&aws, &aws, &data_keys, &clock));
    let reports = futures::future::join_all(calls).await;
    assert!(reports.iter().all(|r| r.healthy()));
    assert_eq!(aws.calls(), (1, 1));
}

#[tokio::test]
async fn a_clock_set_back_does_not_keep_a_report_forever() {
    let (aws, data_keys, clock) = healthy_region();
    let health = Health::new(Some(KEY.into()));
    health.report(&aws, &aws, &data_keys, &clock).await;
    clock.advance(-3600);
    health.report(&aws, &aws, &data_keys, &clock).await;
    assert_eq!(
        aws.calls(),
        (2, 2),
        "a report from the future is not reused"
    );
}

#[tokio::test]
async fn without_a_challenge_key_only_the_table_is_checked() {
    let (aws, data_keys, clock) = healthy_region();
    let report = Health::new(Some(String::new()))
        .report(&aws, &aws, &data_keys, &clock)
        .await;
    assert_eq!(report.checks, vec![(Check::Table, CheckState::Ok)]);
    assert_eq!(aws.calls(), (1, 0));
}
