//! The stage as the Rust platform agent answers it: the challenge's header parsed by
//! `jsonwebtoken::decode_header`, its key found by `kid` in the `jwks_challenge` of
//! `agent_config/`, signature and `exp` verified with 60 s leeway, then the HS512 response; for
//! every challenge key kind and real-world serials. That the agent's generated client parses
//! every object of the agent API (its models, nothing extra) is tested with authentik's own
//! generated client in tests/agent/test_authentik_client.py.

use endpoint_core::edge::routes;
use endpoint_core::model::StageMode;
use endpoint_core::ports::DeviceStore;
use endpoint_core::protocol::keys::KeySpec;
use endpoint_e2e::{now, redirect, Stack};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

/// What the Rust agent does with a challenge: header by `jsonwebtoken::decode_header`, key by
/// `kid` from `jwks_challenge`, signature and `exp` with 60 s leeway; then the HS512 response.
fn answer_as_the_rust_agent(
    challenge: &str,
    jwks_challenge: &Value,
    serial: &str,
    device_token: &str,
) -> String {
    let header = jsonwebtoken::decode_header(challenge).expect("the agent parses the header");
    let kid = header.kid.expect("challenges name their key");
    let jwks: JwkSet =
        serde_json::from_value(jwks_challenge.clone()).expect("jwks_challenge is a JWK set");
    let jwk = jwks.find(&kid).expect("the challenge's kid is published");
    let key = DecodingKey::from_jwk(jwk).expect("the published JWK is usable");
    let mut validation = Validation::new(header.alg);
    validation.leeway = 60;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp"]);
    let claims = jsonwebtoken::decode::<Value>(challenge, &key, &validation)
        .expect("the challenge verifies")
        .claims;
    assert_eq!(
        keys(&claims),
        ["atc", "exp", "goauthentik.io/device/check_in", "iat", "iss"]
    );
    let now = now();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &json!({
            "iss": serial,
            "aud": "goauthentik.io/platform/endpoint",
            "atc": challenge,
            "iat": now,
            "exp": now + 300,
        }),
        &EncodingKey::from_secret(device_token.as_bytes()),
    )
    .expect("HS512 signs")
}

#[tokio::test]
async fn a_real_agent_passes_the_stage_with_every_key_kind() {
    let s = Stack::connect().await;
    let cases = [
        (
            KeySpec::EccNistP256,
            "VMware-56 4d 1a 2b 3c 4d 5e 6f-70 81 92 a3 b4 c5 d6 e7",
        ),
        (KeySpec::EccNistP384, "To Be Filled By O.E.M."),
        (KeySpec::Rsa2048, "Gerät-Nr. ÄÖÜ 東京-0042"),
        (
            KeySpec::Rsa3072,
            "VMware-56 4d 1a 2b 3c 4d 5e 6f-70 81 92 a3 b4 c5 d6 e8",
        ),
        (KeySpec::Rsa4096, "Default string"),
    ];
    for (spec, serial) in cases {
        let key = s.signer.create_key(spec, "e2e real agent").await.unwrap();
        let setup = s.setup_with_key(StageMode::Required, &key).await;
        let device = s.enrolled(&setup.connector, serial).await;
        let (status, config) = s
            .http
            .get(
                routes::AGENT_CONFIG.template,
                &[("authorization", &format!("Bearer+agent {}", device.token))],
            )
            .unwrap();
        assert_eq!(status, 200, "{spec:?}");
        let stored = s.store.get_device(serial, now()).await.unwrap().unwrap();
        assert_eq!(config["device_id"], stored.id.as_str(), "the device's UUID");

        let plan = s.create_plan(&setup.stage);
        let challenge = s.challenge(&plan);
        let response =
            answer_as_the_rust_agent(&challenge, &config["jwks_challenge"], serial, &device.token);
        assert_eq!(
            s.post_executor(&plan, Some(&response)),
            (200, redirect()),
            "{spec:?} {serial:?}"
        );
        assert_eq!(s.plan(&plan)["device"]["identifier"], serial);
    }
}
