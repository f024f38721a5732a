//! The value parsers of the CLI's arguments, in one place below the command tree (`cli.rs`,
//! `device_args.rs`, `policy_args.rs` use them; they use none of those).

use endpoint_core::model::{ReenrollPolicy, StageMode};

/// An enrollment token's lifetime: seconds, or never.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    After(i64),
    Never,
}

/// `never` or a duration.
pub fn parse_expiry(s: &str) -> Result<Expiry, String> {
    if s == "never" {
        Ok(Expiry::Never)
    } else {
        parse_duration(s).map(Expiry::After)
    }
}

/// The re-enrollment policies, listed in `--help`.
pub fn reenroll_parser() -> impl clap::builder::TypedValueParser<Value = ReenrollPolicy> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["approve", "open"])
        .try_map(|s: String| s.parse::<ReenrollPolicy>())
}

/// The stage modes, listed in `--help`.
pub fn mode_parser() -> impl clap::builder::TypedValueParser<Value = StageMode> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["optional", "required"])
        .try_map(|s: String| s.parse::<StageMode>())
}

/// The challenge key specs, listed in `--help`; P-521 is refused with the reason.
pub fn spec_parser() -> impl clap::builder::TypedValueParser<Value = String> {
    use clap::builder::{PossibleValue, TypedValueParser};
    clap::builder::PossibleValuesParser::new([
        PossibleValue::new("ECC_NIST_P256"),
        PossibleValue::new("ECC_NIST_P384"),
        PossibleValue::new("RSA_2048"),
        PossibleValue::new("RSA_3072"),
        PossibleValue::new("RSA_4096"),
        PossibleValue::new("ECC_NIST_P521").hide(true),
    ])
    .try_map(|s: String| parse_challenge_spec(&s))
}

/// A KMS key spec that can sign challenges every authentik platform agent verifies.
pub fn parse_challenge_spec(s: &str) -> Result<String, String> {
    match s {
        "ECC_NIST_P256" | "ECC_NIST_P384" | "RSA_2048" | "RSA_3072" | "RSA_4096" => Ok(s.into()),
        "ECC_NIST_P521" => Err("P-521 keys cannot sign challenges: authentik platform agents cannot verify ES512 (use ECC_NIST_P256, ECC_NIST_P384 or an RSA spec)".into()),
        _ => Err(format!("{s:?} is not one of ECC_NIST_P256, ECC_NIST_P384, RSA_2048, RSA_3072, RSA_4096")),
    }
}

/// `30`, `30s`, `5m`, `24h`, `7d` -> seconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    // The core's one duration syntax; these options (idle timeout, --since, --for) need more
    // than zero.
    match endpoint_core::settings::parse_duration(s)? {
        0 => Err(format!("{s:?} must be longer than zero")),
        seconds => Ok(seconds),
    }
}

/// Most regions a key is replicated into (a deployment names at most 16 regions).
pub const MAX_REPLICA_REGIONS: usize = 16;

/// An AWS region name (`eu-west-1`): 1 to 32 lowercase letters, digits and hyphens.
pub fn parse_region(s: &str) -> Result<String, String> {
    let ok = (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not an AWS region name like eu-west-1"))
    }
}
