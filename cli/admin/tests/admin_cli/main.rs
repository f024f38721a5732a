//! The real `endpoint-admin` binary against moto_server (run through `make test`), as one test
//! binary: its basics and usage, devices and keys, and the operator lifecycles; and the CLI's
//! parsers, help and clock without a process (`units`).

mod basics;
mod help;
mod lifecycle;
mod owners;
mod policies;
mod units;

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use endpoint_core::adapters::aws::load_config;
use endpoint_core::adapters::dynamodb::DynamoStore;
use endpoint_core::ports::SystemRandom;
use serde_json::Value;

// The emulator check of every suite against AWS, from the core's test support.
#[path = "../../../../shared/tests/common/emulator_env.rs"]
mod emulator_env;
pub(crate) use emulator_env::require_emulator;

/// The CLI under test: the binary cargo built beside this suite.
pub(crate) fn admin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_endpoint-admin"))
}

/// Runs `cmd` to its end with `stdin` (if any) as its input; one that runs over a minute is
/// killed and fails the test, rather than stalling the suite.
pub(crate) fn output_of(cmd: &mut Command, stdin: Option<Vec<u8>>) -> Output {
    let limit = Duration::from_secs(60);
    let input = if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = cmd
        .stdin(input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("endpoint-admin starts");
    // Input and output through threads of their own: neither pipe can fill and stall the other.
    let writer = child.stdin.take().zip(stdin).map(|(mut pipe, bytes)| {
        thread::spawn(move || pipe.write_all(&bytes).expect("stdin written"))
    });
    fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                pipe.read_to_end(&mut bytes).expect("output read");
            }
            bytes
        })
    }
    let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("endpoint-admin waited for") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("endpoint-admin ran over {limit:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    if let Some(writer) = writer {
        writer.join().expect("stdin writer");
    }
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

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
        output_of(admin().arg("--table").arg(&self.table).args(args), None)
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
