//! Implementations of the ports.
//!
//! - `memory`: in-memory stores, a fixed clock and a deterministic RNG, for unit tests of the
//!   domain (never the only test of a behaviour: the DynamoDB adapter is tested against moto).
//! - `local_signer`: software keys (P-256, P-384, P-521, RSA) for tests and benchmarks.
//! - `data_key_signer`: the `data-key` signing mode's signer (challenge keys unwrapped once per
//!   instance, signing locally) and `ChallengeKeys`, which routes each key reference.
//! - `sealing`: AES-256-GCM sealing of device token keys under a vault's data key.
//! - `dynamodb`, `kms`: the production adapters (cargo features `dynamodb`, `kms`).
//! - `lambda`: Lambda Invoke, SigV4-signed (feature `invoke`).
//! - `instrument`: call counting and IAM access recording for the tests (feature `instrument`).

pub mod data_key_signer;
pub mod local_signer;
pub mod memory;
pub mod sealing;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "instrument")]
pub mod instrument;
#[cfg(feature = "kms")]
pub mod kms;
#[cfg(feature = "kms")]
pub mod kms_data_keys;
#[cfg(feature = "invoke")]
pub mod lambda;
#[cfg(feature = "sealing")]
pub mod vault;
