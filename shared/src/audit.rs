//! The audit trail: every security event as a typed record with a stable code.
//!
//! Codes follow the style of Teleport's (`TV001I`): `ES` (endpoint stage), a family digit
//! (0 enrollment and devices, 1 the stage, 2 operator changes), two digits, and a severity
//! letter (`I` information, `W` warning: something was refused). A code never changes meaning;
//! new events get new codes. Records never hold a token, key, challenge or response: only who,
//! what, where, when, and the reason class of a refusal.

use serde::{Deserialize, Serialize};

use crate::model::UnixTime;

/// Every audit event, with its stable code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    EnrollmentAccepted,
    EnrollmentRefused,
    ReenrollmentAllowed,
    CheckIn,
    CheckInRefused,
    DeviceEnrolledByOperator,
    DeviceTokensRevoked,
    DeviceDeleted,
    DeviceComplianceChanged,
    DeviceLocked,
    DeviceUnlocked,
    DeviceOwnersSet,
    StagePassed,
    StageDenied,
    InvalidResponse,
    InteractiveAuthRefused,
    EnrollmentTokenCreated,
    EnrollmentTokenRevoked,
    ConnectorCreated,
    ConnectorChanged,
    ChallengeKeyAdded,
    ChallengeKeyRotated,
    StageCreated,
    DataMigrated,
    DataKeyRotated,
    ReceiverChanged,
    PolicyChanged,
    StageChanged,
    OidcClientChanged,
}

