//! `endpoint-agent`: a stand-in for the authentik platform agent (`endpoint-agent --help`).

use std::io::Read;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use endpoint_agent::{check_in, enroll, login, native, now, refresh_config, respond, State};

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
    /// Fetch the configuration again (agent_config/): learn the connector's current keys.
    Refresh {
        /// The server (default: the one enrolled with).
        #[arg(long)]
        server: Option<String>,
    },
    /// Verify a challenge against the keys of the last configuration fetch; print the response.
    Respond {
        /// Accepted for compatibility; the keys come from the state file, not the server.
        #[arg(long)]
        server: Option<String>,
        #[arg(long)]
        challenge: String,
    },
    /// Send a facts document (authentik's DeviceFactsRequest as JSON) through check_in/, as the
    /// real agent does periodically.
    CheckIn {
        #[arg(long)]
        server: String,
        /// The facts document, or - for stdin.
        #[arg(long)]
        facts: PathBuf,
    },
    /// Run one plan's browser and agent side; print the final outcome JSON.
    Login {
        #[arg(long)]
        server: String,
        #[arg(long)]
        plan: String,
    },
    /// Be the browser's native messaging host (io.goauthentik.platform) on stdin/stdout:
    /// answer platform_sign_endpoint_header with the enrolled device. Started by the browser.
    NativeHost {
        /// What the browser passes: the calling extension's origin (and, on Windows, a window
        /// handle). Accepted and ignored: the manifest's allowed_origins already decided.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        browser_args: Vec<String>,
    },
    /// Register the native messaging host in a browser profile: writes
    /// PROFILE/NativeMessagingHosts/io.goauthentik.platform.json and its launcher.
    InstallNativeHost {
        /// The browser's profile (user data) directory.
        #[arg(long)]
        profile: PathBuf,
        /// Also allow this extension id (the authentik extension's ids are always allowed).
        #[arg(long = "extension-id")]
        extension_ids: Vec<String>,
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
        Command::Refresh { server } => {
            let mut state = State::load(&args.state)?;
            let server = server.unwrap_or_else(|| state.server.clone());
            refresh_config(&mut state, &server)?;
            state.save(&args.state)?;
            let kids: Vec<&str> = state
                .jwks_challenge
                .iter()
                .flat_map(|j| j.keys.iter().map(|k| k.kid.as_str()))
                .collect();
            Ok(format!("challenge keys: {}", kids.join(" ")))
        }
        Command::Respond {
            server: _,
            challenge,
        } => {
            let state = State::load(&args.state)?;
            respond(&state, &challenge, now())
        }
        Command::CheckIn { server, facts } => {
            let state = State::load(&args.state)?;
            let mut body = Vec::new();
            let read = if facts.as_os_str() == "-" {
                std::io::stdin().read_to_end(&mut body).map(|_| ())
            } else {
                std::fs::read(&facts).map(|b| body = b)
            };
            read.map_err(|e| format!("cannot read {}: {e}", facts.display()))?;
            check_in(&state, &server, &body)?;
            Ok("checked in".into())
        }
        Command::Login { server, plan } => {
            let state = State::load(&args.state)?;
            Ok(login(&state, &server, &plan, now, 12)?.to_string())
        }
        Command::NativeHost { browser_args: _ } => {
            let (stdin, stdout) = (std::io::stdin(), std::io::stdout());
            native::serve(&args.state, &mut stdin.lock(), &mut stdout.lock(), now)?;
            // Nothing may be printed on stdout after the host: it is the browser's channel.
            std::process::exit(0);
        }
        Command::InstallNativeHost {
            profile,
            extension_ids,
        } => {
            let binary = std::env::current_exe()
                .map_err(|e| format!("cannot find this program's path: {e}"))?;
            let state = std::path::absolute(&args.state)
                .map_err(|e| format!("cannot resolve {}: {e}", args.state.display()))?;
            let mut ids: Vec<String> = native::AUTHENTIK_EXTENSION_IDS
                .iter()
                .map(|s| s.to_string())
                .collect();
            for id in extension_ids {
                if id.len() != 32 || !id.bytes().all(|b| (b'a'..=b'p').contains(&b)) {
                    return Err(format!("{id:?} is not an extension id (32 letters a to p)"));
                }
                ids.push(id);
            }
            let manifest = native::install(&profile, &binary, &state, &ids)?;
            Ok(manifest.display().to_string())
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
