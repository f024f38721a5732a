//! Challenges for every key kind, verified by an independent verifier (the RustCrypto crates,
//! not our ring signing code) from the JWK our code publishes, as an agent would.

use crate::common::{add_key, b64, verify_independently, Fx};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use endpoint_core::adapters::local_signer::LocalSigner;
use endpoint_core::model::StageMode;
use endpoint_core::ports::{ChallengeSigner, Clock};
use endpoint_core::protocol::jwk::Jwk;
use endpoint_core::protocol::keys::KeySpec;

#[tokio::test]
async fn challenges_of_every_key_kind_verify_independently() {
    for (spec, alg) in [
        (KeySpec::EccNistP256, "ES256"),
        (KeySpec::EccNistP384, "ES384"),
        (KeySpec::EccNistP521, "ES512"),
        (KeySpec::Rsa2048, "RS256"),
        (KeySpec::Rsa3072, "RS256"),
    ] {
        let mut fx = Fx::new();
        let mut signer = LocalSigner::new();
        let desc = add_key(&mut signer, "k", spec);
        assert_eq!(desc.alg.as_str(), alg);
        fx.signer = signer;
        let (c, s) = fx.setup(StageMode::Required, Some("k"), true).await;
        let mut conn = c.clone();
        conn.challenge_trigger_check_in = true;
        use endpoint_core::ports::Directory;
        fx.store.put_connector(&conn).await.unwrap();
        let plan = fx.plan(&s.id).await;
        let jws = fx.challenge(&plan).await;
        let claims = verify_independently(&jws, &desc.jwk);
        let now = fx.clock.now();
        assert_eq!(claims["iss"], s.id.as_str());
        assert_eq!(
            (claims["iat"].as_i64(), claims["exp"].as_i64()),
            (Some(now), Some(now + 300))
        );
        assert_eq!(
            claims["goauthentik.io/device/check_in"], true,
            "the connector's trigger-check-in flag"
        );
        let atc = claims["atc"].as_str().unwrap();
        assert!(atc.len() == 40 && atc.bytes().all(|b| b.is_ascii_alphanumeric()));
        let keys: Vec<&str> = claims
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 5, "exactly the protocol's claims: {keys:?}");
    }
}

#[tokio::test]
async fn a_tampered_challenge_fails_independent_verification() {
    let mut signer = LocalSigner::new();
    let desc = signer.generate("k", KeySpec::EccNistP256).unwrap();
    let sig = signer.sign("k", b"header.claims").await.unwrap();
    use p256::ecdsa::{signature::Verifier, Signature, VerifyingKey};
    let key = VerifyingKey::from_sec1_bytes(
        &[
            &[4u8][..],
            &b64(desc.jwk.x.as_deref().unwrap()),
            &b64(desc.jwk.y.as_deref().unwrap()),
        ]
        .concat(),
    )
    .unwrap();
    let s = Signature::from_slice(&sig.signature).unwrap();
    assert!(key.verify(b"header.claims", &s).is_ok());
    assert!(key.verify(b"header.claimz", &s).is_err());
}

#[test]
fn jwk_from_spki_matches_the_key_and_kid_is_stable() {
    let mut signer = LocalSigner::new();
    for spec in [
        KeySpec::EccNistP256,
        KeySpec::EccNistP384,
        KeySpec::EccNistP521,
        KeySpec::Rsa2048,
    ] {
        let desc = signer.generate("k", spec).unwrap();
        let der = signer.public_key_der("k").unwrap();
        let (jwk, alg) = Jwk::from_spki_der(der).unwrap();
        assert_eq!((jwk.clone(), alg), (desc.jwk.clone(), desc.alg));
        assert_eq!(jwk.kid, desc.kid);
        assert_eq!(jwk.use_, "sig");
        // The kid is the RFC 7638 thumbprint: recompute it independently.
        let canonical = match jwk.kty.as_str() {
            "EC" => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                jwk.crv.as_deref().unwrap(),
                jwk.x.as_deref().unwrap(),
                jwk.y.as_deref().unwrap()
            ),
            _ => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                jwk.e.as_deref().unwrap(),
                jwk.n.as_deref().unwrap()
            ),
        };
        use sha2::Digest;
        assert_eq!(
            jwk.kid,
            URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical.as_bytes()))
        );
        // And the DER parses with an independent parser to the same point.
        if spec == KeySpec::EccNistP256 {
            use p256::pkcs8::DecodePublicKey;
            let pk = p256::PublicKey::from_public_key_der(der).unwrap();
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            let pt = pk.to_encoded_point(false);
            assert_eq!(
                &pt.x().unwrap()[..],
                b64(jwk.x.as_deref().unwrap()).as_slice()
            );
        }
    }
}

/// The Rust platform agent parses challenge headers with the `jsonwebtoken` crate, then
/// verifies with the JWK it got from `jwks_challenge`. Every challenge we can sign for a
/// connector is accepted by it; P-521 is the one kind it cannot parse (ES512), which is why
/// `endpoint-admin` refuses P-521 challenge keys.
#[tokio::test]
async fn the_rust_agents_jwt_library_accepts_every_challenge_we_can_sign() {
    use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
    for (spec, alg) in [
        (KeySpec::EccNistP256, Algorithm::ES256),
        (KeySpec::EccNistP384, Algorithm::ES384),
        (KeySpec::Rsa2048, Algorithm::RS256),
        (KeySpec::Rsa3072, Algorithm::RS256),
        (KeySpec::Rsa4096, Algorithm::RS256),
    ] {
        let mut fx = Fx::new();
        let mut signer = LocalSigner::new();
        let desc = add_key(&mut signer, "k", spec);
        fx.signer = signer;
        let (_, s) = fx.setup(StageMode::Required, Some("k"), true).await;
        let plan = fx.plan(&s.id).await;
        let jws = fx.challenge(&plan).await;
        let header = decode_header(&jws).unwrap_or_else(|e| panic!("{spec:?}: {e}"));
        assert_eq!(header.alg, alg, "{spec:?}");
        assert_eq!(header.kid.as_deref(), Some(desc.kid.as_str()));
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(serde_json::to_value(&desc.jwk).unwrap()).unwrap();
        let key = DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = Validation::new(alg);
        validation.leeway = 60;
        // The fixture's clock is in the past; the agent checks exp against its own clock.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp"]);
        let claims = decode::<serde_json::Value>(&jws, &key, &validation)
            .unwrap_or_else(|e| panic!("{spec:?}: {e}"))
            .claims;
        assert_eq!(claims["iss"], s.id.as_str());
    }

    let mut fx = Fx::new();
    let mut signer = LocalSigner::new();
    signer.generate("k", KeySpec::EccNistP521).unwrap();
    fx.signer = signer;
    let (_, s) = fx.setup(StageMode::Required, Some("k"), true).await;
    let plan = fx.plan(&s.id).await;
    let jws = fx.challenge(&plan).await;
    assert!(
        decode_header(&jws).is_err(),
        "jsonwebtoken has no ES512: if this starts to pass, P-521 keys could be allowed"
    );
}