impl AuditKind {
    /// Every kind, for the code table test and the docs.
    pub const ALL: [AuditKind; 29] = [
        AuditKind::EnrollmentAccepted,
        AuditKind::EnrollmentRefused,
        AuditKind::ReenrollmentAllowed,
        AuditKind::CheckIn,
        AuditKind::CheckInRefused,
        AuditKind::DeviceEnrolledByOperator,
        AuditKind::DeviceTokensRevoked,
        AuditKind::DeviceDeleted,
        AuditKind::DeviceComplianceChanged,
        AuditKind::DeviceLocked,
        AuditKind::DeviceUnlocked,
        AuditKind::DeviceOwnersSet,
        AuditKind::StagePassed,
        AuditKind::StageDenied,
        AuditKind::InvalidResponse,
        AuditKind::InteractiveAuthRefused,
        AuditKind::EnrollmentTokenCreated,
        AuditKind::EnrollmentTokenRevoked,
        AuditKind::ConnectorCreated,
        AuditKind::ConnectorChanged,
        AuditKind::ChallengeKeyAdded,
        AuditKind::ChallengeKeyRotated,
        AuditKind::StageCreated,
        AuditKind::DataMigrated,
        AuditKind::DataKeyRotated,
        AuditKind::ReceiverChanged,
        AuditKind::PolicyChanged,
        AuditKind::StageChanged,
        AuditKind::OidcClientChanged,
    ];

    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            AuditKind::EnrollmentAccepted => "ES001I",
            AuditKind::EnrollmentRefused => "ES002W",
            AuditKind::ReenrollmentAllowed => "ES003I",
            AuditKind::CheckIn => "ES004I",
            AuditKind::CheckInRefused => "ES011W",
            AuditKind::DeviceEnrolledByOperator => "ES005I",
            AuditKind::DeviceTokensRevoked => "ES006I",
            AuditKind::DeviceDeleted => "ES007I",
            AuditKind::DeviceComplianceChanged => "ES008I",
            AuditKind::DeviceLocked => "ES009I",
            AuditKind::DeviceUnlocked => "ES010I",
            AuditKind::DeviceOwnersSet => "ES012I",
            AuditKind::StagePassed => "ES101I",
            AuditKind::StageDenied => "ES102W",
            AuditKind::InvalidResponse => "ES103W",
            AuditKind::InteractiveAuthRefused => "ES104W",
            AuditKind::EnrollmentTokenCreated => "ES201I",
            AuditKind::EnrollmentTokenRevoked => "ES202I",
            AuditKind::ConnectorCreated => "ES203I",
            AuditKind::ConnectorChanged => "ES204I",
            AuditKind::ChallengeKeyAdded => "ES205I",
            AuditKind::ChallengeKeyRotated => "ES206I",
            AuditKind::StageCreated => "ES207I",
            AuditKind::DataMigrated => "ES208I",
            AuditKind::PolicyChanged => "ES209I",
            AuditKind::StageChanged => "ES210I",
            AuditKind::DataKeyRotated => "ES211I",
            AuditKind::ReceiverChanged => "ES212I",
            AuditKind::OidcClientChanged => "ES213I",
        }
    }

    /// The event's name (snake case), as stored and logged.
    pub fn name(self) -> &'static str {
        match self {
            AuditKind::EnrollmentAccepted => "enrollment_accepted",
            AuditKind::EnrollmentRefused => "enrollment_refused",
            AuditKind::ReenrollmentAllowed => "reenrollment_allowed",
            AuditKind::CheckIn => "check_in",
            AuditKind::CheckInRefused => "check_in_refused",
            AuditKind::DeviceEnrolledByOperator => "device_enrolled_by_operator",
            AuditKind::DeviceTokensRevoked => "device_tokens_revoked",
            AuditKind::DeviceDeleted => "device_deleted",
            AuditKind::DeviceComplianceChanged => "device_compliance_changed",
            AuditKind::DeviceLocked => "device_locked",
            AuditKind::DeviceUnlocked => "device_unlocked",
            AuditKind::DeviceOwnersSet => "device_owners_set",
            AuditKind::StagePassed => "stage_passed",
            AuditKind::StageDenied => "stage_denied",
            AuditKind::InvalidResponse => "invalid_response",
            AuditKind::InteractiveAuthRefused => "interactive_auth_refused",
            AuditKind::EnrollmentTokenCreated => "enrollment_token_created",
            AuditKind::EnrollmentTokenRevoked => "enrollment_token_revoked",
            AuditKind::ConnectorCreated => "connector_created",
            AuditKind::ConnectorChanged => "connector_changed",
            AuditKind::ChallengeKeyAdded => "challenge_key_added",
            AuditKind::ChallengeKeyRotated => "challenge_key_rotated",
            AuditKind::StageCreated => "stage_created",
            AuditKind::DataMigrated => "data_migrated",
            AuditKind::PolicyChanged => "policy_changed",
            AuditKind::StageChanged => "stage_changed",
            AuditKind::DataKeyRotated => "data_key_rotated",
            AuditKind::ReceiverChanged => "receiver_changed",
            AuditKind::OidcClientChanged => "oidc_client_changed",
        }
    }

    pub fn from_name(name: &str) -> Option<AuditKind> {
        AuditKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Who made a request, from its context: the IAM principal (relying-party routes, deployed),
/// the source IP and user agent. Empty when unknown (the CLI, local runs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    pub principal: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Caller {
    pub const UNKNOWN: Caller = Caller {
        principal: None,
        source_ip: None,
        user_agent: None,
    };

    /// Who owns the plans this caller creates: the IAM principal, and for an assumed role the
    /// role itself (`arn:aws:sts::123456789012:assumed-role/NAME`), whatever the session: the
    /// instances or tasks of one relying party use one role under many session names.
    pub fn owner(&self) -> Option<String> {
        self.principal.as_deref().map(|arn| {
            let mut parts = arn.splitn(6, ':');
            let head: Vec<&str> = parts.by_ref().take(5).collect();
            match (head.as_slice(), parts.next()) {
                (["arn", _, "sts", "", _], Some(resource))
                    if resource.starts_with("assumed-role/") =>
                {
                    let role = resource
                        .splitn(3, '/')
                        .take(2)
                        .collect::<Vec<_>>()
                        .join("/");
                    format!("{}:{role}", head.join(":"))
                }
                _ => arn.to_string(),
            }
        })
    }
}

/// Longest user agent kept in a record.
pub const MAX_USER_AGENT: usize = 256;

