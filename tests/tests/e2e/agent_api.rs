//! The agent API over real HTTP, case by case as the reference suite, plus our improvements.

use endpoint_core::edge::routes;
use endpoint_core::model::{Device, DeviceToken, EnrollmentToken, StageMode};
use endpoint_core::ports::{DeviceStore, EnrollmentStore, PlanStore};
use endpoint_core::protocol::device_token_hash;
use endpoint_e2e::{denied, now, Stack};
use serde_json::{json, Value};

fn serial(tag: &str) -> String {
    format!(
        "E2E-{tag}-{}",
        endpoint_core::ports::random_alnum(&endpoint_core::ports::SystemRandom, 6)
    )
}

#[tokio::test]
async fn enroll_config_and_re_enroll() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    let key = s.enrollment_token(&setup.connector, Some(3600)).await;
    let sn = serial("ENROLL");
    let (status, body) = s.enroll(&key, &sn);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 0);
    let first = body["token"].as_str().unwrap().to_string();
    assert_eq!(first.len(), 128);
    assert!(first.bytes().all(|b| b.is_ascii_graphic()));

    let (status, cfg) = s.agent_config(&first);
    assert_eq!(status, 200, "{cfg}");
    // device_id: the device's opaque UUID, not its serial.
    let device_id = cfg["device_id"].as_str().unwrap_or_default().to_string();
    assert_ne!(device_id, sn);
    assert_eq!(device_id.len(), 36, "{device_id}");
    assert_eq!(
        device_id.as_bytes()[14],
        b'4',
        "a version 4 UUID: {device_id}"
    );
    assert_eq!(cfg["license_status"], "unlicensed");
    assert_eq!(cfg["refresh_interval"], 1800);
    let (_, jwks) = s
        .http
        .get(&routes::JWKS.path(&[&setup.connector]), &[])
        .unwrap();
    assert_eq!(
        cfg["jwks_challenge"], jwks,
        "the same JWKS as the public route"
    );
    for field in [
        "authorization_flow",
        "nss_uid_offset",
        "nss_gid_offset",
        "auth_terminate_session_on_expiry",
    ] {
        assert!(cfg.get(field).is_some(), "{field}");
    }

    // Re-enrollment (under another host name): a new token, the old one is gone, exactly one
    // token left; the device keeps its id and its name, as on the reference.
    let (_, body) = s
        .http
        .post(
            routes::ENROLL.template,
            &[("authorization", &format!("Bearer {key}"))],
            &json!({"device_serial": sn, "device_name": "renamed-host"}),
        )
        .unwrap();
    let second = body["token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(s.agent_config(&first).0, 403);
    assert_eq!(s.agent_config(&second).0, 200);
    let d = s
        .store
        .device_with_tokens(&sn, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.tokens.len(), 1);
    assert_eq!(d.device.name, format!("host-{sn}"));
    assert_eq!(s.agent_config(&second).1["device_id"], device_id.as_str());
}

#[tokio::test]
async fn enroll_is_refused_for_disabled_connectors_and_expired_or_unknown_tokens() {
    let s = Stack::connect().await;
    let off = s.setup(StageMode::Optional, true, false).await;
    let key = s.enrollment_token(&off.connector, None).await;
    let sn = serial("OFF");
    assert_eq!(s.enroll(&key, &sn).0, 403);
    assert!(
        s.store.get_device(&sn, now()).await.unwrap().is_none(),
        "nothing written"
    );

    let on = s.setup(StageMode::Optional, true, true).await;
    let expired_key = format!("expired-{}", serial("K"));
    s.store
        .put_enrollment_token(&EnrollmentToken {
            id: "expired".into(),
            key_sha256: endpoint_core::secret::sha256_hex(expired_key.as_bytes()),
            connector: on.connector.clone(),
            name: "old".into(),
            expires_at: Some(now() - 1),
            created_at: Some(now() - 100),
            max_uses: None,
            serial: None,
            owner: None,
            uses: 0,
            last_used_at: None,
            revoked_at: None,
        })
        .await
        .unwrap();
    let sn = serial("EXPIRED");
    assert_eq!(s.enroll(&expired_key, &sn).0, 403);
    assert!(
        s.store.get_device(&sn, now()).await.unwrap().is_none(),
        "no device created"
    );
    assert_eq!(s.enroll("no-such-token", &sn).0, 403);
}

