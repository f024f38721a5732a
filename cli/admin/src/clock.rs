//! The operator's clock: the workstation's own time, as every write of the CLI stamps it. A
//! workstation's clock may be minutes off; `ENDPOINT_ADMIN_CLOCK_SKEW` (signed seconds, default
//! 0) shifts this clock on purpose, so that a test (or an operator checking the product) can show
//! what a skewed workstation does: nothing the CLI writes may depend on its clock being right
//! (a lock's signal event is delivered whatever its stamp: docs/SECURITY.md).

use endpoint_core::model::UnixTime;
use endpoint_core::ports::{Clock, SystemClock};

/// The environment variable that shifts the operator's clock (signed seconds).
pub const CLOCK_SKEW_VAR: &str = "ENDPOINT_ADMIN_CLOCK_SKEW";
/// The largest shift taken: a day either way.
const MAX_SKEW: i64 = 86_400;

/// The system clock shifted by a fixed number of seconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct OperatorClock {
    skew: i64,
}

impl OperatorClock {
    /// The system clock shifted by `skew` seconds; None beyond a day either way.
    pub fn shifted(skew: i64) -> Option<Self> {
        (skew.abs() <= MAX_SKEW).then_some(OperatorClock { skew })
    }

    /// The clock the environment asks for; an unreadable or out-of-range skew is refused.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(CLOCK_SKEW_VAR) {
            Err(_) => Ok(OperatorClock::default()),
            Ok(v) => match v.trim().parse::<i64>().ok().and_then(OperatorClock::shifted) {
                Some(clock) => Ok(clock),
                None => Err(format!(
                    "{CLOCK_SKEW_VAR} must be a whole number of seconds between -{MAX_SKEW} and {MAX_SKEW}"
                )),
            },
        }
    }
}

impl Clock for OperatorClock {
    fn now(&self) -> UnixTime {
        SystemClock.now() + self.skew
    }

    fn now_millis(&self) -> i64 {
        SystemClock.now_millis() + self.skew * 1000
    }
}