/// One audit record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Time-ordered and unique: `<time>-<random>`.
    pub id: String,
    pub time: UnixTime,
    pub code: String,
    pub event: AuditKind,
    /// `device:<serial>` (a device that proved itself), `enrollment_token:<id>` (a valid
    /// enrollment token's holder), `iam:<principal ARN>`, `operator:<principal ARN>`, or
    /// `anonymous`.
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The serial a request claimed without proving it (a refused enrollment): never the actor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unverified_device: Option<String>,
    /// Why something was refused, or what changed (a class, never a secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl AuditEvent {
    /// A new record of `kind` at `time` by `actor`, with the caller's address and agent.
    pub fn new(
        kind: AuditKind,
        time: UnixTime,
        random: &str,
        actor: String,
        caller: &Caller,
    ) -> Self {
        AuditEvent {
            id: format!("{time:011}-{random}"),
            time,
            code: kind.code().to_string(),
            event: kind,
            actor,
            connector: None,
            plan: None,
            device: None,
            unverified_device: None,
            reason: None,
            source_ip: caller.source_ip.clone(),
            user_agent: caller
                .user_agent
                .as_ref()
                .map(|ua| ua.chars().take(MAX_USER_AGENT).collect()),
        }
    }

    pub fn connector(mut self, id: &str) -> Self {
        self.connector = Some(id.to_string());
        self
    }
    pub fn plan(mut self, id: &str) -> Self {
        self.plan = Some(id.to_string());
        self
    }
    pub fn device(mut self, serial: &str) -> Self {
        self.device = Some(serial.to_string());
        self
    }
    /// The serial a request claims, unproven.
    pub fn unverified_device(mut self, serial: &str) -> Self {
        self.unverified_device = Some(serial.to_string());
        self
    }
    /// The serial the record concerns, proven or only claimed: what `audit list --device`
    /// finds it by.
    pub fn any_device(&self) -> Option<&str> {
        self.device.as_deref().or(self.unverified_device.as_deref())
    }
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Emits the record as one JSON log line (target `audit`), whatever else happens to it.
    /// A plan id is a capability (whoever holds it can answer the plan's challenge), so the
    /// line names the plan by a reference (the first 16 hex digits of its SHA-256) instead; the
    /// stored record (`audit list`) has the id.
    pub fn log(&self) {
        let mut line = self.clone();
        line.plan = self
            .plan
            .as_ref()
            .map(|p| format!("ref:{}", &crate::secret::sha256_hex(p.as_bytes())[..16]));
        let json = serde_json::to_string(&line).unwrap_or_default();
        tracing::info!(target: "audit", audit = %json, code = %self.code, "audit event");
    }
}

/// The actor of a device's own request.
pub fn device_actor(serial: &str) -> String {
    format!("device:{serial}")
}

/// The actor of a request that presented a valid enrollment token (and proved nothing else).
pub fn enrollment_token_actor(token_id: &str) -> String {
    format!("enrollment_token:{token_id}")
}

/// The actor of a relying party's or browser's request.
pub fn caller_actor(caller: &Caller) -> String {
    match &caller.principal {
        Some(p) => format!("iam:{p}"),
        None => "anonymous".into(),
    }
}

/// What `audit list` asks for: newest first, filtered, from `since` on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub since: UnixTime,
    pub device: Option<String>,
    pub connector: Option<String>,
    pub plan: Option<String>,
    /// At most this many records (a page).
    pub limit: usize,
    /// Only records older than this id (the previous page's last id).
    pub before: Option<String>,
}

impl AuditQuery {
    pub fn matches(&self, e: &AuditEvent) -> bool {
        e.time >= self.since
            && self.before.as_ref().is_none_or(|b| e.id < *b)
            && self
                .device
                .as_ref()
                .is_none_or(|d| e.any_device() == Some(d.as_str()))
            && self
                .connector
                .as_ref()
                .is_none_or(|c| e.connector.as_ref() == Some(c))
            && self
                .plan
                .as_ref()
                .is_none_or(|p| e.plan.as_ref() == Some(p))
    }
}

