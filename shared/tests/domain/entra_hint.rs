//! Entra's `id_token_hint`, verified against a stand-in tenant: a locally generated RSA key
//! (the `rsa` crate generates it, ring signs), hints signed with it the way Entra signs them (RS256, expired on purpose), and
//! checked by `idp::entra::verify_hint` (jsonwebtoken underneath). The tenant's JWKS is parsed
//! from a document as Entra publishes it (RSA keys without `alg`, with `x5t`/`issuer`), and
//! fetched through the egress policy and a cache.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::add_key;
use endpoint_core::adapters::local_signer::LocalSigner;
use endpoint_core::adapters::memory::StaticResolver;
use endpoint_core::egress::{Egress, EgressPolicy};
use endpoint_core::idp::entra::{
    hint_kid, verify_hint, EntraRules, HintError, MAX_HINT_AGE, MAX_HINT_BYTES,
};
use endpoint_core::idp::owners::{match_owner, NamedBy, OwnerClaim};
use endpoint_core::idp::tenant_keys::{
    parse_jwks, FetchFailure, FetchKeys, KeysCache, KeysError, KEYS_TTL, MAX_JWKS_BYTES,
    REFETCH_INTERVAL,
};
use endpoint_core::protocol::b64url;
use endpoint_core::protocol::keys::KeySpec;
use serde_json::{json, Value};

const TID: &str = "9d2c1f4e-0000-4000-8000-00000000c0de";
const APP: &str = "6c3b2a10-0000-4000-8000-00000000a99e";
const NOW: i64 = 1_800_000_000;

/// A stand-in tenant: an RSA key, its JWKS as Entra publishes it, and hints signed with it.
struct Tenant {
    signer: LocalSigner,
    kid: String,
    jwk: endpoint_core::protocol::jwk::Jwk,
}

impl Tenant {
    fn new() -> Self {
        let mut signer = LocalSigner::new();
        let described = add_key(&mut signer, "tenant", KeySpec::Rsa2048);
        Tenant {
            signer,
            kid: described.kid,
            jwk: described.jwk,
        }
    }

    /// The JWKS document: the key as Entra shows it (no `alg`, `x5t`, `issuer`), beside an EC
    /// key and an `enc` key that are skipped.
    fn jwks(&self) -> Vec<u8> {
        let jwk = &self.jwk;
        json!({"keys": [
            {"kty": "EC", "use": "sig", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "RSA", "use": "enc", "kid": "enc", "n": jwk.n, "e": jwk.e},
            {"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": "abc", "n": jwk.n, "e": jwk.e,
             "x5c": ["MIIB"], "issuer": format!("https://login.microsoftonline.com/{TID}/v2.0")},
        ]})
        .to_string()
        .into_bytes()
    }

    /// A hint with `claims`, signed with `alg` in its header (the signature is RS256's).
    fn sign(&self, header: Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let sig = self.signer.sign_now("tenant", input.as_bytes()).unwrap();
        format!("{input}.{}", b64url(&sig.signature))
    }

    fn hint(&self, claims: &Value) -> String {
        self.sign(
            json!({"typ": "JWT", "alg": "RS256", "kid": self.kid}),
            claims,
        )
    }
}

/// Entra's hint: issued a minute ago, expired already.
fn claims() -> Value {
    json!({
        "iss": format!("https://login.microsoftonline.com/{TID}/v2.0"),
        "aud": APP,
        "tid": TID,
        "oid": "0b1c-oid",
        "sub": "pairwise-sub-of-alice",
        "preferred_username": "Alice@Contoso.example",
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW - 30,
    })
}

fn with(mut c: Value, key: &str, value: Value) -> Value {
    c[key] = value;
    c
}

fn rules(tenants: &[String]) -> EntraRules<'_> {
    EntraRules {
        app_id: APP,
        tenants,
    }
}

fn tenants() -> Vec<String> {
    vec!["another-tenant".into(), TID.into()]
}

