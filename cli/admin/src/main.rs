//! `endpoint-admin`: the operator's CLI; the library (`src/lib.rs`) is the CLI, this runs it.

use clap::Parser;
use endpoint_admin::{cli, commands};

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
