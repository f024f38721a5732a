//! What every domain operation takes besides its ports: the clock, randomness, the tunables
//! from the functions' environment, and who is asking.

use crate::audit::{AuditEvent, AuditKind, Caller};
use crate::ports::{random_alnum, Clock, Random};
use crate::protocol::response::DEFAULT_LEEWAY;
use crate::region::Regions;

/// Tunables, from the functions' environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Clock-skew leeway on a response's `exp`, `nbf`, `iat`, in seconds.
    pub leeway: i64,
    /// How long a plan lives, in seconds.
    pub plan_lifetime: i64,
    /// How many challenges one plan may mint (each costs a KMS signature).
    pub max_challenges_per_plan: u32,
    /// How many `auth_ia/` plans one device may create per minute.
    pub auth_ia_per_minute: u32,
    /// How many `check_in/`s one device may make per minute (each parses, evaluates and stores
    /// up to 2 MiB).
    pub check_ins_per_minute: u32,
    /// The deployment's regions: which plans this region serves, and which is the primary.
    pub regions: Regions,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            leeway: DEFAULT_LEEWAY,
            plan_lifetime: 15 * 60,
            max_challenges_per_plan: 10,
            auth_ia_per_minute: 10,
            check_ins_per_minute: 20,
            regions: Regions::default(),
        }
    }
}

/// The clock, randomness and tunables every operation needs, and who is asking.
pub struct Env<'a> {
    pub clock: &'a dyn Clock,
    pub rng: &'a dyn Random,
    pub settings: &'a Settings,
    pub caller: &'a Caller,
}

impl Env<'_> {
    /// A new audit record of `kind` by `actor`, now, with the caller's address and agent.
    pub fn audit(&self, kind: AuditKind, actor: String) -> AuditEvent {
        AuditEvent::new(
            kind,
            self.clock.now(),
            &random_alnum(self.rng, 8),
            actor,
            self.caller,
        )
    }
}

/// Longest duration accepted anywhere (ten years), in seconds.
pub const MAX_DURATION: i64 = 10 * 365 * 86_400;

/// A duration as operators write it: `N` followed by `s`, `m`, `h` or `d` (a bare number is
/// seconds), with no minimum; in seconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let refused = || format!("{s:?} is not a duration like 30s, 5m, 24h or 7d");
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: i64 = digits.parse().map_err(|_| refused())?;
    let size = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(refused()),
    };
    n.checked_mul(size)
        .filter(|v| *v <= MAX_DURATION)
        .ok_or_else(|| format!("{s:?} is out of range (at most ten years)"))
}
