//! The agent API as a real authentik platform agent sees it: every call goes through
//! authentik's own generated API client (the `authentik-client` crate, the models the agent
//! deserializes), never hand-written structs; the stage is answered as the Rust agent does it
//! (the `jsonwebtoken` crate: challenge verified against the parsed `jwks_challenge` by `kid`
//! with 60 s leeway, HS512 response).

use std::collections::HashMap;

use authentik_client::apis::configuration::Configuration;
use authentik_client::apis::{core_api, endpoints_api};
use authentik_client::models::{
    AgentConfig, DeviceFactsRequest, DeviceGroupRequest, DeviceUserRequest, EnrollRequest,
    HardwareRequest, LicenseStatusEnum, ProcessRequest, SoftwareRequest, UiThemeEnum,
};
use endpoint_core::facts;
use endpoint_core::model::StageMode;
use endpoint_core::ports::DeviceStore;
use endpoint_core::protocol::keys::KeySpec;
use endpoint_e2e::{now, redirect, Stack};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};

/// The authentik client configuration of an agent: the API's base and, for the device routes,
/// `Authorization: Bearer+agent <device token key>` on every request.
fn agent_configuration(api: &str, device_token: Option<&str>) -> Configuration {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = device_token {
        let value = reqwest::header::HeaderValue::from_str(&format!("Bearer+agent {token}"))
            .expect("a device token is printable ASCII");
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("a plain HTTP client builds");
    Configuration {
        base_path: format!("{api}/api/v3"),
        client: reqwest_middleware::ClientBuilder::new(client).build(),
        ..Configuration::default()
    }
}

/// Enrolls through `enroll/` with the generated client; returns the device token key.
async fn enroll(api: &str, enrollment_token: &str, serial: &str, name: &str) -> String {
    let mut config = agent_configuration(api, None);
    config.bearer_access_token = Some(enrollment_token.to_string());
    endpoints_api::endpoints_agents_connectors_enroll_create(
        &config,
        EnrollRequest::new(serial.into(), name.into()),
    )
    .await
    .expect("enroll/ answers the AgentTokenResponse model")
    .token
}

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
    jwks_challenge: &HashMap<String, Value>,
    serial: &str,
    device_token: &str,
) -> String {
    let header = jsonwebtoken::decode_header(challenge).expect("the agent parses the header");
    let kid = header.kid.expect("challenges name their key");
    let jwks: JwkSet = serde_json::to_value(jwks_challenge)
        .and_then(serde_json::from_value)
        .expect("jwks_challenge is a JWK set");
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

/// A desktop's facts of about `target` bytes, in authentik's request models: processes named by
/// their full command lines, installed packages, users and groups.
fn desktop_facts(serial: Option<&str>, target: usize) -> DeviceFactsRequest {
    let mut processes = Vec::new();
    let mut software = Vec::new();
    let mut size = 0;
    let mut i = 0;
    while size < target {
        let cmdline = format!(
            "/usr/lib/firefox/firefox -contentproc -childID {i} -isForBrowser -prefsLen 31337 -prefMapSize 244787 -jsInitLen 235124 -parentBuildID 20261120{i:06} -greomni /usr/lib/firefox/omni.ja -appDir /usr/lib/firefox/browser {} true tab",
            4000 + i
        );
        size += cmdline.len() + 40;
        let mut p = ProcessRequest::new(i, cmdline);
        p.user = Some("alice".into());
        processes.push(p);
        let mut s = SoftwareRequest::new(format!("lib-package-{i}-dev"), "deb".into());
        s.version = Some(format!("1.{}.{}-{}ubuntu1", i % 17, i % 5, i % 3));
        size += 70;
        software.push(s);
        i += 1;
    }
    let users = (0..50)
        .map(|u| {
            let mut user = DeviceUserRequest::new(format!("{}", 1000 + u));
            user.username = Some(format!("user{u}"));
            user
        })
        .collect();
    let groups = (0..50)
        .map(|g| DeviceGroupRequest::new(format!("{}", 2000 + g)))
        .collect();
    DeviceFactsRequest {
        hardware: Some(serial.map(|s| HardwareRequest::new(s.into()))),
        processes: Some(Some(processes)),
        software: Some(Some(software)),
        users: Some(Some(users)),
        groups: Some(Some(groups)),
        ..DeviceFactsRequest::default()
    }
}

/// Enrollment, configuration and the stage, for one challenge key kind and one serial.
async fn join_and_pass(s: &Stack, spec: KeySpec, serial: &str) -> (String, AgentConfig) {
    let key = s.signer.create_key(spec, "e2e real agent").await.unwrap();
    let setup = s.setup_with_key(StageMode::Required, &key).await;
    let enrollment = s.enrollment_token(&setup.connector, Some(3600)).await;
    let token = enroll(&s.api, &enrollment, serial, "desktop-1").await;

    let agent = agent_configuration(&s.api, Some(&token));
    let config = endpoints_api::endpoints_agents_connectors_agent_config_retrieve(&agent)
        .await
        .unwrap_or_else(|e| panic!("{spec:?}: agent_config/ parses as AgentConfig: {e}"));
    // The Rust agent keeps the remote configuration only when the brand call succeeds too.
    core_api::core_brands_current_retrieve(&agent)
        .await
        .unwrap_or_else(|e| panic!("{spec:?}: core/brands/current/ parses: {e}"));
    let jwks = config
        .jwks_challenge
        .clone()
        .expect("a connector with a key publishes jwks_challenge");

    let plan = s.create_plan(&setup.stage);
    let challenge = s.challenge(&plan);
    let response = answer_as_the_rust_agent(&challenge, &jwks, serial, &token);
    assert_eq!(
        s.post_executor(&plan, Some(&response)),
        (200, redirect()),
        "{spec:?} {serial:?}"
    );
    assert_eq!(s.plan(&plan)["device"]["identifier"], serial);
    (token, config)
}

#[tokio::test]
async fn a_real_agent_joins_checks_in_and_passes_the_stage_with_every_key_kind() {
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
        let (token, config) = join_and_pass(&s, spec, serial).await;

        // The whole object, exactly as the model has it: no key the model lacks.
        let (status, raw) = s
            .http
            .get(
                "/api/v3/endpoints/agents/connectors/agent_config/",
                &[("authorization", &format!("Bearer+agent {token}"))],
            )
            .unwrap();
        assert_eq!(status, 200);
        let model = serde_json::to_value(&config).unwrap();
        assert_eq!(keys(&raw), keys(&model), "{spec:?}");
        assert_eq!(
            keys(&raw["system_config"]),
            keys(&model["system_config"]),
            "{spec:?}"
        );
        assert_eq!(config.license_status, Some(LicenseStatusEnum::Unlicensed));
        assert!(!config.system_config.error_reporting.enabled);
        assert!(config.system_config.capabilities.is_empty());
        assert_eq!(config.system_config.cache_timeout, 300);
        assert_eq!(config.jwks_auth.get("keys"), Some(&json!([])));
        let device = s.store.get_device(serial, now()).await.unwrap().unwrap();
        assert_eq!(
            config.device_id, device.id,
            "device_id is the device's UUID"
        );
        assert_ne!(config.device_id, serial);
    }
}

