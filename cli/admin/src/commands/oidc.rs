//! `endpoint-admin oidc client ...`: the OpenID provider's clients, audited.

use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::audit::AuditKind;
use endpoint_core::model::{EntraTenant, KeySource};
use endpoint_core::oidc::clients::{
    client_view, create_client, rotate_secret, NewClient, MAX_INLINE_JWKS,
};
use endpoint_core::ports::{OidcStore, SystemRandom};
use serde_json::json;

use crate::clock::OperatorClock;
use crate::error::AdminError;
use crate::oidc_args::{ClientCommand, CreateClient, OidcCommand};
use crate::output::{audit, Output};

fn usage(e: String) -> AdminError {
    AdminError::Usage(e)
}

/// A key source from `--...-uri` or `--...-file` (the file read now, bounded).
fn keys(
    uri: &Option<String>,
    file: &Option<std::path::PathBuf>,
) -> Result<Option<KeySource>, AdminError> {
    match (uri, file) {
        (Some(u), _) => Ok(Some(KeySource::Uri(u.clone()))),
        (None, Some(path)) => {
            let meta =
                std::fs::metadata(path).map_err(|e| usage(format!("{}: {e}", path.display())))?;
            if meta.len() > MAX_INLINE_JWKS as u64 {
                return Err(usage(format!(
                    "{}: a JWKS file is at most 16 KiB",
                    path.display()
                )));
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(format!("{}: {e}", path.display())))?;
            Ok(Some(KeySource::Inline(text)))
        }
        (None, None) => Ok(None),
    }
}

pub async fn oidc(
    cmd: &OidcCommand,
    store: &DynamoStore,
    clock: &OperatorClock,
    rng: &SystemRandom,
) -> Result<Output, AdminError> {
    let OidcCommand::Client(cmd) = cmd;
    match cmd {
        ClientCommand::Create(create) => {
            let CreateClient {
                name,
                profile,
                stage,
                redirect_uris,
                auth,
                jwks_uri,
                jwks_file,
                alg,
                match_owner,
                entra_app_id,
                entra_tenants,
                entra_jwks_uri,
                entra_jwks_file,
            } = create.as_ref();
            let entra_keys = keys(entra_jwks_uri, entra_jwks_file)?;
            let entra = match (entra_app_id, entra_keys) {
                (None, None) if entra_tenants.is_empty() => None,
                (Some(app_id), Some(keys)) => Some(EntraTenant {
                    app_id: app_id.clone(),
                    tenants: entra_tenants.clone(),
                    keys,
                }),
                _ => {
                    return Err(usage(
                        "Entra needs --entra-app-id, --entra-tenant and --entra-jwks-uri or --entra-jwks-file together".into(),
                    ))
                }
            };
            let new = NewClient {
                name: name.clone(),
                profile: profile.parse().map_err(usage)?,
                stage: stage.clone(),
                redirect_uris: redirect_uris.clone(),
                auth: auth.parse().map_err(usage)?,
                jwks: keys(jwks_uri, jwks_file)?,
                alg: alg.parse().map_err(usage)?,
                match_owner: match_owner
                    .as_deref()
                    .map(str::parse)
                    .transpose()
                    .map_err(usage)?,
                entra,
            };
            let (client, secret) = create_client(store, clock, rng, new).await?;
            let secret = secret.as_ref().map(|s| s.expose().to_string());
            let mut plain = client.id.clone();
            if let Some(s) = &secret {
                plain.push('\n');
                plain.push_str(s);
            }
            Ok(Output {
                plain,
                json: json!({"client_id": client.id, "client_secret": secret}),
                audit: Some(
                    audit(AuditKind::OidcClientChanged)
                        .reason(format!("oidc client {} created", client.id)),
                ),
            })
        }
        ClientCommand::List => {
            let list = store.list_clients().await?;
            Ok(Output {
                plain: list
                    .iter()
                    .map(|c| format!("{}\t{}\t{}\t{}", c.id, c.name, c.profile.as_str(), c.stage))
                    .collect::<Vec<_>>()
                    .join("\n"),
                json: json!({"clients": list.iter().map(client_view).collect::<Vec<_>>()}),
                audit: None,
            })
        }
        ClientCommand::Show { id } => {
            let c = store
                .get_client(id)
                .await?
                .ok_or_else(|| AdminError::NotFound(format!("client {id}")))?;
            let view = client_view(&c);
            Ok(Output {
                plain: serde_json::to_string_pretty(&view).unwrap_or_default(),
                json: view,
                audit: None,
            })
        }
        ClientCommand::RotateSecret { id } => {
            let secret = rotate_secret(store, rng, id).await?;
            Ok(Output::value("client_secret", secret.expose()).audited(
                audit(AuditKind::OidcClientChanged)
                    .reason(format!("oidc client {id} secret rotated")),
            ))
        }
        ClientCommand::Delete { id } => {
            if !store.delete_client(id).await? {
                return Err(AdminError::NotFound(format!("client {id}")));
            }
            Ok(Output::value("deleted", id).audited(
                audit(AuditKind::OidcClientChanged).reason(format!("oidc client {id} deleted")),
            ))
        }
    }
}
