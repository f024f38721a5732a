//! The weaknesses of the reference's protocol that we close (its late, replayed, malformed and
//! skewed responses, unknown devices, expired tokens), and hostile responses, over the in-memory
//! store with deterministic time. Each test is named after what it asserts.

use crate::common::{denied, forge, is_retry, passed, Fx, KEY, T0};
use endpoint_core::model::{Device, DeviceToken, PlanStatus, StageMode};
use endpoint_core::ports::{Clock, PlanStore};
use endpoint_core::protocol::challenge::CHALLENGE_LIFETIME;
use endpoint_core::secret::Secret;
use endpoint_core::stage::{self, Outcome};
use endpoint_core::CoreError;
use serde_json::json;

use super::decision_table::AUD;

#[tokio::test]
async fn a_response_after_its_challenges_own_exp_is_refused() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let key = fx.enroll(&c.id, "SERIAL1").await;
    // One second before the challenge's own exp (iat + CHALLENGE_LIFETIME): a fresh response
    // passes.
    let plan = fx.plan(&s.id).await;
    let ch = fx.challenge(&plan).await;
    fx.clock.advance(CHALLENGE_LIFETIME - 1);
    assert_eq!(
        fx.post(&plan, Some(&fx.respond("SERIAL1", &key, &ch)))
            .await
            .unwrap(),
        passed()
    );
    // One second after it: a response made just now (valid in itself) is refused.
    let plan = fx.plan(&s.id).await;
    let ch = fx.challenge(&plan).await;
    fx.clock.advance(CHALLENGE_LIFETIME + 1);
    assert!(is_retry(
        &fx.post(&plan, Some(&fx.respond("SERIAL1", &key, &ch)))
            .await
            .unwrap()
    ));
    assert_eq!(fx.plan_state(&plan).status, PlanStatus::Pending);
}

#[tokio::test]
async fn a_response_passes_once_and_its_replay_answers_the_final_outcome() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let key = fx.enroll(&c.id, "SERIAL1").await;
    let plan = fx.plan(&s.id).await;
    let challenge = fx.challenge(&plan).await;
    let response = fx.respond("SERIAL1", &key, &challenge);
    assert_eq!(fx.post(&plan, Some(&response)).await.unwrap(), passed());
    assert_eq!(
        fx.post(&plan, Some(&response)).await.unwrap(),
        passed(),
        "the final outcome, not a second pass"
    );
    assert_eq!(fx.store.consumed_challenges(), 1);
}