/// Auth scheme and header problems are 403 (as on the reference); the scheme word matches in
/// any letter case; a bad body is 400.
#[tokio::test]
async fn enroll_headers_schemes_and_bodies() {
    let s = Stack::connect().await;
    let on = s.setup(StageMode::Optional, true, true).await;
    let key = s.enrollment_token(&on.connector, None).await;
    let body = json!({"device_serial": "X", "device_name": "Y"});
    for headers in [
        vec![],
        vec![("authorization", format!("Bearer+agent {key}"))],
        vec![("authorization", format!("Basic {key}"))],
        vec![("authorization", "Bearer".to_string())],
    ] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, out) = s.http.post(routes::ENROLL.template, &h, &body).unwrap();
        assert_eq!(
            (status, out["error"].as_str()),
            (403, Some("forbidden")),
            "{headers:?}"
        );
    }
    // The scheme word matches in any letter case, as on the reference.
    let schemes = [
        ("bearer", "bearer+agent"),
        ("BEARER", "BEARER+AGENT"),
        ("bEaReR", "Bearer+Agent"),
    ];
    for (i, (scheme, agent_scheme)) in schemes.into_iter().enumerate() {
        let body = json!({"device_serial": serial(&format!("CASE{i}")), "device_name": "h"});
        let (status, out) = s
            .http
            .post(
                routes::ENROLL.template,
                &[("authorization", &format!("{scheme} {key}"))],
                &body,
            )
            .unwrap();
        assert_eq!(status, 200, "{scheme}: {out}");
        let token = out["token"].as_str().unwrap_or_default().to_string();
        let (status, _) = s
            .http
            .get(
                routes::AGENT_CONFIG.template,
                &[("authorization", &format!("{agent_scheme} {token}"))],
            )
            .unwrap();
        assert_eq!(status, 200, "{agent_scheme}");
    }
    let (status, out) = s
        .http
        .post(
            routes::ENROLL.template,
            &[("authorization", &format!("Bearer {key}"))],
            &json!({"device_serial": 5}),
        )
        .unwrap();
    assert_eq!((status, out["error"].as_str()), (400, Some("bad_request")));
}

#[tokio::test]
async fn config_and_check_in_are_refused_for_a_disabled_connector() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Optional, true, true).await;
    let device = s.enrolled(&setup.connector, &serial("CFG")).await;

    // Disabled connector.
    let mut c = endpoint_core::ports::Directory::get_connector(&s.store, &setup.connector)
        .await
        .unwrap()
        .unwrap();
    c.enabled = false;
    endpoint_core::ports::Directory::put_connector(&s.store, &c)
        .await
        .unwrap();
    assert_eq!(s.agent_config(&device.token).0, 403);
    assert_eq!(
        s.check_in(
            &device.token,
            &json!({"hardware": {"serial": device.serial}})
        )
        .0,
        403
    );
}

/// An expired device token, and an expired device, are refused; so are unknown and missing
/// tokens.
#[tokio::test]
async fn config_and_check_in_are_refused_for_expired_tokens_and_devices() {
    let s = Stack::connect().await;
    let on = s.setup(StageMode::Optional, true, true).await;
    let now = now();
    // A device of its own for each case: re-enrollment keeps a device's expiry (reference).
    let dev = |sn: &str, expires_at| Device {
        lock: None,
        owners: Vec::new(),
        id: "00000000-0000-4000-8000-000000000000".into(),
        identifier: sn.into(),
        name: "h".into(),
        created_at: now,
        expires_at,
    };
    let tok = |sn: &str, key: &str, expires_at| DeviceToken {
        id: key.into(),
        device: sn.into(),
        connector: on.connector.clone(),
        key: endpoint_core::secret::Secret::new(key),
        created_at: now,
        expires_at,
    };
    let sn = serial("EXP");
    s.store
        .enroll(
            &dev(&sn, None),
            &tok(&sn, "expired-token-key", Some(now - 1)),
            &operator_grant(now),
        )
        .await
        .unwrap();
    assert_eq!(s.agent_config("expired-token-key").0, 403);
    assert_eq!(
        s.check_in("expired-token-key", &json!({"hardware": {"serial": sn}}))
            .0,
        403
    );
    let sn = serial("EXPDEV");
    s.store
        .enroll(
            &dev(&sn, Some(now - 1)),
            &tok(&sn, "live-token-key", None),
            &operator_grant(now),
        )
        .await
        .unwrap();
    assert_eq!(s.agent_config("live-token-key").0, 403, "expired device");
    assert_eq!(
        s.check_in("live-token-key", &json!({"hardware": {"serial": sn}}))
            .0,
        403
    );
    assert_eq!(s.agent_config("unknown").0, 403);
    // No Authorization header at all: 403, as on the reference.
    let (status, body) = s.http.get(routes::AGENT_CONFIG.template, &[]).unwrap();
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));
}

