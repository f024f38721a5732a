//! The operator's client registrations (`endpoint-admin oidc client ...`): each input bounded,
//! the secret made here, shown once and stored as its hash.

use url::Url;

use crate::error::CoreError;
use crate::model::{
    ClientAuth, EntraTenant, IdTokenAlg, KeySource, OidcClient, OwnerClaim, Profile,
};
use crate::ports::{random_alnum, random_id, Clock, Directory, OidcStore, Random};
use crate::secret::Secret;

use super::secret_hash;

/// The most redirect URIs one client registers, and the longest.
pub const MAX_REDIRECT_URIS: usize = 10;
pub const MAX_REDIRECT_URI: usize = 2048;
/// The most Entra tenants one client allows.
pub const MAX_TENANTS: usize = 20;
/// The largest JWKS kept inline (read from a file).
pub const MAX_INLINE_JWKS: usize = 16 * 1024;
/// The longest client name.
pub const MAX_NAME: usize = 128;

/// What the operator asks of a new client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewClient {
    pub name: String,
    pub profile: Profile,
    pub stage: String,
    pub redirect_uris: Vec<String>,
    pub auth: ClientAuth,
    pub jwks: Option<KeySource>,
    pub alg: IdTokenAlg,
    pub match_owner: Option<OwnerClaim>,
    pub entra: Option<EntraTenant>,
}

fn bad(why: impl Into<String>) -> CoreError {
    CoreError::BadRequest(why.into())
}

/// A redirect URI a client may register: an absolute `https:` URL (`http:` only to a loopback
/// host), without fragment or user information.
pub fn check_redirect_uri(uri: &str) -> Result<(), CoreError> {
    if uri.len() > MAX_REDIRECT_URI {
        return Err(bad("a redirect URI is at most 2048 characters"));
    }
    let url = Url::parse(uri).map_err(|_| bad(format!("{uri:?} is not an absolute URL")))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !scheme_ok
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(bad(format!(
            "{uri:?}: a redirect URI is https: (http: only on a loopback host), without fragment or user information"
        )));
    }
    Ok(())
}

fn check_keys(keys: &KeySource) -> Result<(), CoreError> {
    match keys {
        KeySource::Inline(text) => {
            if text.len() > MAX_INLINE_JWKS {
                return Err(bad("a JWKS file is at most 16 KiB"));
            }
            serde_json::from_str::<jsonwebtoken::jwk::JwkSet>(text)
                .map(|_| ())
                .map_err(|_| bad("the JWKS file is not a JWK set"))
        }
        KeySource::Uri(u) => check_redirect_uri(u)
            .map_err(|_| bad("a JWKS URL is https: (http: only on a loopback host)")),
    }
}

/// Registers a client: its id, and its secret (shown once) unless it uses `private_key_jwt`.
pub async fn create_client<S: OidcStore + Directory>(
    store: &S,
    clock: &(impl Clock + ?Sized),
    rng: &(impl Random + ?Sized),
    new: NewClient,
) -> Result<(OidcClient, Option<Secret>), CoreError> {
    let name_ok = (1..=MAX_NAME).contains(&new.name.chars().count())
        && !new.name.chars().any(char::is_control);
    if !name_ok {
        return Err(bad(
            "a client name is 1 to 128 characters without control characters",
        ));
    }
    if new.redirect_uris.is_empty() || new.redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(bad("a client registers 1 to 10 redirect URIs"));
    }
    for uri in &new.redirect_uris {
        check_redirect_uri(uri)?;
    }
    if store.get_stage(&new.stage).await?.is_none() {
        return Err(CoreError::NotFound(format!("stage {}", new.stage)));
    }
    match (new.auth, &new.jwks) {
        (ClientAuth::PrivateKeyJwt, None) => {
            return Err(bad(
                "private_key_jwt needs the client's keys (--jwks-file or --jwks-uri)",
            ))
        }
        (_, Some(keys)) => check_keys(keys)?,
        _ => {}
    }
    match (new.profile, &new.entra) {
        (Profile::EntraEam, None) => {
            return Err(bad(
                "profile entra-eam needs --entra-app-id, --entra-tenant and the tenant's keys",
            ))
        }
        (Profile::EntraEam, Some(t)) => {
            if new.alg != IdTokenAlg::RS256 {
                return Err(bad("profile entra-eam signs with RS256 only"));
            }
            if t.app_id.is_empty() || t.app_id.len() > 128 {
                return Err(bad("--entra-app-id is 1 to 128 characters"));
            }
            if t.tenants.is_empty()
                || t.tenants.len() > MAX_TENANTS
                || t.tenants.iter().any(|x| x.is_empty() || x.len() > 128)
            {
                return Err(bad("a client allows 1 to 20 Entra tenants"));
            }
            check_keys(&t.keys)?;
        }
        (Profile::Code, Some(_)) => return Err(bad("Entra options are for profile entra-eam")),
        (Profile::Code, None) => {}
    }
    let secret =
        (new.auth != ClientAuth::PrivateKeyJwt).then(|| Secret::new(random_alnum(rng, 43)));
    let client = OidcClient {
        id: random_id(rng, 16),
        name: new.name,
        profile: new.profile,
        stage: new.stage,
        redirect_uris: new.redirect_uris,
        auth: new.auth,
        secret_sha256: secret.as_ref().map(|s| secret_hash(s.expose())),
        jwks: new.jwks,
        alg: new.alg,
        match_owner: new.match_owner,
        entra: new.entra,
        created_at: clock.now(),
    };
    store.create_client(&client).await?;
    Ok((client, secret))
}

/// A new secret for a secret-authenticated client (the old one stops working at once).
pub async fn rotate_secret<S: OidcStore>(
    store: &S,
    rng: &(impl Random + ?Sized),
    id: &str,
) -> Result<Secret, CoreError> {
    let mut client = store
        .get_client(id)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("client {id}")))?;
    if client.auth == ClientAuth::PrivateKeyJwt {
        return Err(CoreError::Conflict(
            "this client authenticates with private_key_jwt: it has no secret".into(),
        ));
    }
    let secret = Secret::new(random_alnum(rng, 43));
    client.secret_sha256 = Some(secret_hash(secret.expose()));
    store.replace_client(&client).await?;
    Ok(secret)
}

/// A client as the operator sees it: every field but the secret's hash.
pub fn client_view(c: &OidcClient) -> serde_json::Value {
    serde_json::json!({
        "client_id": c.id,
        "name": c.name,
        "profile": c.profile.as_str(),
        "stage": c.stage,
        "redirect_uris": c.redirect_uris,
        "auth": c.auth.as_str(),
        "jwks": c.jwks.as_ref().map(|k| match k { KeySource::Inline(_) => "file".to_string(), KeySource::Uri(u) => u.clone() }),
        "alg": c.alg.as_str(),
        "match_owner": c.match_owner.map(OwnerClaim::as_str),
        "entra": c.entra.as_ref().map(|t| serde_json::json!({
            "app_id": t.app_id,
            "tenants": t.tenants,
            "jwks": match &t.keys { KeySource::Inline(_) => "file".to_string(), KeySource::Uri(u) => u.clone() },
        })),
        "created_at": c.created_at,
    })
}
