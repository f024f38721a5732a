//! endpoint-stage core crate.
//!
//! Pure protocol and domain code (`protocol`, `model`, `stage`, `enroll`), the ports it is
//! generic over (`ports`), the contract's JSON (`http`) and the adapters that implement the
//! ports (`adapters`). Only `adapters::dynamodb` and `adapters::kms` touch AWS crates, each
//! behind its own cargo feature so a function links only the clients it calls.

pub mod adapters;
pub mod admin;
pub mod agent;
pub mod error;
pub mod facts;
#[cfg(feature = "lambda")]
pub mod function;
pub mod http;
pub mod model;
pub mod ports;
pub mod protocol;
pub mod secret;
pub mod stage;

pub use error::{CoreError, SignerError, StoreError};