#[tokio::test]
async fn two_concurrent_consumers_of_one_challenge_one_wins() {
    let fx = std::sync::Arc::new(Fx::new());
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let key = fx.enroll(&c.id, "SERIAL1").await;
    let plan = fx.plan(&s.id).await;
    let challenge = fx.challenge(&plan).await;
    let pending = fx.plan_state(&plan).pending_challenge.unwrap();
    let finish = endpoint_core::ports::Finish::Passed(None);
    // The store operation itself, from two tasks at once.
    let (a, b) = tokio::join!(
        fx.store
            .finish_plan(&plan, &finish, Some(&pending.jws), T0, None, None),
        fx.store
            .finish_plan(&plan, &finish, Some(&pending.jws), T0, None, None)
    );
    assert_eq!([a.unwrap(), b.unwrap()].iter().filter(|w| **w).count(), 1);

    // And the whole operation, on a fresh plan, from several spawned tasks.
    let plan = fx.plan(&s.id).await;
    let challenge2 = fx.challenge(&plan).await;
    let response = fx.respond("SERIAL1", &key, &challenge2);
    let before = fx.store.consumed_challenges();
    let mut handles = vec![];
    for _ in 0..8 {
        let (fx, plan, response) = (fx.clone(), plan.clone(), response.clone());
        handles.push(tokio::spawn(async move {
            fx.post(&plan, Some(&response)).await
        }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap().unwrap(), passed());
    }
    assert_eq!(fx.store.consumed_challenges() - before, 1);
    let _ = challenge;
}

#[tokio::test]
async fn missing_or_mistyped_claims_are_an_invalid_response_not_a_crash() {
    use endpoint_core::protocol::response::{Invalid, ParsedResponse};
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let key = fx.enroll(&c.id, "SERIAL1").await;
    let plan = fx.plan(&s.id).await;
    let challenge = fx.challenge(&plan).await;
    let now = fx.clock.now();
    let h = json!({"typ": "JWT", "alg": "HS512"});
    let good =
        json!({"iss": "SERIAL1", "aud": AUD, "atc": challenge, "iat": now, "exp": now + 300});
    let mut cases = vec![];
    for field in ["iss", "atc", "aud", "exp"] {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(field);
        cases.push(c);
    }
    for (field, value) in [
        ("atc", json!(5)),
        ("atc", json!(null)),
        ("iss", json!(["SERIAL1"])),
        ("exp", json!("soon")),
        ("iat", json!({})),
        ("aud", json!([1])),
    ] {
        let mut c = good.clone();
        c[field] = value;
        cases.push(c);
    }
    for claims in &cases {
        let forged = forge(&h, claims, key.expose().as_bytes());
        assert_eq!(
            ParsedResponse::parse(&forged).err(),
            Some(Invalid::BadClaims),
            "{claims}"
        );
    }
    // Through the whole operation: an ordinary invalid response (a new challenge), no error.
    let forged = forge(&h, &cases[1], key.expose().as_bytes());
    assert!(is_retry(&fx.post(&plan, Some(&forged)).await.unwrap()));
    // The well-formed version of the same claims passes.
    let ch = fx.plan_state(&plan).pending_challenge.unwrap().jws;
    let mut ok = good.clone();
    ok["atc"] = json!(ch);
    assert_eq!(
        fx.post(&plan, Some(&forge(&h, &ok, key.expose().as_bytes())))
            .await
            .unwrap(),
        passed()
    );
}

#[test]
fn duplicated_claims_are_invalid() {
    use endpoint_core::protocol::b64url;
    use endpoint_core::protocol::response::{Invalid, ParsedResponse};
    let input = format!(
        "{}.{}",
        b64url(br#"{"alg":"HS512"}"#),
        b64url(
            br#"{"iss":"A","iss":"B","aud":"goauthentik.io/platform/endpoint","atc":"x","exp":1}"#
        )
    );
    let sig = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(b"k"),
        jsonwebtoken::Algorithm::HS512,
    )
    .unwrap();
    assert_eq!(
        ParsedResponse::parse(&format!("{input}.{sig}")).err(),
        Some(Invalid::BadClaims)
    );
}

#[tokio::test]
async fn an_unknown_device_is_an_ordinary_invalid_response() {
    use endpoint_core::protocol::response::{validate, Expected, Invalid};
    let fx = Fx::new();
    let (_, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let plan = fx.plan(&s.id).await;
    let ch = fx.challenge(&plan).await;
    let r = fx.respond("NOBODY", &Secret::new("k"), &ch);
    let expected = Expected {
        challenge: Some((&ch, T0 + CHALLENGE_LIFETIME)),
        connector: "c",
        now: T0,
        leeway: 30,
    };
    assert_eq!(validate(&r, None, &expected), Err(Invalid::UnknownDevice));
    assert!(is_retry(&fx.post(&plan, Some(&r)).await.unwrap()));
}

#[tokio::test]
async fn device_clock_skew_passes_within_the_30_s_leeway_and_not_beyond() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let key = fx.enroll(&c.id, "SERIAL1").await;
    let h = json!({"typ": "JWT", "alg": "HS512"});
    let cases = [
        (20, 300, true),   // device clock 20 s fast: iat in the future within leeway
        (40, 300, false),  // 40 s fast: beyond the 30 s leeway
        (-310, -10, true), // slow device: exp 10 s ago, within leeway
        (-340, -31, false),
    ];
    for (iat_off, exp_off, ok) in cases {
        let plan = fx.plan(&s.id).await;
        let challenge = fx.challenge(&plan).await;
        let now = fx.clock.now();
        let claims = json!({"iss": "SERIAL1", "aud": AUD, "atc": challenge, "iat": now + iat_off, "exp": now + exp_off});
        let out = fx
            .post(&plan, Some(&forge(&h, &claims, key.expose().as_bytes())))
            .await
            .unwrap();
        assert_eq!(
            out == passed(),
            ok,
            "iat {iat_off:+} exp {exp_off:+}: {out:?}"
        );
    }
    let plan = fx.plan(&s.id).await;
    let challenge = fx.challenge(&plan).await;
    let now = fx.clock.now();
    let claims =
        json!({"iss": "SERIAL1", "aud": AUD, "atc": challenge, "nbf": now + 45, "exp": now + 300});
    assert!(is_retry(
        &fx.post(&plan, Some(&forge(&h, &claims, key.expose().as_bytes())))
            .await
            .unwrap()
    ));
}

#[tokio::test]
async fn expired_device_tokens_and_devices_never_validate() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    // A token that expires at T0 + 100.
    let key = Secret::new("k".repeat(128));
    use endpoint_core::ports::DeviceStore;
    fx.store
        .enroll(
            &Device {
                lock: None,
                owners: Vec::new(),
                id: "00000000-0000-4000-8000-000000000000".into(),
                identifier: "S".into(),
                name: "h".into(),
                created_at: T0,
                expires_at: Some(T0 + 200),
            },
            &DeviceToken {
                id: "t".into(),
                device: "S".into(),
                connector: c.id.clone(),
                key: key.clone(),
                created_at: T0,
                expires_at: Some(T0 + 100),
            },
            &endpoint_core::ports::EnrollGrant {
                existing: endpoint_core::model::ExistingSerial::Approved,
                enrollment_token: None,
                now: T0,
                audit: None,
            },
        )
        .await
        .unwrap();
    fx.clock.set(T0 + 99);
    assert_eq!(
        fx.login(&s.id, "S", &key).await.1,
        passed(),
        "1 s before token expiry"
    );
    fx.clock.set(T0 + 101);
    assert!(
        is_retry(&fx.login(&s.id, "S", &key).await.1),
        "1 s after token expiry"
    );

    // The device expires at T0 + 200 (with an unexpired token).
    fx.store.add_token(DeviceToken {
        id: "t2".into(),
        device: "S".into(),
        connector: c.id.clone(),
        key: key.clone(),
        created_at: T0,
        expires_at: None,
    });
    fx.clock.set(T0 + 199);
    assert_eq!(
        fx.login(&s.id, "S", &key).await.1,
        passed(),
        "1 s before device expiry"
    );
    fx.clock.set(T0 + 201);
    assert!(
        is_retry(&fx.login(&s.id, "S", &key).await.1),
        "1 s after device expiry"
    );
}

