//! `/health`: whether this region can serve a login now, for Route 53's health checks (issue 31).
//!
//! What a login needs in a region, each checked without a cryptographic call:
//! - **table**: the region's table answers one consistent read (`GetItem` of a fixed key that
//!   holds no item: the cheapest read there is);
//! - **challenge_key**: the key the region's connectors sign challenges with is usable. A KMS key
//!   (the stack's challenge key, or the one the operator names) is *enabled and a signing key*
//!   (`DescribeKey`, never `Sign`: a health check spends nothing of the KMS ECC quota). A data
//!   key (`datakey:<kid>`, `ChallengeSigning=data-key`) has its record in the table and its
//!   wrapping key is *enabled and a decryption key* (`GetItem` of the record, `DescribeKey` of
//!   the wrapping key; never `Decrypt`).
//!
//! The region is healthy when every check is `ok`. A check that cannot answer (a timeout, an
//! error, throttling) is `unavailable`: a region whose table or key service does not answer
//! cannot serve logins either.
//!
//! **Bounded work per caller.** A report is kept for [`HEALTH_CACHE_SECONDS`] per instance, and
//! only one check runs at a time per instance (concurrent callers wait for it and share its
//! report), so however many checkers call, an instance makes at most one round of checks per
//! window: 2 AWS calls (3 with a data key) per 10 seconds per instance. The checks of a round run
//! together (one round trip, each call bounded as every AWS call is).
//!
//! The edge owns the JSON (`edge::health_body`); a report names checks and their state only,
//! never an error's text or a key's id.

use futures::lock::Mutex;

use crate::error::SignerError;
use crate::model::{UnixTime, DATA_KEY_PREFIX};
use crate::ports::{Clock, DataKeyRecords, KeyStatus, KeyUse, TableProbe};

/// How long one instance keeps a report (ok or not) before checking again, in seconds. Route 53
/// checks every 10 or 30 seconds from about 15 places: most of their calls are answered from the
/// report, and a failure is seen within this window plus the checker's interval.
pub const HEALTH_CACHE_SECONDS: i64 = 10;

/// What is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    Table,
    ChallengeKey,
}

impl Check {
    /// Its name in the answer's `checks`.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Table => "table",
            Check::ChallengeKey => "challenge_key",
        }
    }
}

/// A check's result, in generic terms (never the service's text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckState {
    Ok,
    /// The service did not answer, or answered an error: a login would fail the same way.
    Unavailable,
    /// The key (or a data key's record) does not exist.
    Missing,
    /// The key exists and cannot serve: disabled, pending deletion, or not made for its use.
    Unusable,
}

impl CheckState {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckState::Ok => "ok",
            CheckState::Unavailable => "unavailable",
            CheckState::Missing => "missing",
            CheckState::Unusable => "unusable",
        }
    }

    fn of_signer(e: &SignerError) -> Self {
        match e {
            SignerError::KeyNotFound(_) => CheckState::Missing,
            SignerError::KeyUnusable { .. } => CheckState::Unusable,
            SignerError::Unavailable(_) | SignerError::Throttled => CheckState::Unavailable,
        }
    }
}

/// One round of checks, and when it was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Each check with its state, in [`Check`] order.
    pub checks: Vec<(Check, CheckState)>,
    pub checked_at: UnixTime,
}

impl Report {
    /// Healthy: every check is ok.
    pub fn healthy(&self) -> bool {
        self.checks.iter().all(|(_, s)| *s == CheckState::Ok)
    }

    /// The state of one check, if it was made.
    pub fn state(&self, check: Check) -> Option<CheckState> {
        self.checks
            .iter()
            .find(|(c, _)| *c == check)
            .map(|(_, s)| *s)
    }
}

/// The health of one instance's region: what to check, and the last report.
pub struct Health {
    /// The challenge key to check (a KMS key reference or `datakey:<kid>`); `None`: no key check
    /// (a stack configured without one: the report says so by leaving the check out).
    challenge_key: Option<String>,
    last: Mutex<Option<Report>>,
}

impl Health {
    pub fn new(challenge_key: Option<String>) -> Self {
        Health {
            challenge_key: challenge_key.filter(|k| !k.is_empty()),
            last: Mutex::new(None),
        }
    }

    /// The region's report: the last one if it is younger than [`HEALTH_CACHE_SECONDS`], else a
    /// new round of checks (one at a time per instance; callers arriving meanwhile wait for it and
    /// answer its report).
    pub async fn report(
        &self,
        table: &impl TableProbe,
        keys: &impl KeyStatus,
        data_keys: &impl DataKeyRecords,
        clock: &dyn Clock,
    ) -> Report {
        let mut last = self.last.lock().await;
        let now = clock.now();
        if let Some(report) = last.as_ref() {
            let age = now - report.checked_at;
            if (0..HEALTH_CACHE_SECONDS).contains(&age) {
                return report.clone();
            }
        }
        let (table_state, key_state) = futures::join!(
            async {
                match table.probe_table().await {
                    Ok(()) => CheckState::Ok,
                    Err(_) => CheckState::Unavailable,
                }
            },
            async {
                match &self.challenge_key {
                    Some(key) => Some(challenge_key_state(key, keys, data_keys).await),
                    None => None,
                }
            }
        );
        let mut checks = vec![(Check::Table, table_state)];
        if let Some(state) = key_state {
            checks.push((Check::ChallengeKey, state));
        }
        let report = Report {
            checks,
            checked_at: now,
        };
        *last = Some(report.clone());
        report
    }
}

/// A KMS key: enabled and a signing key. A data key: its record, then its wrapping key enabled
/// and a decryption key.
async fn challenge_key_state(
    key: &str,
    keys: &impl KeyStatus,
    data_keys: &impl DataKeyRecords,
) -> CheckState {
    let (reference, usage) = match key.strip_prefix(DATA_KEY_PREFIX) {
        None => (key.to_string(), KeyUse::Sign),
        Some(kid) => match data_keys.get_data_key(kid).await {
            Ok(Some(record)) => (record.wrapping_key, KeyUse::Wrap),
            Ok(None) => return CheckState::Missing,
            // The table did not serve the read.
            Err(_) => return CheckState::Unavailable,
        },
    };
    match keys.key_usable(&reference, usage).await {
        Ok(true) => CheckState::Ok,
        Ok(false) => CheckState::Unusable,
        Err(e) => CheckState::of_signer(&e),
    }
}
