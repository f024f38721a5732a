//! `coldstart-init [BOOTSTRAP_DIR] [RUNS]`: the init part of the cold-start measurement with a
//! minimal harness (no Python): for each function's release bootstrap, exec it with
//! `AWS_LAMBDA_RUNTIME_API` pointing at a loopback listener and time exec -> the first
//! `GET /2018-06-01/runtime/invocation/next` request read. Prints the medians as a table.
//! `bench/coldstart.py` measures the first response and memory; this one tightens init.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FUNCTIONS: [&str; 6] = [
    "plans",
    "challenge",
    "response",
    "jwks",
    "agent",
    "fallback",
];

fn init_once(bootstrap: &str, function: &str) -> Result<Duration, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let started = Instant::now();
    let mut child = Command::new(bootstrap)
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .env("LOG_LEVEL", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{bootstrap}: {e}"))?;
    let (mut stream, _) = listener.accept().map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1024];
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let took = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    if !String::from_utf8_lossy(&head).contains("/runtime/invocation/next") {
        return Err(format!("{function}: the first request was not `next`"));
    }
    Ok(took)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .unwrap_or_else(|| "target/bench-build/release".into());
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(30);
    println!("| function | init median (exec -> first next) | min | max |");
    println!("|---|---|---|---|");
    for function in FUNCTIONS {
        let bootstrap = format!("{dir}/{function}");
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            match init_once(&bootstrap, function) {
                Ok(t) => times.push(t.as_secs_f64() * 1000.0),
                Err(e) => {
                    eprintln!("coldstart-init: {e}");
                    std::process::exit(1);
                }
            }
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!(
            "| `{function}` | {median:.2} ms | {:.2} ms | {:.2} ms |",
            times[0],
            times[times.len() - 1]
        );
    }
}