#[tokio::test]
async fn check_in_stores_a_snapshot_visible_through_the_admin_cli() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Optional, true, true).await;
    let device = s.enrolled(&setup.connector, &serial("FACTS")).await;
    let facts =
        json!({"hardware": {"serial": device.serial, "model": "e2e"}, "os": {"name": "linux"}});
    assert_eq!(s.check_in(&device.token, &facts), (204, Value::Null));

    let shown = s.admin_json(&["device", "show", &device.serial]);
    assert_eq!(shown["facts"]["facts"], facts);
    assert_eq!(shown["facts"]["connector"], setup.connector.as_str());
    assert_eq!(
        shown["facts"]["expires_at"].as_i64().unwrap()
            - shown["facts"]["created_at"].as_i64().unwrap(),
        86_400
    );
    assert!(!shown.to_string().contains(&device.token));

    // Bad facts.
    let (status, body) = s.check_in(&device.token, &json!({"hardware": {}}));
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    let (status, _) = s.check_in(&device.token, &json!([1, 2]));
    assert_eq!(status, 400);
    // Over 64 KiB is fine for facts (desktops send hundreds of KiB); over 2 MiB is not.
    let big = json!({"hardware": {"serial": "x"}, "software": "a".repeat(70 * 1024)});
    assert_eq!(s.check_in(&device.token, &big).0, 204);
    let huge = json!({"hardware": {"serial": "x"}, "software": "a".repeat(2 * 1024 * 1024)});
    let (status, body) = s.check_in(&device.token, &huge);
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large"))
    );
    assert!(
        body["message"].as_str().unwrap_or("").contains("2048 KiB"),
        "{body}"
    );
}

#[tokio::test]
async fn interactive_auth_and_the_dth_path() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    s.set_interactive_stage(&setup.connector, &setup.stage)
        .await;
    let device = s.enrolled(&setup.connector, &serial("IA")).await;
    let auth = [("authorization", format!("Bearer+agent {}", device.token))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let ia = || {
        let (status, body) = s
            .http
            .post(routes::AUTH_IA.template, &auth, &json!({}))
            .unwrap();
        assert_eq!(status, 200, "{body}");
        let url = body["url"].as_str().unwrap().to_string();
        assert!(
            url.starts_with(&s.api) && url.ends_with("/executor"),
            "{url}"
        );
        url.trim_start_matches(&s.api).to_string()
    };
    let dth = device_token_hash(&device.token);

    // Matching DTH: passes with the device, no challenge minted.
    let path = ia();
    let (status, out) = s
        .http
        .get(&path, &[("X-Authentik-Platform-Auth-DTH", &dth)])
        .unwrap();
    assert_eq!(
        (status, out["component"].as_str()),
        (200, Some("xak-flow-redirect"))
    );
    let plan = path.split('/').nth(3).unwrap();
    // Read from the store: an auth_ia/ plan is not readable through the relying-party routes.
    let stored = s.store.get_plan(plan, now()).await.unwrap().unwrap();
    assert_eq!(stored.device.unwrap().identifier, device.serial);

    // Wrong DTH: denied.
    let path = ia();
    let (_, out) = s
        .http
        .get(&path, &[("X-Authentik-Platform-Auth-DTH", &"0".repeat(64))])
        .unwrap();
    assert_eq!(out, denied("Invalid device token"));

    // No DTH: the normal challenge.
    let path = ia();
    let (_, out) = s.http.get(&path, &[]).unwrap();
    assert_eq!(out["component"], "ak-stage-endpoint-agent");

    // Our improvement: a revoked token's DTH no longer passes.
    let path = ia();
    s.store
        .revoke_tokens(&device.serial, &setup.connector)
        .await
        .unwrap();
    let (_, out) = s
        .http
        .get(&path, &[("X-Authentik-Platform-Auth-DTH", &dth)])
        .unwrap();
    assert_eq!(out, denied("Invalid device token"));
}

/// An operator's enrollment grant (no policy, no enrollment token).
fn operator_grant(now: i64) -> endpoint_core::ports::EnrollGrant {
    endpoint_core::ports::EnrollGrant {
        existing: endpoint_core::model::ExistingSerial::Approved,
        enrollment_token: None,
        now,
        audit: None,
    }
}
