//! The command line: every command and flag with its help line (a test checks it).

use clap::{Parser, Subcommand};
use endpoint_core::audit::DEFAULT_RETENTION_DAYS;

use crate::device_args::{DeviceCommand, SsfCommand};
use crate::oidc_args::OidcCommand;
use crate::parsers::{
    mode_parser, parse_duration, parse_expiry, parse_region, reenroll_parser, spec_parser, Expiry,
};
use crate::policy_args::PolicyCommand;
use endpoint_core::model::{ReenrollPolicy, StageMode};

#[derive(Parser, Debug)]
#[command(
    name = "endpoint-admin",
    version,
    about = "Operate endpoint-stage: keys, connectors, stages, enrollment tokens, devices"
)]
pub struct Args {
    /// Print one JSON object instead of one value per line.
    #[arg(long, global = true)]
    pub json: bool,

    /// The DynamoDB table: the stack's TableName output (default: the local stack's table).
    #[arg(
        long,
        global = true,
        env = "TABLE_NAME",
        default_value = "endpoint-stage"
    )]
    pub table: String,

    /// The symmetric KMS key that seals device token keys: the stack's SealingKeyId output.
    #[arg(long = "sealing-key", global = true, env = "SEALING_KEY_ID")]
    pub sealing_key: Option<String>,

    /// How long the audit records this command writes are kept, in days (the stack's
    /// AuditRetentionDays).
    #[arg(long = "audit-retention-days", global = true, env = "AUDIT_RETENTION_DAYS", default_value_t = DEFAULT_RETENTION_DAYS)]
    pub audit_retention_days: i64,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the table (key schema, index and TTL as template.yaml declares) if missing.
    Init,
    /// KMS challenge keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Agent connectors.
    #[command(subcommand)]
    Connector(ConnectorCommand),
    /// Endpoint stages.
    #[command(subcommand)]
    Stage(StageCommand),
    /// Posture policies: rules over the facts devices check in.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Enrollment tokens (their key is shown once).
    #[command(subcommand, name = "enrollment-token")]
    EnrollmentToken(EnrollmentTokenCommand),
    /// Enrolled devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Idempotent data migrations: seal device token keys stored before sealing, make old
    /// enrollment tokens listable, then refuse plain keys.
    Migrate,
    /// The data key that seals device token keys.
    #[command(subcommand)]
    Sealing(SealingCommand),
    /// The Shared Signals transmitter.
    #[command(subcommand)]
    Ssf(SsfCommand),
    /// The OpenID provider (the device step for Entra ID, Okta and other identity providers).
    #[command(subcommand)]
    Oidc(OidcCommand),
}