#[test]
fn a_valid_expired_hint_verifies_and_names_the_user() {
    let t = Tenant::new();
    let keys = parse_jwks(&t.jwks()).unwrap();
    assert_eq!(keys.keys.len(), 1, "the EC and enc keys are skipped");
    let hint = t.hint(&claims());
    assert_eq!(hint_kid(&hint).unwrap().as_deref(), Some(t.kid.as_str()));
    let tenants = tenants();
    let v = verify_hint(&hint, &keys, &rules(&tenants), NOW).unwrap();
    assert_eq!(v.sub, "pairwise-sub-of-alice");
    assert_eq!(v.tid, TID);
    assert_eq!(v.oid.as_deref(), Some("0b1c-oid"));
    assert_eq!(v.iat, NOW - 60);

    // Its names are what owner matching reads, ahead of any login_hint.
    let named = NamedBy {
        hint: Some(v.names()),
        login_hint: Some("mallory@contoso.example"),
    };
    let owners = vec!["alice@contoso.example".to_string()];
    let m = match_owner(OwnerClaim::PreferredUsername, &named, &owners).unwrap();
    assert_eq!(m.preferred_username, "Alice@Contoso.example");
    let m = match_owner(OwnerClaim::Sub, &named, &["pairwise-sub-of-alice".into()]).unwrap();
    assert_eq!(m.owner, "pairwise-sub-of-alice");

    // An `aud` array holding the app id, and no `tid` claim, verify too.
    let c = with(claims(), "aud", json!(["other", APP]));
    let mut c = c;
    c.as_object_mut().unwrap().remove("tid");
    assert!(verify_hint(&t.hint(&c), &keys, &rules(&tenants), NOW).is_ok());
}

#[test]
fn freshness_is_by_iat_only() {
    let t = Tenant::new();
    let keys = parse_jwks(&t.jwks()).unwrap();
    let tenants = tenants();
    let r = rules(&tenants);
    // exp long past: accepted (by design); iat at the limit: accepted; a second more: refused.
    let old_exp = with(claims(), "exp", json!(NOW - 86_400));
    assert!(verify_hint(&t.hint(&old_exp), &keys, &r, NOW).is_ok());
    let at_limit = with(claims(), "iat", json!(NOW - MAX_HINT_AGE));
    assert!(verify_hint(&t.hint(&at_limit), &keys, &r, NOW).is_ok());
    let too_old = with(claims(), "iat", json!(NOW - MAX_HINT_AGE - 1));
    assert_eq!(
        verify_hint(&t.hint(&too_old), &keys, &r, NOW),
        Err(HintError::TooOld)
    );
    let future = with(claims(), "iat", json!(NOW + 3600));
    assert_eq!(
        verify_hint(&t.hint(&future), &keys, &r, NOW),
        Err(HintError::FromTheFuture)
    );
    let mut no_iat = claims();
    no_iat.as_object_mut().unwrap().remove("iat");
    assert_eq!(
        verify_hint(&t.hint(&no_iat), &keys, &r, NOW),
        Err(HintError::MissingClaim("iat"))
    );
}

#[test]
fn foreign_tenants_other_issuers_and_other_audiences_are_refused() {
    let t = Tenant::new();
    let keys = parse_jwks(&t.jwks()).unwrap();
    let tenants = tenants();
    let r = rules(&tenants);
    let foreign =
        json!("https://login.microsoftonline.com/f0f0f0f0-0000-4000-8000-000000000000/v2.0");
    assert_eq!(
        verify_hint(&t.hint(&with(claims(), "iss", foreign)), &keys, &r, NOW),
        Err(HintError::ForeignTenant)
    );
    // The issuer names an allowed tenant but `tid` another one.
    assert_eq!(
        verify_hint(
            &t.hint(&with(claims(), "tid", json!("another-tenant"))),
            &keys,
            &r,
            NOW
        ),
        Err(HintError::ForeignTenant)
    );
    for iss in [
        format!("https://sts.windows.net/{TID}/"),
        format!("https://login.microsoftonline.com/{TID}/v2.0/extra"),
        format!("https://login.microsoftonline.com/{TID}"),
        format!("http://login.microsoftonline.com/{TID}/v2.0"),
        "https://login.microsoftonline.com//v2.0".to_string(),
    ] {
        assert_eq!(
            verify_hint(&t.hint(&with(claims(), "iss", json!(iss))), &keys, &r, NOW),
            Err(HintError::Issuer),
            "{iss}"
        );
    }
    assert_eq!(
        verify_hint(
            &t.hint(&with(claims(), "aud", json!("someone-else"))),
            &keys,
            &r,
            NOW
        ),
        Err(HintError::Audience)
    );
    assert_eq!(
        verify_hint(&t.hint(&with(claims(), "aud", json!([]))), &keys, &r, NOW),
        Err(HintError::Audience)
    );
    let mut no_sub = claims();
    no_sub.as_object_mut().unwrap().remove("sub");
    assert_eq!(
        verify_hint(&t.hint(&no_sub), &keys, &r, NOW),
        Err(HintError::MissingClaim("sub"))
    );
    // A client that allows no tenant accepts nothing.
    assert_eq!(
        verify_hint(&t.hint(&claims()), &keys, &rules(&[]), NOW),
        Err(HintError::ForeignTenant)
    );
}

