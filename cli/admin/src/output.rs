//! What a command prints (one value per line, or one JSON object with `--json`), the audit
//! record of what it changed, and who the operator is.

use crate::clock::OperatorClock;
use endpoint_core::audit::{AuditEvent, AuditKind, Caller};
use endpoint_core::ports::{random_alnum, Clock, SystemRandom};
use serde_json::{json, Value};

/// What a command prints, and the audit record of what it changed.
pub struct Output {
    pub plain: String,
    pub json: Value,
    /// Recorded once the command succeeded, with the operator as its actor.
    pub audit: Option<AuditEvent>,
}

impl Output {
    /// One named value: the value alone, or `{"field": value}`.
    pub fn value(field: &str, value: &str) -> Self {
        Output {
            plain: value.to_string(),
            json: json!({ field: value }),
            audit: None,
        }
    }

    pub fn audited(mut self, event: AuditEvent) -> Self {
        self.audit = Some(event);
        self
    }
}

/// A new operator's audit record of `kind`, now (the core's one builder; `run` names the
/// operator once the command succeeded).
pub fn audit(kind: AuditKind) -> AuditEvent {
    AuditEvent::new(
        kind,
        OperatorClock::from_env().unwrap_or_default().now(),
        &random_alnum(&SystemRandom, 8),
        String::new(),
        &Caller::UNKNOWN,
    )
}

/// The operator for the audit trail: the IAM principal the AWS credentials belong to (STS
/// `GetCallerIdentity`, which needs no permission), so the record names who really acted.
/// If STS cannot answer, the name the operator gives (`ENDPOINT_ADMIN_OPERATOR`, else the login
/// name), marked unverified.
pub async fn operator(config: &aws_config::SdkConfig) -> String {
    let sts = aws_sdk_sts::Client::new(config);
    if let Ok(identity) = sts.get_caller_identity().send().await {
        if let Some(arn) = identity.arn() {
            return format!("operator:{arn}");
        }
    }
    let name = std::env::var("ENDPOINT_ADMIN_OPERATOR")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    let name: String = name.chars().take(128).collect();
    format!("operator:{name} (unverified)")
}

/// A time for plain output: the unix seconds, or `-`.
pub fn date(t: Option<i64>) -> String {
    t.map_or_else(|| "-".into(), |t| t.to_string())
}
