//! The arguments of `endpoint-admin policy ...` (posture policies and their rules).

use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches, Subcommand};
use endpoint_core::compliance::kinds::{self, Opt, Takes, Values};
use endpoint_core::compliance::rules::parse_enforcement;
use endpoint_core::model::{Enforcement, RuleKind, UnknownAs, WhenUnknown};

/// Any duration, zero included (`--max-facts-age 0s` makes every device unknown).
fn any_duration(s: &str) -> Result<i64, String> {
    endpoint_core::settings::parse_duration(s)
}

#[derive(Subcommand, Debug, Clone)]
pub enum PolicyCommand {
    /// Create a policy (no rules yet); prints its id.
    Create {
        /// What operators call it (not shown to people signing in).
        #[arg(long)]
        name: String,
        /// Facts older than this count as no facts (e.g. 12h, 7d).
        #[arg(long = "max-facts-age", value_parser = any_duration, default_value = "24h")]
        max_facts_age: i64,
        /// What a required stage does with a device that has no current evaluation.
        #[arg(long = "when-unknown", default_value = "deny", value_parser = parse_when_unknown)]
        when_unknown: WhenUnknown,
    },
    /// Add a rule; prints its id. The policy's version increases, and every stage using it
    /// follows.
    AddRule {
        /// The policy.
        policy: String,
        #[command(subcommand)]
        kind: RuleKindArgs,
    },
    /// Remove a rule (the policy's version increases).
    RemoveRule {
        /// The policy.
        policy: String,
        /// The rule's id.
        rule: String,
    },
    /// Show a policy with its rules.
    Show {
        /// The policy.
        policy: String,
    },
    /// List policies.
    List,
    /// Delete a policy (refused while a stage uses it).
    Delete {
        /// The policy.
        policy: String,
    },
    /// Evaluate now and print every rule's result with the value seen; stores nothing.
    Test {
        /// The policy.
        policy: String,
        /// A device's latest stored facts.
        #[arg(long, conflicts_with = "facts", required_unless_present = "facts")]
        device: Option<String>,
        /// A facts document (authentik's DeviceFactsRequest as JSON; - for stdin).
        #[arg(long)]
        facts: Option<PathBuf>,
    },
    /// Evaluate every device's stored facts against the current version (progress on stderr;
    /// safe to interrupt and run again).
    Reevaluate {
        /// The policy.
        policy: String,
        /// Devices per page.
        #[arg(long = "page-size", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        page_size: u32,
        /// Go on after this serial (the last one a previous run reported).
        #[arg(long)]
        after: Option<String>,
    },
}

fn parse_when_unknown(s: &str) -> Result<WhenUnknown, String> {
    s.parse()
}

fn parse_unknown(s: &str) -> Result<UnknownAs, String> {
    match s {
        "fail" => Ok(UnknownAs::Fail),
        "pass" => Ok(UnknownAs::Pass),
        other => Err(format!("unknown value {other:?} (fail or pass)")),
    }
}

/// What every rule takes besides its kind's own options.
#[derive(Args, Debug, Clone)]
pub struct RuleOptions {
    /// What the person signing in reads (default: made from the rule).
    #[arg(long)]
    pub title: Option<String>,
    /// How to fix it, in words (default: made from the rule).
    #[arg(long)]
    pub remediation: Option<String>,
    /// block, warn, audit or grace:DURATION (warn until DURATION after the first failure).
    #[arg(long, default_value = "block", value_parser = parse_enforcement)]
    pub enforce: Enforcement,
    /// How a fact the device did not report counts: fail or pass.
    #[arg(long, default_value = "fail", value_parser = parse_unknown)]
    pub unknown: UnknownAs,
}

/// A rule kind and its options, as `add-rule KIND --option ...` gives them. The subcommands are
/// built from the kinds' own definitions (`endpoint_core::compliance::kinds`: each kind's name,
/// help and options are written once, in its file), so a new kind needs nothing here.
#[derive(Debug, Clone)]
pub struct RuleKindArgs {
    pub kind: RuleKind,
    pub options: RuleOptions,
}

/// A kind's option as a clap argument.
fn arg_of(opt: &Opt) -> Arg {
    let arg = Arg::new(opt.long)
        .long(opt.long)
        .value_name(opt.value)
        .help(opt.help);
    match opt.takes {
        Takes::One => arg.required(true),
        Takes::Optional => arg,
        Takes::List => arg
            .required(true)
            .action(ArgAction::Append)
            .value_delimiter(','),
        Takes::Default(value) => arg.default_value(value),
    }
}

/// The CEL functions an expression may call, for `add-rule --help`.
fn cel_functions() -> String {
    let mut names = vec!["version_at_least"];
    names.extend(kinds::KINDS.iter().flat_map(|k| k.cel_functions()));
    format!("CEL functions: {}.", names.join("(), ") + "()")
}

impl Subcommand for RuleKindArgs {
    fn augment_subcommands(cmd: Command) -> Command {
        kinds::KINDS
            .iter()
            .fold(cmd.after_help(cel_functions()), |cmd, kind| {
                let sub = kind
                    .options()
                    .iter()
                    .fold(Command::new(kind.name()), |sub, opt| sub.arg(arg_of(opt)));
                // After the common options, whose own doc would otherwise be the about.
                cmd.subcommand(RuleOptions::augment_args(sub).about(kind.about()))
            })
            .subcommand_required(true)
    }

    fn augment_subcommands_for_update(cmd: Command) -> Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        kinds::by_name(name).is_some()
    }
}

impl FromArgMatches for RuleKindArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let Some((name, sub)) = matches.subcommand() else {
            return Err(clap::Error::raw(
                ErrorKind::MissingSubcommand,
                "a rule kind is required",
            ));
        };
        let Some(kind) = kinds::by_name(name) else {
            return Err(clap::Error::raw(
                ErrorKind::InvalidSubcommand,
                format!("unknown rule kind {name:?}"),
            ));
        };
        let mut values = Values::default();
        for opt in kind.options() {
            if let Some(given) = sub.get_many::<String>(opt.long) {
                values.set(opt.long, given.cloned().collect());
            }
        }
        let rule_kind = kind
            .build(&values)
            .map_err(|e| clap::Error::raw(ErrorKind::ValueValidation, e))?;
        Ok(Self {
            kind: rule_kind,
            options: RuleOptions::from_arg_matches(sub)?,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}