#[test]
fn only_rs256_signed_by_the_tenant_passes() {
    let t = Tenant::new();
    let keys = parse_jwks(&t.jwks()).unwrap();
    let tenants = tenants();
    let r = rules(&tenants);
    let good = t.hint(&claims());
    let (input, _) = good.rsplit_once('.').unwrap();
    let payload = input.split('.').nth(1).unwrap();
    for alg in ["none", "HS256", "HS512", "ES256", "PS256", "RS512"] {
        let header = b64url(json!({"alg": alg, "kid": t.kid}).to_string().as_bytes());
        let sig = if alg == "none" { "" } else { "c2ln" };
        let forged = format!("{header}.{payload}.{sig}");
        assert_eq!(
            verify_hint(&forged, &keys, &r, NOW),
            Err(HintError::Algorithm(alg.into())),
            "{alg}"
        );
    }
    // The right header, a signature over other claims.
    let (_, other_sig) = t
        .hint(&with(claims(), "sub", json!("someone-else")))
        .rsplit_once('.')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap();
    assert_eq!(
        verify_hint(&format!("{input}.{other_sig}"), &keys, &r, NOW),
        Err(HintError::BadSignature)
    );
    // Signed by another tenant's key under the same kid.
    let other = Tenant::new();
    let forged = other.sign(json!({"alg": "RS256", "kid": t.kid}), &claims());
    assert_eq!(
        verify_hint(&forged, &keys, &r, NOW),
        Err(HintError::BadSignature)
    );
    // A kid the tenant does not have.
    let unknown = other.hint(&claims());
    assert_eq!(
        verify_hint(&unknown, &keys, &r, NOW),
        Err(HintError::UnknownKey)
    );
    // Malformed and oversized hints.
    for bad in ["a.b", "a.b.c.d", "!!.b.c", &format!("{input}.")] {
        assert!(verify_hint(bad, &keys, &r, NOW).is_err(), "{bad}");
    }
    assert_eq!(verify_hint("", &keys, &r, NOW), Err(HintError::Missing));
    let huge = "a".repeat(MAX_HINT_BYTES + 1);
    assert_eq!(verify_hint(&huge, &keys, &r, NOW), Err(HintError::TooLarge));
}

