//! Why a plan was denied or a response refused, for the person (the outcome's `reason`): each
//! situation of the decision table gets its reason, and a plan answered again keeps it.

use endpoint_core::admin;
use endpoint_core::model::{DenialReason, StageMode};
use endpoint_core::secret::Secret;
use endpoint_core::stage::Outcome;

use crate::common::{Fx, KEY};
use crate::decision_table::dth_fixture;

/// The reason of a denial (panics on anything else).
fn denial_reason(o: &Outcome) -> Option<DenialReason> {
    match o {
        Outcome::Denied { reason, .. } => *reason,
        other => panic!("expected a denial, got {other:?}"),
    }
}

/// The reason of a refused response's new challenge (panics on anything else).
fn refusal_reason(o: &Outcome) -> Option<DenialReason> {
    match o {
        Outcome::Challenge {
            invalid_response: true,
            reason,
            ..
        } => *reason,
        other => panic!("expected a retry challenge, got {other:?}"),
    }
}

#[tokio::test]
async fn no_answer_is_no_response_and_stays_so_when_answered_again() {
    let fx = Fx::new();
    let (_, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let plan = fx.plan(&s.id).await;
    fx.challenge(&plan).await;
    let first = fx.post(&plan, None).await.unwrap();
    assert_eq!(denial_reason(&first), Some(DenialReason::NoResponse));
    // The final outcome read back from the stored plan (GET and POST) keeps the reason.
    assert_eq!(fx.post(&plan, Some("")).await.unwrap(), first);
    assert_eq!(fx.get(&plan, None).await.unwrap(), first);
}

#[tokio::test]
async fn a_refused_response_says_whether_the_device_is_enrolled() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    fx.enroll(&c.id, "SERIAL1").await;
    let plan = fx.plan(&s.id).await;
    let challenge = fx.challenge(&plan).await;
    // An enrolled device whose answer does not verify.
    let wrong = fx.respond("SERIAL1", &Secret::new("wrong"), &challenge);
    let out = fx.post(&plan, Some(&wrong)).await.unwrap();
    assert_eq!(refusal_reason(&out), Some(DenialReason::InvalidResponse));
    // A device this connector does not know.
    let Outcome::Challenge { jws, .. } = out else {
        unreachable!()
    };
    let stranger = fx.respond("NOT-ENROLLED", &Secret::new("any"), &jws);
    let out = fx.post(&plan, Some(&stranger)).await.unwrap();
    assert_eq!(refusal_reason(&out), Some(DenialReason::NotEnrolled));
    // A fresh challenge (GET) carries no reason.
    assert!(matches!(
        fx.get(&plan, None).await.unwrap(),
        Outcome::Challenge {
            invalid_response: false,
            reason: None,
            ..
        }
    ));
}

#[tokio::test]
async fn a_misconfigured_stage_is_unavailable() {
    let fx = Fx::new();
    let (_, s) = fx.setup(StageMode::Required, Some(KEY), false).await;
    let plan = fx.plan(&s.id).await;
    let out = fx.get(&plan, None).await.unwrap();
    assert_eq!(denial_reason(&out), Some(DenialReason::Unavailable));
}

#[tokio::test]
async fn a_plan_out_of_attempts_must_be_started_again_as_an_expired_one() {
    let fx = Fx::new();
    let (_, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let plan = fx.plan(&s.id).await;
    for _ in 0..fx.settings.max_challenges_per_plan {
        fx.challenge(&plan).await;
    }
    let out = fx.get(&plan, None).await.unwrap();
    assert_eq!(denial_reason(&out), Some(DenialReason::Expired));
}

#[tokio::test]
async fn a_wrong_device_token_is_a_device_not_enrolled_for_the_stage() {
    let fx = Fx::new();
    let (plan, _) = dth_fixture(&fx, StageMode::Required).await;
    let out = fx.get(&plan, Some(&"0".repeat(64))).await.unwrap();
    assert_eq!(denial_reason(&out), Some(DenialReason::NotEnrolled));
}

#[tokio::test]
async fn a_locked_device_is_device_locked_without_the_lock_reason() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let key = fx.enroll(&c.id, "LOCKED-1").await;
    admin::lock_device(
        &fx.store,
        &fx.clock,
        &fx.rng,
        "LOCKED-1",
        None,
        Some("stolen, ticket 42"),
    )
    .await
    .unwrap();
    let plan = fx.plan(&s.id).await;
    let jws = fx.challenge(&plan).await;
    let out = fx
        .post(&plan, Some(&fx.respond("LOCKED-1", &key, &jws)))
        .await
        .unwrap();
    assert_eq!(denial_reason(&out), Some(DenialReason::DeviceLocked));
    // The operator's reason is for administrators only.
    let Outcome::Denied { message, .. } = &out else {
        unreachable!()
    };
    assert!(!message.contains("stolen"), "{message}");
}