/// The UTC day (`2026-11-28`) of a Unix time: audit records are stored by day.
pub fn utc_day(time: UnixTime) -> String {
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = time.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// How long audit records are kept unless configured (`AUDIT_RETENTION_DAYS`).
pub const DEFAULT_RETENTION_DAYS: i64 = 90;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for k in AuditKind::ALL {
            let code = k.code();
            assert!(seen.insert(code), "duplicate {code}");
            assert_eq!(code.len(), 6);
            assert!(code.starts_with("ES"));
            assert!(code.ends_with('I') || code.ends_with('W'), "{code}");
            assert_eq!(AuditKind::from_name(k.name()), Some(k));
            // The serde name is the same as `name()`.
            assert_eq!(
                serde_json::to_value(k).ok(),
                Some(serde_json::Value::String(k.name().into()))
            );
        }
    }

    #[test]
    fn the_security_page_lists_every_code() {
        let page = include_str!("../../docs/SECURITY.md");
        for k in AuditKind::ALL {
            let row = format!("| {} | {} |", k.code(), k.name());
            assert!(page.contains(&row), "docs/SECURITY.md lacks {row}");
        }
    }

    #[test]
    fn an_assumed_role_owns_plans_whatever_its_session() {
        let of = |arn: &str| {
            Caller {
                principal: Some(arn.into()),
                ..Default::default()
            }
            .owner()
        };
        assert_eq!(
            of("arn:aws:sts::111122223333:assumed-role/relying-party/i-0abc"),
            Some("arn:aws:sts::111122223333:assumed-role/relying-party".into())
        );
        assert_eq!(
            of("arn:aws:sts::111122223333:assumed-role/relying-party/i-0def"),
            of("arn:aws:sts::111122223333:assumed-role/relying-party/i-0abc")
        );
        assert_eq!(
            of("arn:aws-us-gov:sts::111122223333:assumed-role/rp/s"),
            Some("arn:aws-us-gov:sts::111122223333:assumed-role/rp".into())
        );
        // Users and roles stay as they are; so does anything else.
        assert_eq!(
            of("arn:aws:iam::111122223333:user/alice"),
            Some("arn:aws:iam::111122223333:user/alice".into())
        );
        assert_eq!(of("not an arn"), Some("not an arn".into()));
        assert_ne!(
            of("arn:aws:sts::111122223333:assumed-role/a/s"),
            of("arn:aws:sts::111122223333:assumed-role/b/s")
        );
        assert_eq!(Caller::UNKNOWN.owner(), None);
    }

    #[test]
    fn days_are_utc_calendar_days() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(86_399), "1970-01-01");
        assert_eq!(utc_day(951_782_400), "2000-02-29");
        assert_eq!(utc_day(1_795_824_000), "2026-11-28");
        assert_eq!(utc_day(1_795_910_399), "2026-11-28");
        assert_eq!(utc_day(-1), "1969-12-31");
    }

    #[test]
    fn records_order_by_id_and_filter() {
        let caller = Caller {
            principal: None,
            source_ip: Some("192.0.2.1".into()),
            user_agent: Some("x".repeat(1000)),
        };
        let a = AuditEvent::new(AuditKind::CheckIn, 99, "a", device_actor("S1"), &caller)
            .device("S1")
            .connector("c");
        let b = AuditEvent::new(
            AuditKind::StagePassed,
            100,
            "b",
            caller_actor(&caller),
            &caller,
        )
        .plan("p");
        assert!(a.id < b.id, "ids sort by time");
        assert_eq!(a.user_agent.as_ref().map(|u| u.len()), Some(MAX_USER_AGENT));
        assert_eq!(b.actor, "anonymous");
        let q = AuditQuery {
            device: Some("S1".into()),
            limit: 10,
            ..Default::default()
        };
        assert!(q.matches(&a) && !q.matches(&b));
        let q = AuditQuery {
            since: 100,
            ..Default::default()
        };
        assert!(!q.matches(&a) && q.matches(&b));
        let q = AuditQuery {
            before: Some(b.id.clone()),
            ..Default::default()
        };
        assert!(q.matches(&a) && !q.matches(&b));
    }
}
