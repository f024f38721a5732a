//! The challenge signer on AWS KMS asymmetric keys.
//!
//! ECC_NIST_P256 -> ES256, ECC_NIST_P384 -> ES384, ECC_NIST_P521 -> ES512, RSA_2048/3072/4096 ->
//! RS256 (RSASSA_PKCS1_V1_5_SHA_256). Messages are sent with `MessageType=RAW` (KMS hashes them).
//! ECDSA signatures come back DER-encoded and are converted to the JOSE `r||s` form.
//!
//! Each key's spec and public key are fetched once per process (`GetPublicKey`) and cached: the
//! JWKS route is then served without any KMS call, and a challenge costs exactly one `Sign`.
//! Signing uses the key ARN that `GetPublicKey` resolved, so an alias re-pointed at another key
//! can never produce a signature that does not match the cached `kid`.
//!
//! Key rotation never goes stale in a warm function: connectors name their keys (signing, next,
//! retired) and every request reads the connector or the plan's snapshot of it, so a rotation
//! reaches the next request. A key id or key ARN always names the same key and is cached for
//! the life of the process; an alias can be re-pointed, so its entry is refreshed after
//! [`ALIAS_REFRESH`] (one `GetPublicKey` per alias per minute per warm function at most).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec as KmsKeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use aws_sdk_kms::Client;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::aws::{classify, Failure};
use crate::error::SignerError;
use crate::ports::{ChallengeSigner, JoseSignature, KeyDescription};
use crate::protocol::der::ecdsa_der_to_jose;
use crate::protocol::jwk::Jwk;
use crate::protocol::keys::KeySpec;
use crate::protocol::keys::SigningAlg;

/// The tag every challenge key carries; the functions may only use keys that have it.
pub const CHALLENGE_KEY_TAG: (&str, &str) = ("endpoint-stage", "challenge");
/// The tag naming the stack whose functions may use a challenge key (its value: the stack name).
pub const STACK_TAG: &str = "endpoint-stage:stack";

/// How long a key named by an alias is trusted to still point at the same key.
pub const ALIAS_REFRESH: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct CachedKey {
    arn: String,
    description: KeyDescription,
    loaded: Instant,
}

/// Whether a key reference is an alias (`alias/NAME` or an alias ARN), which can be re-pointed.
pub fn is_alias(key: &str) -> bool {
    key.starts_with("alias/") || key.contains(":alias/")
}

/// Signs challenges with KMS keys; caches key descriptions per process.
#[derive(Debug, Clone)]
pub struct KmsSigner {
    client: Client,
    cache: Arc<RwLock<HashMap<String, Arc<CachedKey>>>>,
    alias_refresh: Duration,
}

fn signer_error<
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
>(
    op: &'static str,
    key: &str,
    e: &SdkError<E, R>,
) -> SignerError {
    match classify(e) {
        Failure::Throttled => {
            tracing::warn!(op, "kms throttled after retries");
            SignerError::Throttled
        }
        Failure::Unreachable(why) => {
            tracing::warn!(op, why = %why, "kms unreachable");
            SignerError::Unavailable(why)
        }
        Failure::Service(code) => {
            tracing::warn!(op, code = %code, "kms error");
            match code.as_str() {
                "NotFoundException" => SignerError::KeyNotFound(key.to_string()),
                "DisabledException" => SignerError::KeyUnusable {
                    key: key.to_string(),
                    reason: "the key is disabled".into(),
                },
                "KMSInvalidStateException" => SignerError::KeyUnusable {
                    key: key.to_string(),
                    reason: "the key is not in a usable state (disabled or pending deletion)"
                        .into(),
                },
                "InvalidKeyUsageException" | "UnsupportedOperationException" => {
                    SignerError::KeyUnusable {
                        key: key.to_string(),
                        reason: "the key is not a SIGN_VERIFY key".into(),
                    }
                }
                "AccessDeniedException" => SignerError::KeyUnusable {
                    key: key.to_string(),
                    reason: "access to the key is denied".into(),
                },
                _ => SignerError::Unavailable("unexpected service error".into()),
            }
        }
    }
}

fn signing_algorithm(alg: SigningAlg) -> SigningAlgorithmSpec {
    match alg {
        SigningAlg::ES256 => SigningAlgorithmSpec::EcdsaSha256,
        SigningAlg::ES384 => SigningAlgorithmSpec::EcdsaSha384,
        SigningAlg::ES512 => SigningAlgorithmSpec::EcdsaSha512,
        SigningAlg::RS256 => SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
    }
}

