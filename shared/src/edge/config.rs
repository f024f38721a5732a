//! The functions' configuration from their environment, and what every function holds
//! besides its clients.

use crate::audit::Caller;
use crate::egress::EgressPolicy;
use crate::model::ChallengeSigning;
use crate::ports::{SystemClock, SystemRandom};
use crate::region::Regions;
use crate::settings::{Env, Settings};

/// The functions' configuration, from environment variables with defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionConfig {
    /// `TABLE_NAME` (default `endpoint-stage`).
    pub table: String,
    /// `PLAN_LIFETIME_SECONDS` (900), `CLOCK_LEEWAY_SECONDS` (30), `MAX_CHALLENGES_PER_PLAN` (10);
    /// the regions: `REGION_CODE`, `REGION_BASE_URLS`, `PRIMARY_REGION`, `REGION_AFFINITY`
    /// (`region::Regions::parse`).
    pub settings: Settings,
    /// `PUBLIC_BASE_URL`: where browsers reach the API (for URLs handed to agents); without
    /// it, `https://` and the request's `Host`.
    pub public_base_url: Option<String>,
    /// `CHALLENGE_FUNCTION_NAME`: the function the response validator asks for a new challenge.
    pub challenge_function: String,
    /// `BRAND_TITLE`: the title `core/brands/current/` answers (default `endpoint-stage`).
    pub brand_title: String,
    /// `CHALLENGE_KEY_ID`: the challenge key `/health` checks (`crate::health`): the stack's
    /// challenge key (a KMS key id, ARN or alias), or with `ChallengeSigning=data-key` the data
    /// key its connectors sign with (`datakey:<kid>`). Unset: `/health` checks the table only.
    pub challenge_key: Option<String>,
    /// `SEALING_KEY_ID`: the symmetric KMS key whose data key seals device token keys.
    pub sealing_key: Option<String>,
    /// `ASSERTION_KEY_ID`: the P-256 KMS key that signs device assertions (without it, plans
    /// carry none).
    pub assertion_key: Option<String>,
    /// `SIGNALS_KEY_ID`: the P-256 KMS key that signs security event tokens (its own key: the
    /// functions that sign SETs cannot sign device assertions).
    pub signals_key: Option<String>,
    /// `OIDC_RSA_KEY_ID` / `OIDC_EC_KEY_ID`: the KMS keys that sign the OpenID provider's ID
    /// tokens (RSA_2048 for RS256, ECC_NIST_P256 for ES256): keys of their own, neither the
    /// assertion nor the signals key.
    pub oidc_rsa_key: Option<String>,
    pub oidc_ec_key: Option<String>,
    /// `AUDIT_RETENTION_DAYS` (90): how long audit records are kept.
    pub audit_retention_days: i64,
    /// `PUSH_FIRST_RETRY_SECONDS` (30): the push delivery's first retry, doubling per failure
    /// to an hour (the local stack shortens it so that its tests need not wait).
    pub push_first_retry: i64,
    /// `PUSH_ALLOW_LOOPBACK` (`1` or `true`; default off): push endpoints may also be loopback
    /// addresses, and `http:` to them. Set only by the local stack (`make run`, the tests),
    /// never by `template.yaml`: deployed, push goes to public addresses over `https:` only.
    pub push_egress: EgressPolicy,
    /// `CHALLENGE_SIGNING` (`kms`, the default, or `data-key`): whether the challenge function
    /// may unwrap challenge data keys (issue 31.4; the template's `ChallengeSigning`).
    pub challenge_signing: ChallengeSigning,
}

