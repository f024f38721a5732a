//! Issue 29 (3-5) in the domain: registered audiences, `auth_ia/` plans closed to relying
//! parties, one device assertion per plan valid until `auth_time + 300`, the lock on the DTH
//! path, and every denial of an identified device in that device's history.

use endpoint_core::admin;
use endpoint_core::agent;
use endpoint_core::assertion::{plan_assertion, AssertionView, ASSERTION_LIFETIME};
use endpoint_core::audit::AuditQuery;
use endpoint_core::error::CoreError;
use endpoint_core::model::{StageMode, MSG_DEVICE_LOCKED};
use endpoint_core::ports::{AuditLog, Clock};
use endpoint_core::protocol::keys::KeySpec;
use endpoint_core::secret::Secret;
use endpoint_core::stage::{self, PlanOptions};

use crate::common::{denied, passed, Fx, KEY};

const ISSUER: &str = "https://api.example";

/// An assertion key beside the challenge key.
fn with_assertion_key(mut fx: Fx) -> Fx {
    fx.signer
        .generate("assertion", KeySpec::EccNistP256)
        .unwrap();
    fx
}

async fn read_assertion(fx: &Fx, plan: &str) -> AssertionView {
    let read = fx.store.raw_plan(plan).unwrap();
    let now = fx.clock.now();
    plan_assertion(
        &fx.store,
        &fx.signer,
        "assertion",
        ISSUER,
        &read,
        now,
        &fx.rng,
    )
    .await
    .unwrap()
}

/// A plan of `stage` passed by the device `serial` (key `key`) at the clock's time.
async fn passed_plan(fx: &Fx, stage: &str, serial: &str, key: &Secret) -> String {
    let plan = fx.plan(stage).await;
    let jws = fx.challenge(&plan).await;
    let answer = fx.respond(serial, key, &jws);
    assert_eq!(fx.post(&plan, Some(&answer)).await.unwrap(), passed());
    plan
}

fn claims_of(jws: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jws.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_passed_plan_has_one_assertion_until_five_minutes_after_it_passed() {
    let fx = with_assertion_key(Fx::new());
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let key = fx.enroll(&c.id, "ONCE-1").await;
    let plan = passed_plan(&fx, &s.id, "ONCE-1", &key).await;
    let auth_time = fx.clock.now();

    fx.clock.advance(10);
    let AssertionView::Signed(first) = read_assertion(&fx, &plan).await else {
        panic!("a passed plan's first read signs its assertion");
    };
    let claims = claims_of(&first);
    assert_eq!(claims["auth_time"], auth_time);
    assert_eq!(claims["iat"], auth_time + 10);
    assert_eq!(
        claims["exp"],
        auth_time + ASSERTION_LIFETIME,
        "bound to auth_time"
    );
    // Every later read answers the same string (kept with the plan), even once locked.
    admin::lock_device(&fx.store, &fx.clock, &fx.rng, "ONCE-1", None, None)
        .await
        .unwrap();
    fx.clock.advance(100);
    assert_eq!(
        read_assertion(&fx, &plan).await,
        AssertionView::Signed(first.clone())
    );
    assert_eq!(fx.plan_state(&plan).assertion, Some(first));
    // From auth_time + 300 on: none (the plan still reads passed).
    fx.clock.set(auth_time + ASSERTION_LIFETIME);
    assert_eq!(read_assertion(&fx, &plan).await, AssertionView::Expired);
}

#[tokio::test]
async fn a_plan_first_read_after_five_minutes_is_never_signed() {
    let fx = with_assertion_key(Fx::new());
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let key = fx.enroll(&c.id, "ONCE-2").await;
    let plan = passed_plan(&fx, &s.id, "ONCE-2", &key).await;
    fx.clock.advance(ASSERTION_LIFETIME + 1);
    assert_eq!(read_assertion(&fx, &plan).await, AssertionView::Expired);
    assert_eq!(
        fx.plan_state(&plan).assertion,
        None,
        "nothing signed or kept"
    );
    // A pending plan has none at all.
    let pending = fx.plan(&s.id).await;
    assert_eq!(read_assertion(&fx, &pending).await, AssertionView::Absent);
}

#[tokio::test]
async fn a_plan_may_ask_only_for_its_stage_or_a_registered_audience() {
    let fx = Fx::new();
    let (_, s) = fx.setup(StageMode::Optional, Some(KEY), true).await;
    let ask = |audience: &str| {
        let options = PlanOptions {
            audience: Some(audience.to_string()),
            ..PlanOptions::default()
        };
        let (fx, stage) = (&fx, s.id.clone());
        async move { stage::create_plan_with(&fx.store, &fx.env(), &stage, &options, None).await }
    };
    assert!(ask(&s.id).await.is_ok(), "the stage id is always allowed");
    assert!(matches!(
        ask("https://rp.example").await,
        Err(CoreError::BadRequest(_))
    ));
    let set = admin::set_audiences(&fx.store, &s.id, &["https://rp.example".into()])
        .await
        .unwrap();
    assert_eq!(set.audiences, ["https://rp.example"]);
    assert!(ask("https://rp.example").await.is_ok());
    assert!(matches!(
        ask("https://other.example").await,
        Err(CoreError::BadRequest(_))
    ));
    // Replaced: the old one is refused again; bad or too many audiences are refused.
    admin::set_audiences(&fx.store, &s.id, &[]).await.unwrap();
    assert!(matches!(
        ask("https://rp.example").await,
        Err(CoreError::BadRequest(_))
    ));
    let too_many: Vec<String> = (0..21).map(|i| format!("aud-{i}")).collect();
    for bad in [vec![String::new()], vec!["a\u{7}".into()], too_many] {
        assert!(matches!(
            admin::set_audiences(&fx.store, &s.id, &bad).await,
            Err(CoreError::BadRequest(_))
        ));
    }
}

#[tokio::test]
async fn interactive_auth_plans_are_not_readable_by_relying_parties() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    admin::set_interactive_stage(&fx.store, &c.id, &s.id)
        .await
        .unwrap();
    let key = fx.enroll(&c.id, "IA-1").await;
    let auth = format!("Bearer+agent {}", key.expose());
    let ia = agent::auth_ia(&fx.store, &fx.env(), Some(&auth))
        .await
        .unwrap();
    assert!(ia.plan.starts_with("ia_"));
    let read = stage::read_own_plan(&fx.store, &fx.env(), &ia.plan).await;
    assert!(matches!(read, Err(CoreError::NotFound(_))), "{read:?}");
    // The executor still serves it (the plan id is the capability there).
    assert!(stage::read_plan(&fx.store, &fx.clock, &ia.plan)
        .await
        .is_ok());
}

