//! A software challenge signer with in-process keys (aws-lc). For tests, benchmarks and the
//! device simulator; production signs with KMS.

use std::collections::HashMap;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING, ECDSA_P521_SHA512_FIXED_SIGNING, RSA_PKCS1_SHA256,
};

use crate::error::SignerError;
use crate::ports::{ChallengeSigner, JoseSignature, KeyDescription};
use crate::protocol::jwk::Jwk;
use crate::protocol::keys::KeySpec;

enum Private {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

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
            KeySpec::EccNistP256 | KeySpec::EccNistP384 | KeySpec::EccNistP521 => {
                let alg = match spec {
                    KeySpec::EccNistP256 => &ECDSA_P256_SHA256_FIXED_SIGNING,
                    KeySpec::EccNistP384 => &ECDSA_P384_SHA384_FIXED_SIGNING,
                    _ => &ECDSA_P521_SHA512_FIXED_SIGNING,
                };
                let pair = EcdsaKeyPair::generate(alg)
                    .map_err(|_| unusable("EC key generation failed"))?;
                let der = pair
                    .public_key()
                    .as_der()
                    .map_err(|_| unusable("public key encoding failed"))?
                    .as_ref()
                    .to_vec();
                (Private::Ec(pair), der)
            }
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                let size = match spec {
                    KeySpec::Rsa2048 => KeySize::Rsa2048,
                    KeySpec::Rsa3072 => KeySize::Rsa3072,
                    _ => KeySize::Rsa4096,
                };
                let pair = RsaKeyPair::generate(size)
                    .map_err(|_| unusable("RSA key generation failed"))?;
                let der = pair
                    .public_key()
                    .as_der()
                    .map_err(|_| unusable("public key encoding failed"))?
                    .as_ref()
                    .to_vec();
                (Private::Rsa(pair), der)
            }
        };
        let (jwk, alg) = Jwk::from_spki_der(&spki_der).map_err(|e| unusable(&e.to_string()))?;
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
            Private::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
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
