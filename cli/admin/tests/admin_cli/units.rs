//! The CLI's own parts without a process: its argument parsers, its help, the operator's clock.
//! (They were the binary's unit tests; the library compiles once without a unit-test build.)

use clap::{CommandFactory, Parser};
use endpoint_admin::cli::Args;
use endpoint_admin::clock::OperatorClock;
use endpoint_admin::parsers::{parse_challenge_spec, parse_duration, parse_expiry, Expiry};
use endpoint_core::ports::{Clock, SystemClock};

#[test]
fn the_skew_shifts_the_clock_and_is_bounded() {
    let base = SystemClock.now();
    let slow = OperatorClock::shifted(-600).expect("ten minutes is within a day");
    assert!((slow.now() - (base - 600)).abs() <= 1);
    assert!((slow.now_millis() / 1000 - (base - 600)).abs() <= 1);
    assert!((OperatorClock::default().now() - base).abs() <= 1);
    assert!(OperatorClock::shifted(86_400).is_some());
    assert!(OperatorClock::shifted(86_401).is_none());
    assert!(OperatorClock::shifted(-86_401).is_none());
}

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

/// Every command and every flag says what it is for in `--help`.
#[test]
fn every_command_and_flag_has_a_help_line() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        let here = format!("{path} {}", cmd.get_name());
        if cmd.get_about().is_none() {
            missing.push(format!("{here}: no about"));
        }
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() {
                missing.push(format!("{here} {id}: no help"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_name() != "help" {
                walk(sub, &here, missing);
            }
        }
    }
    let mut missing = Vec::new();
    walk(&Args::command(), "", &mut missing);
    assert!(missing.is_empty(), "{missing:#?}");
}

#[test]
fn modes_and_specs_are_enumerated_in_help() {
    let help = Args::command()
        .find_subcommand_mut("stage")
        .and_then(|s| s.find_subcommand_mut("create"))
        .map(|c| c.render_long_help().to_string())
        .unwrap_or_default();
    assert!(
        help.contains("optional") && help.contains("required"),
        "{help}"
    );
    let help = Args::command()
        .find_subcommand_mut("key")
        .and_then(|s| s.find_subcommand_mut("create"))
        .map(|c| c.render_long_help().to_string())
        .unwrap_or_default();
    for spec in [
        "ECC_NIST_P256",
        "ECC_NIST_P384",
        "RSA_2048",
        "RSA_3072",
        "RSA_4096",
    ] {
        assert!(help.contains(spec), "{spec}: {help}");
    }
}

#[test]
fn json_flag_is_global() {
    Args::command().debug_assert();
    let a = Args::try_parse_from(["endpoint-admin", "connector", "list", "--json"]).unwrap();
    assert!(a.json);
    let a = Args::try_parse_from(["endpoint-admin", "--json", "connector", "list"]).unwrap();
    assert!(a.json);
}
