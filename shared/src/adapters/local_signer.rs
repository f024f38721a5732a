//! A software challenge signer with in-process keys. For tests, benchmarks and the device
//! simulator; production signs with KMS. ring signs (P-256, P-384, RSA PKCS#1 v1.5 SHA-256);
//! what ring cannot do comes from the RustCrypto crates already in the tree: RSA key generation
//! (`rsa`, its key then handed to ring) and P-521 (`p521`, which KMS offers and ring lacks).

use std::collections::HashMap;

use p521::ecdsa::signature::RandomizedSigner;
use p521::pkcs8::EncodePublicKey;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::EncodePrivateKey;
use rsa::rand_core::OsRng;

use crate::adapters::data_key_signer::p256_spki;
use crate::error::SignerError;
use crate::ports::{ChallengeSigner, JoseSignature, KeyDescription};
use crate::protocol::jwk::Jwk;
use crate::protocol::keys::KeySpec;

enum Private {
    Ec(EcdsaKeyPair),
    P521(Box<p521::ecdsa::SigningKey>),
    Rsa(RsaKeyPair),
}

/// The DER prefix of a P-384 public key's SubjectPublicKeyInfo (id-ecPublicKey, secp384r1, a
/// 98-byte BIT STRING): followed by the 97-byte uncompressed point, it is the whole document.
const P384_SPKI_PREFIX: [u8; 23] = [
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];

struct LocalKey {
    private: Private,
    spki_der: Vec<u8>,
    description: KeyDescription,
}

/// Holds named software keys.
#[derive(Default)]
pub struct LocalSigner {
    keys: HashMap<String, LocalKey>,
}

impl LocalSigner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Generates a key of `spec` under `name`.
    pub fn generate(&mut self, name: &str, spec: KeySpec) -> Result<KeyDescription, SignerError> {
        let unusable = |reason: &str| SignerError::KeyUnusable {
            key: name.to_string(),
            reason: reason.to_string(),
        };
        let (private, spki_der) = match spec {
            KeySpec::EccNistP256 | KeySpec::EccNistP384 => {
                let rng = SystemRandom::new();
                let alg = match spec {
                    KeySpec::EccNistP256 => &ECDSA_P256_SHA256_FIXED_SIGNING,
                    _ => &ECDSA_P384_SHA384_FIXED_SIGNING,
                };
                let pair = EcdsaKeyPair::generate_pkcs8(alg, &rng)
                    .and_then(|doc| {
                        EcdsaKeyPair::from_pkcs8(alg, doc.as_ref(), &rng)
                            .map_err(|_| ring::error::Unspecified)
                    })
                    .map_err(|_| unusable("EC key generation failed"))?;
                let point = pair.public_key().as_ref();
                let der = match spec {
                    KeySpec::EccNistP256 => p256_spki(point),
                    _ => [&P384_SPKI_PREFIX[..], point].concat(),
                };
                (Private::Ec(pair), der)
            }
            KeySpec::EccNistP521 => {
                let secret = p521::SecretKey::random(&mut OsRng);
                let der = secret
                    .public_key()
                    .to_public_key_der()
                    .map_err(|_| unusable("public key encoding failed"))?
                    .into_vec();
                let key = p521::ecdsa::SigningKey::from_bytes(&secret.to_bytes())
                    .map_err(|_| unusable("EC key generation failed"))?;
                (Private::P521(Box::new(key)), der)
            }
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                let bits = match spec {
                    KeySpec::Rsa2048 => 2048,
                    KeySpec::Rsa3072 => 3072,
                    _ => 4096,
                };
                let failed = || unusable("RSA key generation failed");
                let key = rsa::RsaPrivateKey::new(&mut OsRng, bits).map_err(|_| failed())?;
                let pkcs8 = key.to_pkcs8_der().map_err(|_| failed())?;
                return self.import_rsa(name, pkcs8.as_bytes());
            }
        };
        self.insert(name, private, spki_der)
    }

    /// Holds the RSA private key `pkcs8_der` (PKCS#8 DER, 2048, 3072 or 4096 bits as KMS's RSA
    /// keys) under `name`, as KMS imports key material. RSA key generation takes seconds (the
    /// tests import keys made ahead: shared/tests/fixtures/rsa).
    pub fn import_rsa(
        &mut self,
        name: &str,
        pkcs8_der: &[u8],
    ) -> Result<KeyDescription, SignerError> {
        let unusable = |reason: &str| SignerError::KeyUnusable {
            key: name.to_string(),
            reason: reason.to_string(),
        };
        let pair = RsaKeyPair::from_pkcs8(pkcs8_der)
            .map_err(|_| unusable("not an RSA private key in PKCS#8 DER"))?;
        if ![256, 384, 512].contains(&pair.public().modulus_len()) {
            return Err(unusable("RSA keys are of 2048, 3072 or 4096 bits"));
        }
        let spki_der = rsa::RsaPublicKey::from_pkcs1_der(pair.public().as_ref())
            .map_err(|_| unusable("public key decoding failed"))?
            .to_public_key_der()
            .map_err(|_| unusable("public key encoding failed"))?
            .into_vec();
        self.insert(name, Private::Rsa(pair), spki_der)
    }

    /// Holds `private` (whose SPKI DER public key is `spki_der`) under `name`.
    fn insert(
        &mut self,
        name: &str,
        private: Private,
        spki_der: Vec<u8>,
    ) -> Result<KeyDescription, SignerError> {
        let (jwk, alg) = Jwk::from_spki_der(&spki_der).map_err(|e| SignerError::KeyUnusable {
            key: name.to_string(),
            reason: e.to_string(),
        })?;
        let description = KeyDescription {
            alg,
            kid: jwk.kid.clone(),
            jwk,
        };
        self.keys.insert(
            name.to_string(),
            LocalKey {
                private,
                spki_der,
                description: description.clone(),
            },
        );
        Ok(description)
    }

    /// The SPKI DER public key of `name`.
    pub fn public_key_der(&self, name: &str) -> Option<&[u8]> {
        self.keys.get(name).map(|k| k.spki_der.as_slice())
    }

    fn key(&self, name: &str) -> Result<&LocalKey, SignerError> {
        self.keys
            .get(name)
            .ok_or_else(|| SignerError::KeyNotFound(name.to_string()))
    }

    /// Synchronous signing (benchmarks call this without a runtime).
    pub fn sign_now(&self, name: &str, message: &[u8]) -> Result<JoseSignature, SignerError> {
        let key = self.key(name)?;
        let rng = SystemRandom::new();
        let failed = || SignerError::Unavailable("local signing failed".into());
        let signature = match &key.private {
            Private::Ec(pair) => pair
                .sign(&rng, message)
                .map_err(|_| failed())?
                .as_ref()
                .to_vec(),
            Private::P521(key) => {
                let signature: p521::ecdsa::Signature = key
                    .try_sign_with_rng(&mut OsRng, message)
                    .map_err(|_| failed())?;
                signature.to_bytes().to_vec()
            }
            Private::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| failed())?;
                sig
            }
        };
        Ok(JoseSignature {
            alg: key.description.alg,
            kid: key.description.kid.clone(),
            signature,
        })
    }
}

impl ChallengeSigner for LocalSigner {
    async fn describe(&self, key: &str) -> Result<KeyDescription, SignerError> {
        Ok(self.key(key)?.description.clone())
    }

    async fn sign(&self, key: &str, message: &[u8]) -> Result<JoseSignature, SignerError> {
        self.sign_now(key, message)
    }
}
