//! Profile `entra-eam` (Entra ID external authentication method): the `id_token_hint` Entra
//! issues already expired on purpose, verified against the tenant's keys by the domain's
//! `idp::entra` (signature, issuer, tenant, audience, `iat` not `exp`), and the `acr` the
//! `claims` parameter asks for (`idp::claims`). This file only finds the tenant's keys (a file
//! kept with the client, or its URL through the [`JwksFetcher`]) and says why a hint fails.

use crate::idp::claims::{requested_acr, ClaimsError};
use crate::idp::entra::{verify_hint as verify_entra_hint, EntraRules, VerifiedHint};
use crate::idp::tenant_keys::parse_jwks;
use crate::model::{KeySource, OidcClient, UnixTime};
use crate::ports::JwksFetcher;

/// The verified hint of `client`'s request, or why it is refused (for `error_description`).
pub async fn verify_hint<F: JwksFetcher>(
    client: &OidcClient,
    hint: &str,
    now: UnixTime,
    fetcher: &F,
) -> Result<VerifiedHint, String> {
    let tenant = client
        .entra
        .as_ref()
        .ok_or("The client has no Entra tenant registered.")?;
    let document = match &tenant.keys {
        KeySource::Inline(text) => text.as_bytes().to_vec(),
        KeySource::Uri(url) => {
            let fetched = fetcher
                .fetch(url)
                .await
                .map_err(|_| "The tenant's keys could not be fetched.")?;
            serde_json::to_vec(&fetched).map_err(|_| "The tenant's keys cannot be read.")?
        }
    };
    let keys = parse_jwks(&document).map_err(|_| "The tenant's keys cannot be read.")?;
    let rules = EntraRules {
        app_id: &tenant.app_id,
        tenants: &tenant.tenants,
    };
    verify_entra_hint(hint, &keys, &rules, now).map_err(|e| {
        tracing::info!(
            event = "entra_hint_refused",
            reason = e.as_str(),
            "id_token_hint refused"
        );
        format!("The id_token_hint was refused: {e}.")
    })
}

/// The `acr` the `claims` parameter asks of the ID token (`None` without the parameter), or why
/// the parameter is refused.
pub fn acr_from_claims(claims: Option<&str>) -> Result<Option<String>, String> {
    match requested_acr(claims) {
        Ok(acr) => Ok(Some(acr)),
        Err(ClaimsError::Missing) => Ok(None),
        Err(e) => Err(format!("The claims parameter was refused: {e}.")),
    }
}