// ---- hostile responses ----

#[tokio::test]
async fn responses_signed_with_another_devices_or_connectors_token_fail() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let (c2, _) = fx.setup(StageMode::Required, Some(KEY), true).await;
    fx.enroll(&c.id, "SERIAL1").await;
    let other_device = fx.enroll(&c.id, "SERIAL2").await;
    let other_connector = fx.enroll(&c2.id, "SERIAL1").await;
    let plan = fx.plan(&s.id).await;
    let ch = fx.challenge(&plan).await;
    // SERIAL1's claims signed with SERIAL2's key.
    assert!(is_retry(
        &fx.post(&plan, Some(&fx.respond("SERIAL1", &other_device, &ch)))
            .await
            .unwrap()
    ));
    let ch = fx.plan_state(&plan).pending_challenge.unwrap().jws;
    // SERIAL1's token of another connector.
    assert!(is_retry(
        &fx.post(&plan, Some(&fx.respond("SERIAL1", &other_connector, &ch)))
            .await
            .unwrap()
    ));
    // SERIAL2 answering with its own key is fine: the stage passes for SERIAL2.
    let ch = fx.plan_state(&plan).pending_challenge.unwrap().jws;
    assert_eq!(
        fx.post(&plan, Some(&fx.respond("SERIAL2", &other_device, &ch)))
            .await
            .unwrap(),
        passed()
    );
}

