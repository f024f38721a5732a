//! endpoint-stage core crate.
//!
//! The layers, each using only those before it (`scripts/layers.py` checks the direction in
//! `make test`, and `docs/ARCHITECTURE.md` shows its graph):
//!
//! 1. the base: `secret`, `error`, `model` (the entities and their own rules) and `audit` (the
//!    audit trail's records);
//! 2. `protocol`: the wire formats (challenge, response, JWK, key vocabulary);
//! 3. `ports`: what the domain needs from the outside, and the ids made from randomness;
//! 4. the domain: `settings` (clock, randomness, tunables, caller), `redirect`, `region` (which region a plan belongs to), `stage` (the
//!    decision table and plan state machine), `agent` (the agent API), `admin` (operator
//!    operations), `facts` (check-in documents), `minter` (in-process challenges), `egress`
//!    (where push delivery may connect) and `idp` (device owners, an identity provider's
//!    hints);
//! 5. the adapters, beside the domain and never using it: `memory` and `local_signer` for
//!    tests; behind cargo features `dynamodb`, `kms` and `sealing` the only code that touches
//!    AWS crates, so a function links only the clients it calls; `instrument` (tests only);
//! 6. the edge (`edge/`): the route table, the contract's JSON, the one error table, log
//!    labels, and with feature `lambda` what every Lambda function shares;
//!
//! and the functions (`functions/`) and CLIs (`cli/`) on top.

pub mod adapters;
pub mod admin;
pub mod agent;
pub mod assertion;
pub mod audit;
pub mod compliance;
pub mod delivery;
pub mod edge;
pub mod egress;
pub mod error;
pub mod facts;
pub mod health;
pub mod idp;
pub mod minter;
pub mod model;
pub mod oidc;
pub mod ports;
pub mod protocol;
pub mod redirect;
pub mod region;
pub mod secret;
pub mod settings;
pub mod signals;
pub mod ssf;
pub mod stage;

pub use error::{CoreError, SignerError, StoreError};
