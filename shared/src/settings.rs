//! What every domain operation takes besides its ports: the clock, randomness, the tunables
//! from the functions' environment, and who is asking.

use crate::audit::{AuditEvent, AuditKind, Caller};
use crate::ports::{random_alnum, Clock, Random};
use crate::protocol::response::DEFAULT_LEEWAY;

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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            leeway: DEFAULT_LEEWAY,
            plan_lifetime: 15 * 60,
            max_challenges_per_plan: 10,
            auth_ia_per_minute: 10,
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
