//! Profile `entra-eam` (Entra ID external authentication method): the `id_token_hint` Entra
//! issues already expired on purpose, verified against the tenant's keys by signature, issuer,
//! tenant, audience and `iat` (not `exp`); and the `acr` the `claims` parameter asks for.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::model::{KeySource, OidcClient, UnixTime};
use crate::ports::JwksFetcher;

use super::params::{deeper_than, MAX_CLAIMS_DEPTH};

/// How old a hint may be (by `iat`).
pub const MAX_HINT_AGE: i64 = 600;
/// How far in the future a hint's `iat` may be (clock skew).
pub const HINT_SKEW: i64 = 60;
/// The most keys of a tenant's JWKS tried for a hint without a `kid`.
pub const MAX_TENANT_KEYS: usize = 20;

/// What a verified hint says of the user.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct HintClaims {
    pub iss: String,
    pub sub: String,
    pub tid: String,
    pub iat: UnixTime,
    #[serde(default)]
    pub preferred_username: Option<String>,
    #[serde(default)]
    pub oid: Option<String>,
}

/// The verified claims of `hint` for `client`, or why it is refused (for `error_description`).
pub async fn verify_hint<F: JwksFetcher>(
    client: &OidcClient,
    hint: &str,
    now: UnixTime,
    fetcher: &F,
) -> Result<HintClaims, String> {
    let tenant = client
        .entra
        .as_ref()
        .ok_or("The client has no Entra tenant registered.")?;
    let keys: JwkSet = match &tenant.keys {
        KeySource::Inline(text) => {
            serde_json::from_str(text).map_err(|_| "The tenant's keys cannot be read.")?
        }
        KeySource::Uri(url) => fetcher
            .fetch(url)
            .await
            .map_err(|_| "The tenant's keys could not be fetched.")?,
    };
    let header = decode_header(hint).map_err(|_| "The id_token_hint is malformed.")?;
    if header.alg != Algorithm::RS256 {
        return Err("The id_token_hint is not signed with RS256.".into());
    }
    let mut validation = Validation::new(Algorithm::RS256);
    // Entra issues the hint already expired: `exp` is not checked, `iat` is (below).
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["iss", "aud", "sub"]);
    validation.set_audience(&[tenant.app_id.as_str()]);
    let mut verified = None;
    for jwk in keys
        .keys
        .iter()
        .filter(|k| header.kid.is_none() || k.common.key_id == header.kid)
        .take(MAX_TENANT_KEYS)
    {
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        if let Ok(data) = decode::<HintClaims>(hint, &key, &validation) {
            verified = Some(data.claims);
            break;
        }
    }
    let claims = verified
        .ok_or("The id_token_hint is not signed by the tenant or not for this application.")?;
    if !tenant.tenants.contains(&claims.tid) {
        return Err("The id_token_hint is from a tenant this client does not allow.".into());
    }
    if claims.iss != format!("https://login.microsoftonline.com/{}/v2.0", claims.tid) {
        return Err("The id_token_hint's issuer is not its tenant's.".into());
    }
    if claims.iat < now - MAX_HINT_AGE || claims.iat > now + HINT_SKEW {
        return Err("The id_token_hint is too old.".into());
    }
    Ok(claims)
}

/// The `acr` the `claims` parameter asks of the ID token: the first of
/// `id_token.acr.values` (or its `value`); `None` without one. Refused when larger or deeper
/// than the bounds, or not JSON.
pub fn acr_from_claims(claims: Option<&str>) -> Result<Option<String>, String> {
    let Some(text) = claims else {
        return Ok(None);
    };
    let v: Value = serde_json::from_str(text).map_err(|_| "The claims parameter is not JSON.")?;
    if deeper_than(&v, MAX_CLAIMS_DEPTH) {
        return Err("The claims parameter nests too deep.".into());
    }
    let acr = &v["id_token"]["acr"];
    let first = acr["values"]
        .as_array()
        .and_then(|a| a.first())
        .or_else(|| acr.get("value"))
        .and_then(Value::as_str);
    Ok(first
        .filter(|a| !a.is_empty() && a.len() <= 256)
        .map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acr_is_the_first_value_asked() {
        let c = r#"{"id_token":{"acr":{"essential":true,"values":["possessionorinherence","x"]},"amr":{"essential":true,"values":["hwk","fido"]}}}"#;
        assert_eq!(
            acr_from_claims(Some(c)),
            Ok(Some("possessionorinherence".into()))
        );
        assert_eq!(acr_from_claims(None), Ok(None));
        assert!(acr_from_claims(Some("not json")).is_err());
        assert!(acr_from_claims(Some("[[[[[[[[1]]]]]]]]")).is_err());
    }
}