#[tokio::test]
async fn the_brand_parses_as_current_brand_and_needs_no_credentials() {
    let s = Stack::connect().await;
    let brand = core_api::core_brands_current_retrieve(&agent_configuration(&s.api, None))
        .await
        .expect("core/brands/current/ parses as CurrentBrand");
    assert_eq!(brand.branding_title, "endpoint-stage");
    assert_eq!(brand.matched_domain, "127.0.0.1");
    assert_eq!(brand.ui_theme, UiThemeEnum::Automatic);
    let (status, raw) = s.http.get("/api/v3/core/brands/current/", &[]).unwrap();
    assert_eq!(status, 200);
    assert_eq!(keys(&raw), keys(&serde_json::to_value(&brand).unwrap()));
}

#[tokio::test]
async fn a_desktop_checks_in_a_large_document_and_one_without_hardware() {
    let s = Stack::connect().await;
    let serial = "VMware-56 4d 1a 2b 3c 4d 5e 6f-70 81 92 a3 b4 c5 d6 e9";
    let (token, _) = join_and_pass(&s, KeySpec::EccNistP256, serial).await;
    let agent = agent_configuration(&s.api, Some(&token));

    let big = desktop_facts(Some(serial), 1536 * 1024);
    let body = serde_json::to_vec(&big).unwrap();
    assert!(
        (1400 * 1024..2 * 1024 * 1024).contains(&body.len()),
        "{}",
        body.len()
    );
    endpoints_api::endpoints_agents_connectors_check_in_create(&agent, Some(big.clone()))
        .await
        .expect("a 1.5 MiB desktop document is accepted");
    let stored = s.store.latest_facts(serial, now()).await.unwrap().unwrap();
    assert!(!stored.truncated, "a desktop document compresses to fit");
    assert!(stored.facts_deflate.len() <= facts::MAX_STORED_FACTS);
    assert_eq!(
        facts::load(&stored.facts_deflate),
        Some(serde_json::to_value(&big).unwrap())
    );

    // The agent sends null hardware when it cannot read it; and no hardware key at all.
    let mut no_hardware = desktop_facts(None, 10 * 1024);
    no_hardware.hardware = Some(None);
    endpoints_api::endpoints_agents_connectors_check_in_create(&agent, Some(no_hardware))
        .await
        .expect("null hardware is accepted");
    let mut absent = desktop_facts(None, 10 * 1024);
    absent.hardware = None;
    endpoints_api::endpoints_agents_connectors_check_in_create(&agent, Some(absent.clone()))
        .await
        .expect("absent hardware is accepted");
    let stored = s.store.latest_facts(serial, now()).await.unwrap().unwrap();
    let loaded = facts::load(&stored.facts_deflate).unwrap();
    assert!(loaded.get("hardware").is_none());
    assert_eq!(loaded, serde_json::to_value(&absent).unwrap());
}

