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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(5));
        assert_eq!(parse_duration("30"), Ok(30));
        assert_eq!(parse_duration("5m"), Ok(300));
        assert_eq!(parse_duration("24h"), Ok(86400));
        assert_eq!(parse_duration("7d"), Ok(604800));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999d").is_err());
        assert_eq!(parse_expiry("never"), Ok(Expiry::Never));
        assert_eq!(parse_expiry("7d"), Ok(Expiry::After(604800)));
        assert!(parse_expiry("forever").is_err());
    }

    #[test]
    fn p521_is_refused_with_the_reason() {
        assert_eq!(parse_challenge_spec("RSA_3072"), Ok("RSA_3072".into()));
        assert!(parse_challenge_spec("ECC_NIST_P521").is_err_and(|e| e.contains("ES512")));
        assert!(parse_challenge_spec("ECC_SECG_P256K1").is_err());
    }
}
