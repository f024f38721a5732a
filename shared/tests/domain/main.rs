//! The core's domain suites over the in-memory store, the local signer and a fixed clock, as
//! one test binary (one link of the dependency tree instead of one per file). The same rules
//! against DynamoDB and KMS on moto: `tests/aws`; over HTTP: the workspace's `tests/` crate.

#[path = "../common/mod.rs"]
mod common;
#[path = "../contract/mod.rs"]
mod contract;

mod abuse_limits;
mod agent_rules;
mod assertion_once;
mod cel_bounds;
mod compliance_rules;
mod decision_table;
mod denial_reasons;
mod device_lock;
mod device_owners;
mod egress;
mod enrollment;
mod entra_hint;
mod health;
mod improvements;
#[cfg(feature = "fetch")]
mod jwks_fetch;
mod key_rollout;
mod oidc_regions;
mod oidc_rules;
mod port_contract;
mod redirects;
mod regions;
mod signals;
mod signing;
mod ssf_delivery;
mod ssf_integrity;