impl FunctionConfig {
    /// Reads the environment. A malformed value is an error (a cold start should fail loudly
    /// rather than run with a silently different limit).
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let number = |name: &str, default: i64, min: i64, max: i64| -> Result<i64, String> {
            match get(name) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<i64>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(n),
                    _ => Err(format!("{name} must be a whole number from {min} to {max}")),
                },
            }
        };
        let defaults = Settings::default();
        Ok(FunctionConfig {
            table: get("TABLE_NAME")
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "endpoint-stage".into()),
            settings: Settings {
                leeway: number("CLOCK_LEEWAY_SECONDS", defaults.leeway, 0, 300)?,
                plan_lifetime: number("PLAN_LIFETIME_SECONDS", defaults.plan_lifetime, 60, 86_400)?,
                max_challenges_per_plan: number(
                    "MAX_CHALLENGES_PER_PLAN",
                    defaults.max_challenges_per_plan.into(),
                    1,
                    100,
                )? as u32,
                auth_ia_per_minute: number(
                    "AUTH_IA_PER_MINUTE",
                    defaults.auth_ia_per_minute.into(),
                    1,
                    1000,
                )? as u32,
                check_ins_per_minute: number(
                    "CHECK_INS_PER_MINUTE",
                    defaults.check_ins_per_minute.into(),
                    1,
                    1000,
                )? as u32,
                regions: Regions::parse(
                    get("REGION_CODE").as_deref(),
                    get("REGION_BASE_URLS").as_deref(),
                    get("PRIMARY_REGION").as_deref(),
                    get("REGION_AFFINITY").as_deref(),
                )?,
            },
            challenge_key: get("CHALLENGE_KEY_ID").filter(|k| !k.is_empty()),
            sealing_key: get("SEALING_KEY_ID").filter(|k| !k.is_empty()),
            assertion_key: get("ASSERTION_KEY_ID").filter(|k| !k.is_empty()),
            signals_key: get("SIGNALS_KEY_ID").filter(|k| !k.is_empty()),
            oidc_rsa_key: get("OIDC_RSA_KEY_ID").filter(|k| !k.is_empty()),
            oidc_ec_key: get("OIDC_EC_KEY_ID").filter(|k| !k.is_empty()),
            audit_retention_days: number(
                "AUDIT_RETENTION_DAYS",
                crate::audit::DEFAULT_RETENTION_DAYS,
                1,
                3650,
            )?,
            push_first_retry: number(
                "PUSH_FIRST_RETRY_SECONDS",
                crate::delivery::FIRST_RETRY,
                1,
                crate::delivery::MAX_BACKOFF,
            )?,
            push_egress: match get("PUSH_ALLOW_LOOPBACK").as_deref().map(str::trim) {
                None | Some("" | "0" | "false") => EgressPolicy::PublicOnly,
                Some("1" | "true") => EgressPolicy::AllowLoopback,
                Some(_) => return Err("PUSH_ALLOW_LOOPBACK must be 1, true, 0 or false".into()),
            },
            challenge_signing: ChallengeSigning::parse(
                get("CHALLENGE_SIGNING").as_deref().unwrap_or_default(),
            )
            .ok_or("CHALLENGE_SIGNING must be kms or data-key")?,
            public_base_url: get("PUBLIC_BASE_URL")
                .filter(|u| !u.is_empty())
                .map(|u| u.trim_end_matches('/').to_string()),
            challenge_function: get("CHALLENGE_FUNCTION_NAME")
                .unwrap_or_else(|| "challenge".into()),
            brand_title: match get("BRAND_TITLE") {
                None => crate::agent::DEFAULT_BRAND_TITLE.into(),
                Some(t)
                    if (1..=256).contains(&t.chars().count())
                        && !t.chars().any(char::is_control) =>
                {
                    t
                }
                Some(_) => {
                    return Err(
                        "BRAND_TITLE must be 1 to 256 characters without control characters".into(),
                    )
                }
            },
        })
    }
}

/// What every function holds besides its clients: configuration, clock and randomness.
pub struct Base {
    pub config: FunctionConfig,
    pub clock: SystemClock,
    pub rng: SystemRandom,
}

impl Base {
    pub fn from_env() -> Result<Self, lambda_http::Error> {
        let config = FunctionConfig::from_env().map_err(|e| {
            tracing::error!(error = %e, "invalid configuration");
            lambda_http::Error::from(e)
        })?;
        Ok(Base {
            config,
            clock: SystemClock,
            rng: SystemRandom,
        })
    }

    /// The operations' environment for one request by `caller`.
    pub fn env<'a>(&'a self, caller: &'a Caller) -> Env<'a> {
        Env {
            clock: &self.clock,
            rng: &self.rng,
            settings: &self.config.settings,
            caller,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_bounds() {
        let Ok(c) = FunctionConfig::from_lookup(|_| None) else {
            panic!("defaults must parse");
        };
        assert_eq!(c.table, "endpoint-stage");
        assert_eq!(c.settings, Settings::default());
        let three =
            FunctionConfig::from_lookup(|k| (k == "MAX_CHALLENGES_PER_PLAN").then(|| "3".into()));
        assert_eq!(three.map(|c| c.settings.max_challenges_per_plan), Ok(3));
        assert!(
            FunctionConfig::from_lookup(|k| (k == "CLOCK_LEEWAY_SECONDS").then(|| "-1".into()))
                .is_err()
        );
        assert!(FunctionConfig::from_lookup(
            |k| (k == "PLAN_LIFETIME_SECONDS").then(|| "soon".into())
        )
        .is_err());
    }

    #[test]
    fn push_allows_loopback_only_when_the_local_stack_says_so() {
        let with = |v: &str| {
            FunctionConfig::from_lookup(|k| (k == "PUSH_ALLOW_LOOPBACK").then(|| v.to_string()))
                .map(|c| c.push_egress)
        };
        let default = FunctionConfig::from_lookup(|_| None).map(|c| c.push_egress);
        assert_eq!(default, Ok(EgressPolicy::PublicOnly), "off by default");
        for off in ["", "0", "false"] {
            assert_eq!(with(off), Ok(EgressPolicy::PublicOnly), "{off:?}");
        }
        for on in ["1", "true", " true "] {
            assert_eq!(with(on), Ok(EgressPolicy::AllowLoopback), "{on:?}");
        }
        assert!(
            with("yes").is_err(),
            "a typo fails the cold start, never opens it"
        );
    }
}