#[derive(Subcommand, Debug)]
pub enum SealingCommand {
    /// A new data key: every device key re-sealed under it (paged, progress on stderr;
    /// interrupted, it resumes where it stopped), then the old one retired and refused.
    Rotate {
        /// Devices per page.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
        page: u16,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Audit records, newest first.
    List {
        /// Only records about this device serial.
        #[arg(long)]
        device: Option<String>,
        /// Only records about this connector.
        #[arg(long)]
        connector: Option<String>,
        /// Only records about this plan.
        #[arg(long)]
        plan: Option<String>,
        /// How far back (e.g. 30m, 24h, 7d).
        #[arg(long, value_parser = parse_duration, default_value = "24h")]
        since: i64,
        /// At most this many records (one page).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10000))]
        limit: u32,
        /// Only records older than this record id (the last id of the previous page).
        #[arg(long)]
        before: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Create a KMS SIGN_VERIFY key; prints its key id.
    Create {
        /// The key spec (P-521 is refused: authentik platform agents cannot verify ES512).
        #[arg(long, default_value = "ECC_NIST_P256", value_parser = spec_parser())]
        spec: String,
        /// Also point this alias (alias/NAME or NAME) at the new key.
        #[arg(long)]
        alias: Option<String>,
        /// The stack whose functions may sign with it (deployed, they sign only with keys
        /// tagged with their own stack's name).
        #[arg(long, env = "STACK_NAME")]
        stack: Option<String>,
        /// Also replicate the key (a multi-Region key) into these regions, with the same key id
        /// and tags (repeat, or separate with commas; env REPLICA_REGIONS).
        #[arg(long = "replicate-to", env = "REPLICA_REGIONS", value_delimiter = ',', value_parser = parse_region)]
        replicate_to: Vec<String>,
    },
    /// Create a symmetric KMS key for sealing device token keys; prints its key id (local
    /// stacks: deployed, the stack creates it and outputs SealingKeyId). A multi-Region key.
    CreateSealing {
        /// Also replicate the key into these regions (repeat, or separate with commas; env
        /// REPLICA_REGIONS).
        #[arg(long = "replicate-to", env = "REPLICA_REGIONS", value_delimiter = ',', value_parser = parse_region)]
        replicate_to: Vec<String>,
    },
    /// Create a challenge data key (ChallengeSigning=data-key): a P-256 key pair made by KMS,
    /// its private half stored wrapped under the wrapping key in the table; prints the
    /// reference connectors name it by (`datakey:<kid>`), as set-key, add-next-key and
    /// connector create take it.
    CreateDataKey {
        /// The symmetric KMS key that wraps it: the stack's ChallengeWrappingKeyArn output.
        #[arg(long = "wrapping-key", env = "CHALLENGE_WRAPPING_KEY_ID")]
        wrapping_key: String,
        /// Also publish it as this connector's next key (then `connector rotate` once its
        /// devices have fetched it), or make it the signing key of a connector without one.
        #[arg(long = "for-connector")]
        for_connector: Option<String>,
    },
    /// Create a symmetric multi-Region KMS key to wrap challenge data keys; prints its key id
    /// (local stacks: deployed, the stack creates it with ChallengeSigning=data-key).
    CreateWrapping {
        /// Also replicate the key into these regions (repeat, or separate with commas; env
        /// REPLICA_REGIONS): a record wrapped in one region unwraps in each.
        #[arg(long = "replicate-to", env = "REPLICA_REGIONS", value_delimiter = ',', value_parser = parse_region)]
        replicate_to: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConnectorCommand {
    /// Create a connector; prints its id.
    Create {
        /// A name for people (e.g. laptops).
        #[arg(long)]
        name: String,
        /// KMS key id, ARN, alias name or alias ARN (not P-521: agents cannot verify ES512).
        #[arg(long = "challenge-key")]
        challenge_key: Option<String>,
        /// How long the browser waits for the agent (e.g. 5s, 1m).
        #[arg(long = "idle-timeout", value_parser = parse_duration)]
        idle_timeout: Option<i64>,
        /// Ask agents to check in before answering.
        #[arg(long = "trigger-check-in")]
        trigger_check_in: bool,
        /// approve: re-enrolling an enrolled serial needs `device allow-reenroll`; open: any
        /// enrollment token holder may re-enroll it.
        #[arg(long, default_value = "approve", value_parser = reenroll_parser())]
        reenroll: ReenrollPolicy,
    },
    /// Set the connector's re-enrollment policy.
    SetReenroll {
        /// The connector's id.
        id: String,
        /// approve (an operator allows each re-enrollment) or open.
        #[arg(value_parser = reenroll_parser())]
        policy: ReenrollPolicy,
    },
    /// Sign with another challenge key at once (the old one stays in the JWKS for 6 minutes).
    /// Agents only learn new keys when they fetch their configuration: for a fleet of real
    /// agents use add-next-key, then rotate.
    SetKey {
        /// The connector's id.
        id: String,
        /// KMS key id, ARN, alias name or alias ARN.
        key: String,
    },
    /// Publish the connector's next challenge key now (JWKS route and agents' jwks_challenge),
    /// without signing with it yet.
    AddNextKey {
        /// The connector's id.
        id: String,
        /// KMS key id, ARN, alias name or alias ARN.
        key: String,
    },
    /// Sign with the next key from now on; the old key stays published for the grace period.
    /// Refused while a device of the connector has not fetched its configuration since the
    /// next key was published (they are listed; `connector show` counts them).
    Rotate {
        /// The connector's id.
        id: String,
        /// How long the old key stays published (e.g. 24h, 7d).
        #[arg(long, value_parser = parse_duration, default_value = "7d")]
        grace: i64,
        /// Rotate even though some devices have not fetched the next key: their agents refuse
        /// the new key's challenges until they fetch their configuration (restart).
        #[arg(long)]
        force: bool,
    },
    /// Name the stage that auth_ia/ plans run through.
    SetInteractiveStage {
        /// The connector's id.
        id: String,
        /// A stage of this connector.
        stage: String,
    },
    /// Disable a connector: its stages then deny (required) or pass without a device (optional).
    Disable {
        /// The connector's id.
        id: String,
    },
    /// Enable a connector again.
    Enable {
        /// The connector's id.
        id: String,
    },
    /// Show a connector with its keys (signing, next, retired) and their dates, and with a
    /// next key pending, how many of its devices have fetched it.
    Show {
        /// The connector's id.
        id: String,
    },
    /// List connectors: id, name, state, signing key.
    List,
}

#[derive(Subcommand, Debug)]
pub enum StageCommand {
    /// Create a stage; prints its id. `required` needs a connector with a challenge key.
    Create {
        /// The connector whose devices the stage checks.
        #[arg(long)]
        connector: String,
        /// optional: a login passes without a device; required: only an enrolled device passes.
        #[arg(long, default_value = "optional", value_parser = mode_parser())]
        mode: StageMode,
        /// The posture policy devices must meet.
        #[arg(long)]
        policy: Option<String>,
        /// An origin (https://app.example.com) its plans may redirect to; repeatable. Without
        /// one, a plan redirects to a path or a loopback URL only.
        #[arg(long = "redirect-origin")]
        redirect_origins: Vec<String>,
        /// An audience its plans' device assertions may name besides the stage id; repeatable.
        #[arg(long = "audience")]
        audiences: Vec<String>,
    },
    /// Replace the origins the stage's plans may redirect to (none given: paths and loopback
    /// URLs only).
    SetRedirectOrigins {
        /// The stage.
        stage: String,
        /// Origins: scheme, host and optional port (https://app.example.com).
        origins: Vec<String>,
    },
    /// Replace the audiences the stage's plans may ask their device assertions to name (the
    /// stage id is always allowed; none given: the stage id only).
    SetAudiences {
        /// The stage.
        stage: String,
        /// Audiences, 1 to 256 characters each.
        audiences: Vec<String>,
    },
    /// Set (or with `none`, remove) the stage's posture policy.
    SetPolicy {
        /// The stage.
        stage: String,
        /// A policy id, or none.
        policy: String,
    },
    /// Set the help shown to people on every denial of the stage: a text and an https: link
    /// (neither given: no help). Plans created from then on show it.
    SetHelp {
        /// The stage.
        stage: String,
        /// What to tell people (as written, at most 500 characters).
        #[arg(long)]
        text: Option<String>,
        /// Where to get help (an https: URL).
        #[arg(long)]
        url: Option<String>,
    },
    /// Show a stage.
    Show {
        /// The stage.
        stage: String,
    },
    /// List stages.
    List,
}

#[derive(Subcommand, Debug)]
pub enum EnrollmentTokenCommand {
    /// Create an enrollment token; prints its key (shown once).
    Create {
        /// The connector devices enroll on with this token.
        #[arg(long)]
        connector: String,
        /// A name for people (where the token was handed out).
        #[arg(long, default_value = "enrollment token")]
        name: String,
        /// Lifetime (e.g. 24h, 7d), or `never`.
        #[arg(long, default_value = "7d", value_parser = parse_expiry)]
        expires: Expiry,
        /// How many devices it may enroll (default: any number until it expires).
        #[arg(long = "max-uses", value_parser = clap::value_parser!(u32).range(1..))]
        max_uses: Option<u32>,
        /// Bind the token to this one device serial.
        #[arg(long)]
        serial: Option<String>,
        /// The person the devices it enrolls belong to (a username or email address): each
        /// becomes that device's only owner, also a device enrolled again.
        #[arg(long, value_name = "USER")]
        owner: Option<String>,
    },
    /// List enrollment tokens with their use count and state (never their key).
    List {
        /// Only the tokens of this connector.
        #[arg(long)]
        connector: Option<String>,
    },
    /// Show an enrollment token with the serials it enrolled.
    Show {
        /// The token's id.
        id: String,
    },
    /// Revoke an enrollment token: it enrolls nothing from now on.
    Revoke {
        /// The token's id.
        id: String,
    },
}