#[tokio::test]
async fn other_algorithms_are_refused() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let key = fx.enroll(&c.id, "SERIAL1").await;
    let plan = fx.plan(&s.id).await;
    let ch = fx.challenge(&plan).await;
    let now = fx.clock.now();
    let claims = json!({"iss": "SERIAL1", "aud": AUD, "atc": ch, "iat": now, "exp": now + 300});
    use endpoint_core::protocol::b64url;
    let body = format!(
        "{}.{}",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(claims.to_string().as_bytes())
    );
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key.expose().as_bytes()),
    )
    .unwrap();
    // An HS512 MAC under a header that claims RS256.
    let rs256 = forge(
        &json!({"alg": "RS256", "typ": "JWT"}),
        &claims,
        key.expose().as_bytes(),
    );
    for r in [format!("{body}."), format!("{body}.AAAA"), hs256, rs256] {
        assert!(is_retry(&fx.post(&plan, Some(&r)).await.unwrap()), "{r}");
    }
}

#[tokio::test]
async fn truncated_garbage_and_oversized_responses_are_invalid() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let key = fx.enroll(&c.id, "SERIAL1").await;
    let plan = fx.plan(&s.id).await;
    let ch = fx.challenge(&plan).await;
    let good = fx.respond("SERIAL1", &key, &ch);
    let oversized = format!("{good}{}", "A".repeat(20_000));
    for r in [
        &good[..good.len() - 1],
        &good[..good.len() / 2],
        "garbage",
        "a.b.c",
        "....",
        &oversized,
    ] {
        assert!(is_retry(&fx.post(&plan, Some(r)).await.unwrap()));
    }
}

#[tokio::test]
async fn atc_must_be_the_whole_challenge_of_this_plan() {
    let fx = Fx::new();
    let (c, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let key = fx.enroll(&c.id, "SERIAL1").await;
    let plan = fx.plan(&s.id).await;
    let other = fx.plan(&s.id).await;
    let ch = fx.challenge(&plan).await;
    let other_ch = fx.challenge(&other).await;
    // The inner nonce instead of the whole JWS.
    let claims_b64 = ch.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&endpoint_core::protocol::b64url_decode(claims_b64).unwrap())
            .unwrap();
    let inner = claims["atc"].as_str().unwrap();
    assert_eq!(inner.len(), 40);
    assert!(is_retry(
        &fx.post(&plan, Some(&fx.respond("SERIAL1", &key, inner)))
            .await
            .unwrap()
    ));
    // Another plan's challenge.
    let ch = fx.plan_state(&plan).pending_challenge.unwrap().jws;
    let _ = ch;
    assert!(is_retry(
        &fx.post(&plan, Some(&fx.respond("SERIAL1", &key, &other_ch)))
            .await
            .unwrap()
    ));
    // The other plan still accepts its own.
    assert_eq!(
        fx.post(&other, Some(&fx.respond("SERIAL1", &key, &other_ch)))
            .await
            .unwrap(),
        passed()
    );
}

#[tokio::test]
async fn concurrent_gets_never_sign_more_than_the_attempt_limit() {
    use endpoint_core::ports::{ChallengeSigner, JoseSignature, KeyDescription};
    use endpoint_core::SignerError;
    use std::sync::atomic::{AtomicUsize, Ordering};
    /// Counts signatures.
    struct Counting<'a>(
        &'a endpoint_core::adapters::local_signer::LocalSigner,
        AtomicUsize,
    );
    impl ChallengeSigner for Counting<'_> {
        async fn describe(&self, key: &str) -> Result<KeyDescription, SignerError> {
            self.0.describe(key).await
        }
        async fn sign(&self, key: &str, message: &[u8]) -> Result<JoseSignature, SignerError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            self.0.sign(key, message).await
        }
    }
    let fx = Fx::new();
    let (_, s) = fx.setup(StageMode::Required, Some(KEY), true).await;
    let plan = fx.plan(&s.id).await;
    let signer = Counting(&fx.signer, AtomicUsize::new(0));
    let env = fx.env();
    let gets = (0..30).map(|_| stage::executor_get(&fx.store, &signer, &env, &plan, None));
    let outcomes = futures::future::join_all(gets).await;
    // The 11th GET denies the plan ("the GET that would mint one more denies the plan"), so the
    // ten in flight find it denied when they try to store their challenge.
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(Outcome::Challenge { .. }))
                || *o == Ok(denied("Too many attempts"))),
        "{outcomes:?}"
    );
    assert_eq!(
        signer.1.load(Ordering::SeqCst),
        10,
        "exactly the plan's budget of KMS signatures"
    );
    assert_eq!(fx.plan_state(&plan).status, PlanStatus::Denied);
    assert_eq!(fx.plan_state(&plan).challenges_issued, 10);
}

