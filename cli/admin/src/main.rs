//! `endpoint-admin`: the operator's CLI (`endpoint-admin --help`; docs/OPERATING.md, "The operator CLI").
//!
//! Exit codes: 0 success, 2 bad usage (clap), 1 any other error with one line on stderr.
//! Secrets (device token keys, enrollment token keys) are printed once on stdout, never logged.

mod cli;
mod clock;
mod commands;
mod device_args;
mod error;
mod oidc_args;
mod output;
mod parsers;
mod policy_args;

use clap::Parser;

fn main() {
    let args = cli::Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("endpoint-admin: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    match runtime.block_on(commands::run(args)) {
        Ok(output) => println!("{output}"),
        Err(error) => {
            eprintln!("endpoint-admin: {error}");
            std::process::exit(1);
        }
    }
}