#[tokio::test]
async fn a_document_too_large_for_an_item_is_stored_truncated_and_shown_so() {
    let s = Stack::connect().await;
    let serial = "To Be Filled By O.E.M. (truncated facts)";
    let (token, _) = join_and_pass(&s, KeySpec::EccNistP256, serial).await;
    // 1.9 MiB of command lines that do not compress (hex of a xorshift stream).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut noise = |len: usize| {
        let mut out = String::new();
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push_str(&format!("{x:016x}"));
        }
        out.truncate(len);
        out
    };
    let processes: Vec<ProcessRequest> = (0..2000)
        .map(|i| ProcessRequest::new(i, format!("/opt/app/bin/worker{i} --token {}", noise(440))))
        .collect();
    let software: Vec<SoftwareRequest> = (0..4000)
        .map(|i| SoftwareRequest::new(format!("pkg-{i}-{}", noise(180)), "deb".into()))
        .collect();
    let doc = DeviceFactsRequest {
        hardware: Some(Some(HardwareRequest::new(serial.into()))),
        processes: Some(Some(processes)),
        software: Some(Some(software)),
        ..DeviceFactsRequest::default()
    };
    let size = serde_json::to_vec(&doc).unwrap().len();
    assert!((1800 * 1024..2 * 1024 * 1024).contains(&size), "{size}");
    let agent = agent_configuration(&s.api, Some(&token));
    endpoints_api::endpoints_agents_connectors_check_in_create(&agent, Some(doc))
        .await
        .expect("never refused for size under 2 MiB");

    let shown = s.admin_json(&["device", "show", serial]);
    assert_eq!(shown["identifier"], serial);
    assert_eq!(shown["facts"]["truncated"], true);
    assert_eq!(shown["facts"]["facts"]["hardware"]["serial"], serial);
    let list = |name: &str| {
        shown["facts"]["facts"][name]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    // Command lines were dropped first: each kept process is named by its program alone.
    let kept = list("processes");
    assert!(!kept.is_empty());
    for (i, p) in kept.iter().enumerate() {
        assert_eq!(p["name"], format!("/opt/app/bin/worker{i}"));
    }
    // Then lists lost entries from their end: what is kept is a prefix.
    let kept = list("software");
    assert!(kept.len() < 4000, "{}", kept.len());
    for (i, p) in kept.iter().enumerate() {
        assert!(
            p["name"]
                .as_str()
                .unwrap_or("")
                .starts_with(&format!("pkg-{i}-")),
            "{i}"
        );
    }
}