#[test]
fn jwks_documents_are_bounded_and_need_a_usable_key() {
    let t = Tenant::new();
    assert!(parse_jwks(&t.jwks()).is_ok());
    assert_eq!(parse_jwks(b"{}").unwrap_err(), KeysError::Malformed);
    assert_eq!(parse_jwks(b"not json").unwrap_err(), KeysError::Malformed);
    assert_eq!(
        parse_jwks(br#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}"#).unwrap_err(),
        KeysError::NoUsableKey
    );
    // A 1024-bit RSA key is skipped.
    let short = json!({"keys": [{"kty": "RSA", "n": b64url(&[0xC5; 128]), "e": "AQAB"}]});
    assert_eq!(
        parse_jwks(short.to_string().as_bytes()).unwrap_err(),
        KeysError::NoUsableKey
    );
    let many = json!({"keys": vec![json!({"kty": "oct"}); 65]});
    assert_eq!(
        parse_jwks(many.to_string().as_bytes()).unwrap_err(),
        KeysError::TooManyKeys
    );
    let huge = vec![b' '; MAX_JWKS_BYTES + 1];
    assert_eq!(parse_jwks(&huge).unwrap_err(), KeysError::TooLarge);
}

/// A fetcher that serves one document and counts its fetches.
struct Served {
    body: std::sync::Mutex<Vec<u8>>,
    fetches: Arc<AtomicUsize>,
    fail: std::sync::atomic::AtomicBool,
}

impl FetchKeys for Served {
    async fn fetch(&self, _url: &str, max_bytes: usize) -> Result<Vec<u8>, FetchFailure> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(FetchFailure::Unavailable);
        }
        let body = self.body.lock().unwrap().clone();
        if body.len() > max_bytes {
            return Err(FetchFailure::Unavailable);
        }
        Ok(body)
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn fetched_keys_go_through_the_egress_policy_and_are_cached() {
    let t = Tenant::new();
    let fetches = Arc::new(AtomicUsize::new(0));
    let served = Served {
        body: std::sync::Mutex::new(t.jwks()),
        fetches: fetches.clone(),
        fail: false.into(),
    };
    let resolver = StaticResolver::new()
        .with("login.microsoftonline.com", &[ip("20.190.160.1")])
        .with("inside.example", &[ip("10.0.0.5")]);
    let cache = KeysCache::new(
        served,
        Egress {
            policy: EgressPolicy::PublicOnly,
            resolver,
        },
    );
    let url = format!("https://login.microsoftonline.com/{TID}/discovery/v2.0/keys");
    let kid = Some(t.kid.as_str());
    let keys = cache.keys_for(&url, kid, NOW).await.unwrap();
    let tenants = tenants();
    assert!(verify_hint(&t.hint(&claims()), &keys, &rules(&tenants), NOW).is_ok());
    cache.keys_for(&url, kid, NOW + 10).await.unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "cached");

    // Inside addresses, plain http: and unresolvable names are never fetched.
    for refused in [
        "https://inside.example/keys",
        "https://127.0.0.1/keys",
        "http://login.microsoftonline.com/keys",
        "https://nowhere.example/keys",
    ] {
        assert!(
            cache.keys_for(refused, kid, NOW).await.is_err(),
            "{refused}"
        );
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "nothing fetched");

    // An unknown kid refetches, but at most once per interval.
    cache
        .keys_for(&url, Some("rolled"), NOW + 20)
        .await
        .unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "too soon to refetch");
    cache
        .keys_for(&url, Some("rolled"), NOW + REFETCH_INTERVAL)
        .await
        .unwrap();
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "refetched for the unknown kid"
    );
    // Past the TTL: fetched again.
    cache
        .keys_for(&url, kid, NOW + REFETCH_INTERVAL + KEYS_TTL)
        .await
        .unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_failed_refetch_keeps_the_cached_keys_for_a_day_at_most() {
    let t = Tenant::new();
    let fetches = Arc::new(AtomicUsize::new(0));
    let served = Served {
        body: std::sync::Mutex::new(t.jwks()),
        fetches: fetches.clone(),
        fail: false.into(),
    };
    let cache = KeysCache::new(
        served,
        Egress {
            policy: EgressPolicy::AllowLoopback,
            resolver: StaticResolver::new(),
        },
    );
    let url = "http://127.0.0.1:9/keys";
    let kid = Some(t.kid.as_str());
    cache.keys_for(url, kid, NOW).await.unwrap();
    cache_fail(&cache, true);
    assert!(
        cache.keys_for(url, kid, NOW + KEYS_TTL).await.is_ok(),
        "stale but usable"
    );
    assert_eq!(
        cache.keys_for(url, kid, NOW + 86_400).await.unwrap_err(),
        KeysError::Unavailable
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 3);
}

fn cache_fail(cache: &KeysCache<Served, StaticResolver>, fail: bool) {
    cache.fetcher().fail.store(fail, Ordering::SeqCst);
}
