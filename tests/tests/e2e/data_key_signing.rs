//! The `data-key` challenge signing mode over HTTP (issue 31.4), with the real `endpoint-admin`
//! and the agent simulator (which, like the real agents, verifies each challenge against the
//! keys of its last `agent_config/`). A connector moves from a KMS key to a data key with the
//! existing next-key steps (`key create-data-key --for-connector` publishes it as the next key,
//! the device fetches its configuration, `connector rotate`). With the stack in `data-key` mode
//! (CHALLENGE_SIGNING=data-key scripts/stack.sh test -- ...) the device then passes with the
//! data key's challenges; in `kms` mode (the default) the JWKS publishes the data key but the
//! challenge function refuses to sign with it (it cannot unwrap: 503, never a bad challenge).

use endpoint_core::model::StageMode;
use endpoint_core::protocol::keys::KeySpec;
use endpoint_e2e::{data_key_mode, now, redirect, Stack};

#[tokio::test]
async fn a_connector_moves_from_a_kms_key_to_a_data_key_with_the_next_key_steps() {
    let s = Stack::connect().await;
    let kms_key = s
        .signer
        .create_key(KeySpec::EccNistP256, "e2e")
        .await
        .unwrap();
    let setup = s.setup_with_key(StageMode::Required, &kms_key).await;
    let conn = setup.connector.as_str();
    let mut device = s.enrolled(conn, &format!("DK-{}", now())).await;
    let login = |device: &endpoint_agent::State| {
        let plan = s.create_plan(&setup.stage);
        let challenge = s.challenge(&plan);
        let response = endpoint_agent::respond(device, &challenge, now())?;
        Ok::<_, String>(s.post_executor(&plan, Some(&response)))
    };
    assert_eq!(login(&device), Ok((200, redirect())));

    // The data key, made by KMS and published as the connector's next key.
    let wrapping = match std::env::var("CHALLENGE_WRAPPING_KEY_ID") {
        Ok(key) if data_key_mode() => key,
        _ => s.admin_json(&["key", "create-wrapping"])["key_id"]
            .as_str()
            .unwrap()
            .to_string(),
    };
    let created = s.admin_json(&[
        "key",
        "create-data-key",
        "--wrapping-key",
        &wrapping,
        "--for-connector",
        conn,
    ]);
    assert_eq!(created["as"], "next key", "{created}");
    let data_key = created["key_id"].as_str().unwrap().to_string();
    let kid = created["kid"].as_str().unwrap();
    assert_eq!(data_key, format!("datakey:{kid}"));
    let (status, jwks) = s
        .http
        .get(&format!("/v1/connectors/{conn}/jwks.json"), &[])
        .unwrap();
    assert_eq!(status, 200);
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert_eq!(kids.len(), 2, "{jwks}");
    assert_eq!(
        kids[1], kid,
        "the next key is published after the current one"
    );

    // The device fetches its configuration; the rotation goes ahead.
    endpoint_agent::refresh_config(&mut device, &s.api).unwrap();
    let rotated = s.admin_json(&["connector", "rotate", conn]);
    assert_eq!(rotated["challenge_key"], data_key.as_str(), "{rotated}");

    let plan = s.create_plan(&setup.stage);
    let (status, body) = s.get_executor(&plan);
    if data_key_mode() {
        assert_eq!(status, 200, "{body}");
        let challenge = body["challenge"].as_str().unwrap();
        let header = jsonwebtoken::decode_header(challenge).unwrap();
        assert_eq!(header.kid.as_deref(), Some(kid), "signed with the data key");
        let response = endpoint_agent::respond(&device, challenge, now()).unwrap();
        assert_eq!(s.post_executor(&plan, Some(&response)), (200, redirect()));
        assert_eq!(login(&device), Ok((200, redirect())));
    } else {
        assert_eq!(status, 503, "kms mode cannot unwrap data keys: {body}");
    }
}
