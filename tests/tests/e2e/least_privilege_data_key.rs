//! Least privilege with `ChallengeSigning=data-key` (issue 31.4): the functions that touch
//! challenge data keys, driven in process with recording clients over a connector that signs
//! with one. The challenge function reads the key's record and unwraps it (`kms:Decrypt`, with
//! the data-key encryption context); the JWKS and agent functions read the record only.
//! `least_privilege` adds these accesses to the `kms` mode's and compares them with the template
//! as deployed with `ChallengeSigning=data-key` (scripts/check-iam.py --mode data-key), both ways.

use endpoint_core::adapters::data_key_signer::{ChallengeKeys, DataKeySigner};
use endpoint_core::adapters::kms_data_keys::KmsDataKeyVault;
use endpoint_core::admin;
use endpoint_core::edge::Base;
use endpoint_core::model::{ChallengeSigning, StageMode};
use endpoint_e2e::{now, Stack};
use serde_json::json;
use std::collections::BTreeMap;

use super::least_privilege::{recorded, request, Recorded};

type Keys = ChallengeKeys<
    endpoint_core::adapters::kms::KmsSigner,
    DataKeySigner<endpoint_core::adapters::dynamodb::DynamoStore, KmsDataKeyVault>,
>;

/// The function's challenge keys as `edge::challenge_keys` builds them: a vault only where it
/// may unwrap.
fn keys(r: &Recorded, unwrap: bool) -> Keys {
    let table = std::env::var("TABLE_NAME").unwrap_or_else(|_| "endpoint-stage".into());
    ChallengeKeys {
        kms: r.signer.clone(),
        data_keys: DataKeySigner::new(
            r.store.clone(),
            unwrap.then(|| KmsDataKeyVault::new(r.signer.client().clone(), table)),
        ),
    }
}

/// A data key made as `endpoint-admin key create-data-key` makes it (not recorded).
pub async fn new_data_key(s: &Stack) -> String {
    let table = std::env::var("TABLE_NAME").unwrap_or_else(|_| "endpoint-stage".into());
    let vault = KmsDataKeyVault::new(s.signer.client().clone(), table);
    let wrapping = vault.create_wrapping_key("least privilege").await.unwrap();
    admin::create_data_key(&s.store, &vault, &wrapping, now())
        .await
        .unwrap()
        .reference
}

/// The accesses of the challenge, JWKS and agent functions over a data-key connector.
pub async fn data_key_functions(s: &Stack) -> BTreeMap<&'static str, Vec<String>> {
    let key = new_data_key(s).await;
    let setup = s.setup_with_key(StageMode::Required, &key).await;

    // The challenge function: a challenge (the record read, the key unwrapped), then another
    // (neither again).
    let r = recorded().await;
    let mut base = Base::from_env().unwrap();
    base.config.challenge_signing = ChallengeSigning::DataKey;
    let challenge = fn_challenge::App {
        base,
        store: r.store.clone(),
        signer: keys(&r, true),
    };
    for _ in 0..2 {
        let plan = s.create_plan(&setup.stage);
        let (reply, _) = challenge
            .handle(request(
                "GET",
                &format!("/v1/plans/{plan}/executor"),
                None,
                None,
            ))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply.body["challenge"].is_string(), "{}", reply.body);
    }
    assert_eq!(challenge.signer.data_keys.unwrapped_keys(), 1);
    let challenge_accesses = r.recorder.accesses().into_iter().collect::<Vec<_>>();
    assert!(
        challenge_accesses.contains(&"kms:Decrypt".to_string())
            && !challenge_accesses.contains(&"kms:Sign".to_string()),
        "{challenge_accesses:?}"
    );

    // The JWKS function publishes it.
    let r = recorded().await;
    let mut base = Base::from_env().unwrap();
    // `/health` with a data key: its record and its wrapping key's description.
    base.config.challenge_key = Some(key.clone());
    let jwks = fn_jwks::App::new(
        base,
        r.store.clone(),
        keys(&r, false),
        r.signer.clone(),
        "us-east-1",
    );
    let (reply, _) = jwks
        .handle(request(
            "GET",
            &format!("/v1/connectors/{}/jwks.json", setup.connector),
            None,
            None,
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let kid = key.strip_prefix("datakey:").unwrap();
    assert_eq!(reply.body["keys"][0]["kid"], kid, "{}", reply.body);
    let (reply, _) = jwks.handle(request("GET", "/health", None, None)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let jwks_accesses = r.recorder.accesses().into_iter().collect::<Vec<_>>();

    // The agent function: enrollment, then agent_config/ with the key in jwks_challenge.
    let r = recorded().await;
    let agent = fn_agent::App {
        base: Base::from_env().unwrap(),
        store: r.store.clone(),
        signer: keys(&r, false),
    };
    let token = s.enrollment_token(&setup.connector, None).await;
    let (reply, _) = agent
        .handle(request(
            "POST",
            "/api/v3/endpoints/agents/connectors/enroll/",
            Some(&format!("Bearer {token}")),
            Some(json!({"device_serial": format!("LPDK-{}", now()), "device_name": "lp"})),
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let device = reply.body["token"].as_str().unwrap().to_string();
    let (reply, _) = agent
        .handle(request(
            "GET",
            "/api/v3/endpoints/agents/connectors/agent_config/",
            Some(&format!("Bearer+agent {device}")),
            None,
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.to_string().contains(kid),
        "agent_config/ names the data key: {}",
        reply.body
    );
    let agent_accesses = r.recorder.accesses().into_iter().collect::<Vec<_>>();

    BTreeMap::from([
        ("ChallengeFunction", challenge_accesses),
        ("JwksFunction", jwks_accesses),
        ("AgentFunction", agent_accesses),
    ])
}
