//! The real `endpoint-admin` binary against moto_server (run through `make test`), as one test
//! binary: its basics and usage, devices and keys, and the operator lifecycles.

mod basics;
mod help;
mod lifecycle;
mod owners;
mod policies;

use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;
use endpoint_core::adapters::aws::load_config;
use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::ports::SystemRandom;
use serde_json::Value;

// The emulator check of every suite against AWS, from the core's test support.
#[path = "../../../../shared/tests/common/emulator_env.rs"]
mod emulator_env;
pub(crate) use emulator_env::require_emulator;

pub(crate) struct Cli {
    pub(crate) table: String,
}

impl Cli {
    /// A fresh table, created by `endpoint-admin init`.
    pub(crate) fn new() -> Self {
        require_emulator();
        let cli = Cli {
            table: format!(
                "cli-{}",
                endpoint_core::ports::random_alnum(&SystemRandom, 10)
            ),
        };
        let out = cli.ok(&["init"]);
        assert_eq!(out, format!("{}\tcreated", cli.table));
        cli
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        Command::cargo_bin("endpoint-admin")
            .unwrap()
            .arg("--table")
            .arg(&self.table)
            .args(args)
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed; returns its stdout, trimmed.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{args:?} wrote to stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string()
    }

    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// Runs a command that must fail with exit 1 and one line on stderr; returns that line.
    pub(crate) fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("SdkError"),
            "{err}"
        );
        err
    }

    pub(crate) async fn store(&self) -> DynamoStore {
        DynamoStore::configured(
            &load_config().await,
            &self.table,
            std::env::var("SEALING_KEY_ID").ok().as_deref(),
            90,
        )
    }
}
