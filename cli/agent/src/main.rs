//! `endpoint-agent`: a stand-in for the authentik platform agent (API-CONTRACT.md).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use endpoint_agent::{enroll, login, now, respond, State};

#[derive(Parser)]
#[command(
    name = "endpoint-agent",
    version,
    about = "Simulate an enrolled device: enroll, answer challenges, log in"
)]
struct Args {
    /// The state file holding the device token (written 0600).
    #[arg(long, global = true, default_value = "./.endpoint-agent.json")]
    state: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enroll through the agent API and store the device token in the state file.
    Enroll {
        #[arg(long)]
        server: String,
        /// The enrollment token key.
        #[arg(long)]
        token: String,
        #[arg(long)]
        serial: String,
        #[arg(long)]
        name: String,
    },
    /// Verify a challenge against the connector's published keys and print the response JWS.
    Respond {
        #[arg(long)]
        server: String,
        #[arg(long)]
        challenge: String,
    },
    /// Run one plan's browser and agent side; print the final outcome JSON.
    Login {
        #[arg(long)]
        server: String,
        #[arg(long)]
        plan: String,
    },
}

fn run(args: Args) -> Result<String, String> {
    match args.command {
        Command::Enroll {
            server,
            token,
            serial,
            name,
        } => {
            let state = enroll(&server, &token, &serial, &name)?;
            state.save(&args.state)?;
            Ok(format!(
                "enrolled {serial}; state in {}",
                args.state.display()
            ))
        }
        Command::Respond { server, challenge } => {
            let mut state = State::load(&args.state)?;
            let response = respond(&mut state, &server, &challenge, now())?;
            state.save(&args.state)?;
            Ok(response)
        }
        Command::Login { server, plan } => {
            let mut state = State::load(&args.state)?;
            let outcome = login(&mut state, &server, &plan, now, 12)?;
            state.save(&args.state)?;
            Ok(outcome.to_string())
        }
    }
}

fn main() {
    match run(Args::parse()) {
        Ok(out) => println!("{out}"),
        Err(e) => {
            eprintln!("endpoint-agent: {e}");
            std::process::exit(1);
        }
    }
}