/// The stage_denied records of `serial`'s history: their reasons, oldest first.
async fn denials_of(fx: &Fx, serial: &str) -> Vec<String> {
    let q = AuditQuery {
        device: Some(serial.to_string()),
        limit: 100,
        ..Default::default()
    };
    let mut reasons: Vec<String> = fx
        .store
        .audit_events(&q, fx.clock.now())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.code == "ES102W")
        .map(|e| {
            assert_eq!(e.device.as_deref(), Some(serial));
            e.reason.unwrap_or_default()
        })
        .collect();
    reasons.reverse();
    reasons
}

#[tokio::test]
async fn a_lock_holds_on_the_dth_path_at_once_and_both_denials_name_the_device() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    admin::set_interactive_stage(&fx.store, &c.id, &s.id)
        .await
        .unwrap();
    let key = fx.enroll(&c.id, "DTH-LOCK").await;
    let auth = format!("Bearer+agent {}", key.expose());
    // The plan (and its token link, valid for minutes) is made before the lock.
    let ia = agent::auth_ia(&fx.store, &fx.env(), Some(&auth))
        .await
        .unwrap();
    admin::lock_device(&fx.store, &fx.clock, &fx.rng, "DTH-LOCK", None, None)
        .await
        .unwrap();
    let dth = key.sha256_hex();
    assert_eq!(
        fx.get(&ia.plan, Some(&dth)).await.unwrap(),
        denied(MSG_DEVICE_LOCKED),
        "the DTH path reads the lock with the token"
    );
    let plan = fx.plan(&s.id).await;
    let jws = fx.challenge(&plan).await;
    let answer = fx.respond("DTH-LOCK", &key, &jws);
    assert_eq!(
        fx.post(&plan, Some(&answer)).await.unwrap(),
        denied(MSG_DEVICE_LOCKED)
    );
    assert_eq!(
        denials_of(&fx, "DTH-LOCK").await,
        ["device_locked", "device_locked"]
    );
}