impl KmsSigner {
    pub fn new(client: Client) -> Self {
        KmsSigner {
            client,
            cache: Arc::new(RwLock::new(HashMap::new())),
            alias_refresh: ALIAS_REFRESH,
        }
    }

    /// The same signer with another alias refresh period (tests use zero).
    pub fn with_alias_refresh(mut self, refresh: Duration) -> Self {
        self.alias_refresh = refresh;
        self
    }

    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        let conf = aws_sdk_kms::config::Builder::from(config)
            .interceptor(super::aws::CallTimer)
            .build();
        Self::new(Client::from_conf(conf))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn cached(&self, key: &str) -> Option<Arc<CachedKey>> {
        let entry = self.cache.read().ok()?.get(key).cloned()?;
        (!is_alias(key) || entry.loaded.elapsed() < self.alias_refresh).then_some(entry)
    }

    async fn load(&self, key: &str) -> Result<Arc<CachedKey>, SignerError> {
        if let Some(k) = self.cached(key) {
            return Ok(k);
        }
        let out = self
            .client
            .get_public_key()
            .key_id(key)
            .send()
            .await
            .map_err(|e| signer_error("GetPublicKey", key, &e))?;
        let unusable = |reason: String| SignerError::KeyUnusable {
            key: key.to_string(),
            reason,
        };
        if out.key_usage() != Some(&KeyUsageType::SignVerify) {
            return Err(unusable("the key is not a SIGN_VERIFY key".into()));
        }
        let der = out
            .public_key()
            .ok_or_else(|| unusable("KMS returned no public key".into()))?;
        let (jwk, alg) = Jwk::from_spki_der(der.as_ref()).map_err(|e| unusable(e.to_string()))?;
        if !out.signing_algorithms().contains(&signing_algorithm(alg)) {
            return Err(unusable(format!(
                "the key cannot sign with {}",
                alg.as_str()
            )));
        }
        let arn = out.key_id().unwrap_or(key).to_string();
        let entry = Arc::new(CachedKey {
            arn,
            description: KeyDescription {
                alg,
                kid: jwk.kid.clone(),
                jwk,
            },
            loaded: Instant::now(),
        });
        if let Ok(mut cache) = self.cache.write() {
            cache.insert(key.to_string(), entry.clone());
        }
        Ok(entry)
    }

    /// Creates a SIGN_VERIFY key of `spec` (for `endpoint-admin key create`); returns its id.
    pub async fn create_key(
        &self,
        spec: KeySpec,
        description: &str,
    ) -> Result<String, SignerError> {
        self.create_stack_key(spec, description, None).await
    }

    /// The tags of a challenge key of `stack` (a replica gets them again: KMS does not share tags
    /// between a multi-Region key's replicas).
    fn stack_tags(stack: Option<&str>) -> Result<Vec<aws_sdk_kms::types::Tag>, SignerError> {
        let tag = |k: &str, v: &str| {
            aws_sdk_kms::types::Tag::builder()
                .tag_key(k)
                .tag_value(v)
                .build()
                .map_err(|_| SignerError::Unavailable("tag could not be built".into()))
        };
        let mut tags = vec![tag(CHALLENGE_KEY_TAG.0, CHALLENGE_KEY_TAG.1)?];
        if let Some(stack) = stack {
            tags.push(tag(STACK_TAG, stack)?);
        }
        Ok(tags)
    }

