//! `endpoint-admin device ...` and `endpoint-admin ssf ...`: their arguments.

use clap::Subcommand;

use crate::parsers::parse_duration;

#[derive(Subcommand, Debug)]
pub enum DeviceCommand {
    /// Create or re-enroll a device; prints its new device token key (shown once).
    Enroll {
        /// The connector to enroll on.
        #[arg(long)]
        connector: String,
        /// The device's hardware serial (1 to 256 characters, no control characters).
        #[arg(long)]
        serial: String,
        /// The device's host name.
        #[arg(long)]
        name: String,
    },
    /// List enrolled devices: serial and name.
    List {
        /// Only devices whose last evaluation under a policy was non-compliant.
        #[arg(long = "non-compliant")]
        non_compliant: bool,
        /// Under this policy only (without --non-compliant: every device with its status under
        /// the policy).
        #[arg(long)]
        policy: Option<String>,
    },
    /// Show a device: its id, tokens (never their keys), compliance per policy and latest
    /// facts snapshot.
    Show {
        /// The device's serial.
        serial: String,
    },
    /// Delete a device with its tokens and facts.
    Delete {
        /// The device's serial.
        serial: String,
    },
    /// Delete every token of the device on a connector.
    RevokeTokens {
        /// The device's serial.
        serial: String,
        /// The connector whose tokens are deleted.
        #[arg(long)]
        connector: String,
    },
    /// Approve one re-enrollment of an enrolled device (a reinstall): prints a single-use
    /// enrollment token bound to its serial, which the reinstalled device enrolls with.
    AllowReenroll {
        /// The device's serial.
        serial: String,
        /// The connector it may enroll on.
        #[arg(long)]
        connector: String,
        /// How long the token lives (e.g. 15m, 1h, 2d).
        #[arg(long = "for", value_parser = parse_duration, default_value = "1h")]
        window: i64,
    },
    /// Lock a device: every stage denies it and its auth_ia/ is refused (check-ins still flow).
    Lock {
        /// The device's serial.
        serial: String,
        /// How long the lock holds (e.g. 12h, 7d); without it, until `device unlock`.
        #[arg(long = "for", value_parser = parse_duration)]
        duration: Option<i64>,
        /// Why (kept with the lock and in the audit trail; shown by `device show`).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Set the people a device belongs to (usernames or email addresses; none: nobody), which
    /// an OpenID client with --match-owner checks. Replaces the device's owners.
    SetOwners {
        /// The device's serial.
        serial: String,
        /// Its owners (at most 16, each at most 256 characters, no spaces).
        #[arg(value_name = "USER")]
        owners: Vec<String>,
    },
    /// Lift a device's lock.
    Unlock {
        /// The device's serial.
        serial: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SsfCommand {
    /// Shared Signals receivers.
    #[command(subcommand)]
    Receiver(ReceiverCommand),
}

#[derive(Subcommand, Debug)]
pub enum ReceiverCommand {
    /// Register a receiver; prints its bearer token (shown once, stored hashed).
    Create {
        /// A name for people.
        #[arg(long)]
        name: String,
        /// The `aud` of the SETs it receives (default its id).
        #[arg(long)]
        audience: Option<String>,
    },
    /// List receivers (never a token).
    List,
    /// Revoke a receiver: its token is refused from then on.
    Revoke {
        /// The receiver's id.
        id: String,
    },
}