/// The redirect a plan of `stage` stores for `redirect`, or why it was refused.
async fn redirect_of(fx: &Fx, stage: &str, redirect: &str) -> Result<String, CoreError> {
    stage::create_plan(&fx.store, &fx.env(), stage, Some(redirect), None)
        .await
        .map(|p| fx.plan_state(&p.id).redirect)
}

/// A new stage without origins: paths and loopback only.
async fn a_new_stage_without_origins(fx: &Fx, connector: &str) {
    use endpoint_core::admin;
    let bare = admin::create_stage(&fx.store, &fx.rng, connector, StageMode::Optional, &[])
        .await
        .unwrap();
    assert_eq!(bare.redirect_origins, Some(vec![]));
    assert!(matches!(
        redirect_of(fx, &bare.id, "https://any.example/x").await,
        Err(CoreError::BadRequest(_))
    ));
    assert_eq!(redirect_of(fx, &bare.id, "/next").await.unwrap(), "/next");
    assert_eq!(
        redirect_of(fx, &bare.id, "http://localhost:3000/")
            .await
            .unwrap(),
        "http://localhost:3000/"
    );
}

/// With origins: URLs on them, and paths resolved against the first; answers the stage.
async fn a_stage_with_origins(fx: &Fx, connector: &str) -> endpoint_core::model::Stage {
    use endpoint_core::admin;
    let origins = [
        "https://RP.example:443".to_string(),
        "https://app.example".into(),
    ];
    let with = admin::create_stage(&fx.store, &fx.rng, connector, StageMode::Optional, &origins)
        .await
        .unwrap();
    assert_eq!(
        with.redirect_origins,
        Some(vec![
            "https://rp.example".into(),
            "https://app.example".into()
        ])
    );
    assert_eq!(
        redirect_of(fx, &with.id, "/done?x=1").await.unwrap(),
        "https://rp.example/done?x=1"
    );
    assert_eq!(
        redirect_of(fx, &with.id, "https://app.example/y")
            .await
            .unwrap(),
        "https://app.example/y"
    );
    for bad in [
        "https://evil.example/",
        "http://[::1]@evil.example/",
        "http://localhost/",
    ] {
        assert!(
            matches!(
                redirect_of(fx, &with.id, bad).await,
                Err(CoreError::BadRequest(_))
            ),
            "{bad}"
        );
    }
    with
}

#[tokio::test]
async fn plan_redirects_follow_the_stage_s_registered_origins_or_the_older_rule() {
    use endpoint_core::admin;
    let fx = Fx::new();
    let (c, legacy) = fx.setup(StageMode::Optional, Some(KEY), true).await;
    // A stage stored before origins existed keeps the older rule.
    assert_eq!(
        redirect_of(&fx, &legacy.id, "https://any.example/x")
            .await
            .unwrap(),
        "https://any.example/x"
    );
    a_new_stage_without_origins(&fx, &c.id).await;
    let with = a_stage_with_origins(&fx, &c.id).await;
    // Registering origins on an older stage switches it to them; bad origins are refused.
    admin::set_redirect_origins(&fx.store, &legacy.id, &["https://rp.example".into()])
        .await
        .unwrap();
    assert!(redirect_of(&fx, &legacy.id, "https://any.example/x")
        .await
        .is_err());
    assert_eq!(
        redirect_of(&fx, &legacy.id, "/").await.unwrap(),
        "https://rp.example/"
    );
    for bad in [
        "http://rp.example",
        "https://rp.example/path",
        "https://u@rp.example",
    ] {
        let r = admin::set_redirect_origins(&fx.store, &legacy.id, &[bad.into()]).await;
        assert!(matches!(r, Err(CoreError::BadRequest(_))), "{bad}");
    }
    // Nothing is written for a refused redirect.
    let before = fx.store.plan_count();
    assert!(redirect_of(&fx, &with.id, "javascript:x").await.is_err());
    assert_eq!(fx.store.plan_count(), before);
}
