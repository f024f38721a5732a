//! endpoint-stage core crate.
//!
//! The layers, each using only those before it (`scripts/layers.py` checks it in `make lint`):
//! `secret`, `error`, `model` -> `protocol` (the wire formats: challenge, response, JWK,
//! key vocabulary) -> `ports` (what the domain needs from the outside, and the ids made from
//! randomness) -> the domain (`stage`: the decision table and plan state machine; `agent`: the
//! agent API; `admin`: operator operations; `facts`) -> the edge (`edge/`: the route table,
//! the contract's JSON, the one error table, and with feature `lambda` what every Lambda
//! function shares, one file per job) -> the functions (`functions/`). The adapters implement the ports: `memory` and
//! `local_signer` for tests, and behind their own cargo features `dynamodb` and `kms`, the only
//! code that touches AWS crates, so a function links only the clients it calls.

pub mod adapters;
pub mod admin;
pub mod agent;
pub mod audit;
pub mod edge;
pub mod error;
pub mod facts;
pub mod minter;
pub mod model;
pub mod ports;
pub mod protocol;
pub mod redirect;
pub mod secret;
pub mod settings;
pub mod stage;

pub use error::{CoreError, SignerError, StoreError};