    /// Creates a challenge key for the stack `stack`: the functions' IAM policies only allow
    /// keys tagged as challenge keys of their own stack (template.yaml). It is a multi-Region
    /// primary key (`mrk-...`), so that [`KmsSigner::replicate`] can give every region the same
    /// key: one key id, one key material, one `kid` that agents already hold.
    pub async fn create_stack_key(
        &self,
        spec: KeySpec,
        description: &str,
        stack: Option<&str>,
    ) -> Result<String, SignerError> {
        let tags = Self::stack_tags(stack)?;
        let kms_spec = KmsKeySpec::from(spec.kms_name());
        let out = self
            .client
            .create_key()
            .key_spec(kms_spec)
            .key_usage(KeyUsageType::SignVerify)
            .description(description)
            .multi_region(true)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| signer_error("CreateKey", "(new key)", &e))?;
        out.key_metadata()
            .map(|m| m.key_id().to_string())
            .ok_or_else(|| SignerError::Unavailable("KMS returned no key metadata".into()))
    }

    /// Replicates the multi-Region key `key_id` (made here) into `region`, with the same tags
    /// (`ReplicateKey`, called in the primary key's region). A replica that exists already is
    /// left as it is.
    pub async fn replicate(
        &self,
        key_id: &str,
        region: &str,
        stack: Option<&str>,
    ) -> Result<(), SignerError> {
        let r = self
            .client
            .replicate_key()
            .key_id(key_id)
            .replica_region(region)
            .set_tags(Some(Self::stack_tags(stack)?))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if matches!(classify(&e), Failure::Service(c) if c == "AlreadyExistsException") => {
                Ok(())
            }
            Err(e) => Err(signer_error("ReplicateKey", key_id, &e)),
        }
    }

    /// Points `alias` (with or without the `alias/` prefix) at `key_id`, creating it if missing.
    pub async fn set_alias(&self, alias: &str, key_id: &str) -> Result<String, SignerError> {
        let alias = if alias.starts_with("alias/") {
            alias.to_string()
        } else {
            format!("alias/{alias}")
        };
        let created = self
            .client
            .create_alias()
            .alias_name(&alias)
            .target_key_id(key_id)
            .send()
            .await;
        match created {
            Ok(_) => Ok(alias),
            Err(e) if matches!(classify(&e), Failure::Service(c) if c == "AlreadyExistsException") =>
            {
                self.client
                    .update_alias()
                    .alias_name(&alias)
                    .target_key_id(key_id)
                    .send()
                    .await
                    .map_err(|e| signer_error("UpdateAlias", &alias, &e))?;
                Ok(alias)
            }
            Err(e) => Err(signer_error("CreateAlias", &alias, &e)),
        }
    }
}

impl ChallengeSigner for KmsSigner {
    async fn describe(&self, key: &str) -> Result<KeyDescription, SignerError> {
        Ok(self.load(key).await?.description.clone())
    }

    async fn sign(&self, key: &str, message: &[u8]) -> Result<JoseSignature, SignerError> {
        let k = self.load(key).await?;
        let alg = k.description.alg;
        let out = self
            .client
            .sign()
            .key_id(&k.arn)
            .message(Blob::new(message))
            .message_type(MessageType::Raw)
            .signing_algorithm(signing_algorithm(alg))
            .send()
            .await
            .map_err(|e| signer_error("Sign", key, &e))?;
        let raw = out
            .signature()
            .ok_or_else(|| SignerError::Unavailable("KMS returned no signature".into()))?;
        let signature = match alg.ec_signature_len() {
            Some(len) => ecdsa_der_to_jose(raw.as_ref(), len / 2).ok_or_else(|| {
                SignerError::Unavailable("KMS returned a malformed ECDSA signature".into())
            })?,
            None => raw.as_ref().to_vec(),
        };
        Ok(JoseSignature {
            alg,
            kid: k.description.kid.clone(),
            signature,
        })
    }
}

/// `/health`'s look at a key: `DescribeKey`, a management call outside the
/// cryptographic request quota; the key is usable when KMS says it is enabled and made for its
/// use (SIGN_VERIFY to sign challenges, ENCRYPT_DECRYPT to unwrap data keys).
impl crate::ports::KeyStatus for KmsSigner {
    async fn key_usable(
        &self,
        key: &str,
        usage: crate::ports::KeyUse,
    ) -> Result<bool, SignerError> {
        let out = self
            .client
            .describe_key()
            .key_id(key)
            .send()
            .await
            .map_err(|e| signer_error("DescribeKey", key, &e))?;
        let Some(meta) = out.key_metadata() else {
            return Err(SignerError::Unavailable(
                "KMS returned no key metadata".into(),
            ));
        };
        let wanted = match usage {
            crate::ports::KeyUse::Sign => KeyUsageType::SignVerify,
            crate::ports::KeyUse::Wrap => KeyUsageType::EncryptDecrypt,
        };
        Ok(meta.enabled()
            && meta.key_state() == Some(&aws_sdk_kms::types::KeyState::Enabled)
            && meta.key_usage() == Some(&wanted))
    }
}
