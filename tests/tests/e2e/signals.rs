//! Signals out, over HTTP against moto: the device assertion of a passed plan, verified with a
//! standard JWT library (`jsonwebtoken`), not our code, against `/.well-known/jwks.json`.

use endpoint_core::edge::routes;
use endpoint_core::model::StageMode;
use endpoint_e2e::{now, Setup, Stack};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

/// The stack's assertion keys, and the key of `kid` among them.
fn key_of(s: &Stack, kid: &str) -> DecodingKey {
    let (status, jwks) = s.http.get(routes::ASSERTION_JWKS.template, &[]).unwrap();
    assert_eq!(status, 200, "{jwks}");
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let jwk = jwks.find(kid).expect("the assertion's kid is published");
    DecodingKey::from_jwk(jwk).unwrap()
}

fn validation(issuer: &str, audience: &str) -> Validation {
    let mut v = Validation::new(Algorithm::ES256);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.leeway = 0;
    v
}

/// The assertion's claims: the relying party's nonce, the device's stable id, what passed, a
/// short life.
fn claims_name_the_device_and_the_plan(
    s: &Stack,
    claims: &Value,
    (serial, nonce): (&str, &str),
    (setup, plan): (&Setup, &str),
) {
    let shown = s.admin_json(&["device", "show", serial]);
    assert_eq!(claims["nonce"], nonce, "the relying party's own nonce");
    assert_eq!(claims["sub"], shown["id"], "the device's stable id");
    assert_eq!(
        (
            &claims["serial"],
            &claims["connector"],
            &claims["stage"],
            &claims["plan"]
        ),
        (
            &json!(serial),
            &json!(setup.connector),
            &json!(setup.stage),
            &json!(plan)
        )
    );
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!(exp - iat <= 300 && exp > now(), "{claims}");
    assert!(claims["auth_time"].as_i64().unwrap() <= iat);
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    assert_eq!(claims["compliance"], Value::Null, "the stage has no policy");
}

#[tokio::test]
async fn a_passed_plan_carries_a_device_assertion_a_standard_library_verifies() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    let serial = format!("ASSERT-{}", now());
    let device = s.enrolled(&setup.connector, &serial).await;
    let nonce = format!("n-{}", now());
    let audience = "https://app.example/login";
    s.admin_json(&["stage", "set-audiences", &setup.stage, audience]);
    let (status, created) = s
        .http
        .post(
            routes::CREATE_PLAN.template,
            &[],
            &json!({"stage": setup.stage, "redirect": "/next", "nonce": nonce, "audience": audience}),
        )
        .unwrap();
    assert_eq!(status, 201, "{created}");
    let plan = created["plan"].as_str().unwrap();
    assert!(s.plan(plan).get("assertion").is_none(), "pending: none");
    let challenge = s.challenge(plan);
    let response = endpoint_agent::respond(&device, &challenge, now()).unwrap();
    assert_eq!(s.post_executor(plan, Some(&response)).0, 200);

    let read = s.plan(plan);
    assert_eq!(read["status"], "passed");
    let assertion = read["assertion"]
        .as_str()
        .expect("a passed plan's assertion");
    let header = decode_header(assertion).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.typ.as_deref(), Some("device-assertion+jwt"));
    let kid = header.kid.expect("kid");
    let issuer = s.api.as_str();
    let claims: Value = decode(assertion, &key_of(&s, &kid), &validation(issuer, audience))
        .expect("verifies: signature, iss, aud, exp")
        .claims;
    claims_name_the_device_and_the_plan(&s, &claims, (&serial, &nonce), (&setup, plan));

    // Another audience, or a changed byte, does not verify.
    assert!(decode::<Value>(assertion, &key_of(&s, &kid), &validation(issuer, "other")).is_err());
    let mut forged = assertion.to_string();
    let at = forged.len() - 5;
    let flipped = if &forged[at..at + 1] == "A" { "B" } else { "A" };
    forged.replace_range(at..at + 1, flipped);
    assert!(decode::<Value>(&forged, &key_of(&s, &kid), &validation(issuer, audience)).is_err());
}

#[tokio::test]
async fn a_denied_plan_has_no_assertion_and_bad_nonces_are_refused() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    let other = s.create_plan(&setup.stage);
    let _ = s.challenge(&other);
    assert_eq!(s.post_executor(&other, None).0, 200);
    let denied = s.plan(&other);
    assert_eq!(denied["status"], "denied");
    assert!(denied.get("assertion").is_none(), "{denied}");
    // Bad nonce and audience values are refused.
    for body in [
        json!({"stage": setup.stage, "nonce": ""}),
        json!({"stage": setup.stage, "nonce": "x".repeat(129)}),
        json!({"stage": setup.stage, "nonce": "tab\there"}),
        json!({"stage": setup.stage, "audience": "a".repeat(257)}),
    ] {
        let (status, out) = s
            .http
            .post(routes::CREATE_PLAN.template, &[], &body)
            .unwrap();
        assert_eq!(
            (status, out["error"].as_str()),
            (400, Some("bad_request")),
            "{body}"
        );
    }
}

#[tokio::test]
async fn without_an_audience_the_assertion_names_the_stage() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Optional, true, true).await;
    let device = s
        .enrolled(&setup.connector, &format!("AUD-{}", now()))
        .await;
    let plan = s.create_plan(&setup.stage);
    let challenge = s.challenge(&plan);
    let response = endpoint_agent::respond(&device, &challenge, now()).unwrap();
    assert_eq!(s.post_executor(&plan, Some(&response)).0, 200);
    let assertion = s.plan(&plan)["assertion"].as_str().unwrap().to_string();
    let kid = decode_header(&assertion).unwrap().kid.unwrap();
    let claims: Value = decode(
        &assertion,
        &key_of(&s, &kid),
        &validation(&s.api, &setup.stage),
    )
    .unwrap()
    .claims;
    assert_eq!(claims["aud"], setup.stage.as_str());
    assert!(claims.get("nonce").is_none());
}

#[tokio::test]
async fn a_check_in_that_flips_compliance_records_exactly_one_signal_event_with_it() {
    use endpoint_core::ports::SignalStore;
    let s = Stack::connect().await;
    let (_, serial, device_id, device) = s.firewall_device("FLIP").await;
    let before = s.store.settle_signals(now()).await.unwrap();
    for enabled in [false, true, true] {
        s.check_in_firewall(&device, enabled);
    }
    let head = s.store.settle_signals(now()).await.unwrap();
    let events: Vec<_> = s
        .store
        .signal_events(before, head, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.device_id == device_id)
        .collect();
    assert_eq!(
        events.len(),
        1,
        "non-compliant -> compliant, once: {events:?}"
    );
    assert_eq!(events[0].current_status.as_str(), "compliant");
    assert_eq!(events[0].serial, serial);
}
