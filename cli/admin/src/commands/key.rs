//! `endpoint-admin key ...`: KMS keys for challenges and for sealing device keys, and the
//! challenge data keys of the `data-key` signing mode (issue 31.4).

use endpoint_core::adapters::aws::load_config;
use endpoint_core::adapters::data_key_signer::{ChallengeKeys, DataKeySigner};
use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::adapters::kms::KmsSigner;
use endpoint_core::adapters::kms_data_keys::KmsDataKeyVault;
use endpoint_core::adapters::vault::KmsVault;
use endpoint_core::admin;
use endpoint_core::audit::AuditKind;
use endpoint_core::ports::{Clock, Directory};
use endpoint_core::protocol::keys::KeySpec;
use serde_json::json;

use super::connector::check_key;
use crate::cli::{Args, KeyCommand};
use crate::clock::OperatorClock;
use crate::error::AdminError;
use crate::output::{audit, Output};
use crate::parsers::{parse_challenge_spec, MAX_REPLICA_REGIONS};

/// The challenge keys the operator's commands check: KMS keys and data keys (described from
/// their records; the operator never unwraps one).
pub(crate) type Keys = ChallengeKeys<KmsSigner, DataKeySigner<DynamoStore, KmsDataKeyVault>>;

pub(crate) fn keys(store: &DynamoStore, signer: &KmsSigner) -> Keys {
    ChallengeKeys {
        kms: signer.clone(),
        data_keys: DataKeySigner::new(store.clone(), None),
    }
}

pub(crate) async fn key(
    cmd: &KeyCommand,
    args: &Args,
    store: &DynamoStore,
    signer: &KmsSigner,
    clock: &OperatorClock,
) -> Result<Output, AdminError> {
    match cmd {
        KeyCommand::Create {
            spec,
            alias,
            stack,
            replicate_to,
        } => {
            let spec: KeySpec = parse_challenge_spec(spec)
                .and_then(|s| s.parse())
                .map_err(AdminError::Usage)?;
            check_replicas(replicate_to)?;
            let id = signer
                .create_stack_key(spec, "endpoint-stage challenge key", stack.as_deref())
                .await?;
            for region in replicate_to {
                signer.replicate(&id, region, stack.as_deref()).await?;
            }
            if let Some(alias) = alias {
                signer.set_alias(alias, &id).await?;
            }
            Ok(Output::value("key_id", &id))
        }
        KeyCommand::CreateSealing { replicate_to } => {
            check_replicas(replicate_to)?;
            let config = load_config().await;
            let id =
                KmsVault::create_key(&config, "endpoint-stage device token sealing key").await?;
            for region in replicate_to {
                KmsVault::replicate_key(&config, &id, region).await?;
            }
            Ok(Output::value("key_id", &id))
        }
        KeyCommand::CreateWrapping { replicate_to } => {
            check_replicas(replicate_to)?;
            let vault = KmsDataKeyVault::new(signer.client().clone(), &args.table);
            let id = vault
                .create_wrapping_key("endpoint-stage challenge data key wrapping key")
                .await?;
            let config = load_config().await;
            for region in replicate_to {
                KmsVault::replicate_key(&config, &id, region).await?;
            }
            Ok(Output::value("key_id", &id))
        }
        KeyCommand::CreateDataKey {
            wrapping_key,
            for_connector,
        } => {
            let vault = KmsDataKeyVault::new(signer.client().clone(), &args.table);
            let new = admin::create_data_key(store, &vault, wrapping_key, clock.now()).await?;
            let mut out = Output {
                plain: new.reference.clone(),
                json: json!({
                    "key_id": new.reference,
                    "kid": new.kid,
                    "wrapping_key": new.wrapping_key,
                }),
                audit: None,
            };
            if let Some(id) = for_connector {
                let c = store
                    .get_connector(id)
                    .await?
                    .ok_or_else(|| AdminError::NotFound(format!("connector {id}")))?;
                check_key(&keys(store, signer), &new.reference).await?;
                let (kind, step) = if c.challenge_key.is_some() {
                    admin::add_next_key(store, clock, id, &new.reference).await?;
                    (AuditKind::ChallengeKeyAdded, "next key")
                } else {
                    admin::set_connector_key(store, clock, id, &new.reference).await?;
                    (AuditKind::ChallengeKeyRotated, "set-key")
                };
                out.json["connector"] = json!(id);
                out.json["as"] = json!(step);
                out = out.audited(
                    audit(kind)
                        .connector(id)
                        .reason(format!("{step} {}", new.reference)),
                );
            }
            Ok(out)
        }
    }
}

/// At most [`MAX_REPLICA_REGIONS`] replica regions, each named once.
fn check_replicas(regions: &[String]) -> Result<(), AdminError> {
    if regions.len() > MAX_REPLICA_REGIONS {
        return Err(AdminError::Usage(format!(
            "--replicate-to names more than {MAX_REPLICA_REGIONS} regions"
        )));
    }
    if regions
        .iter()
        .enumerate()
        .any(|(i, r)| regions[..i].contains(r))
    {
        return Err(AdminError::Usage(
            "--replicate-to names a region twice".into(),
        ));
    }
    Ok(())
}
