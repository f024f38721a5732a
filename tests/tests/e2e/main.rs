//! The end-to-end suite over the local stack (`make test`), as one test binary: one link of the
//! dependency tree instead of one per file. Each module is one concern. `concurrency.rs`,
//! `faults.rs` and `kms_faults.rs` stay binaries of their own: they count the functions' shared
//! log or stop the emulator, so nothing else may run beside them.

mod abuse_limits;
mod agent_api;
mod assertions;
mod aws_calls;
mod compliance;
mod data_key_signing;
mod edge;
mod egress;
mod enrollment_trust;
mod fixtures;
mod health;
mod hostile;
mod key_rollout;
mod least_privilege;
mod least_privilege_data_key;
mod least_privilege_oidc;
mod page_for_people;
mod real_agent;
mod secrets_in_logs;
mod signals;
mod ssf;
mod ssf_integrity;
mod stage_flow;
mod ways_in;
