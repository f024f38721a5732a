//! `endpoint-admin`: the operator's CLI (`endpoint-admin --help`; docs/OPERATING.md, "The operator CLI").
//!
//! Exit codes: 0 success, 2 bad usage (clap), 1 any other error with one line on stderr.
//! Secrets (device token keys, enrollment token keys) are printed once on stdout, never logged.
//!
//! The CLI is this library, compiled once: the binary (`src/main.rs`) parses the arguments and
//! runs the command; the suite `tests/admin_cli` runs the binary and tests the parsers and the
//! clock here (no unit-test build of the CLI: docs/PERFORMANCE.md, 6f).

pub mod cli;
pub mod clock;
pub mod commands;
mod device_args;
mod error;
mod oidc_args;
mod output;
pub mod parsers;
mod policy_args;
