//! Stages and plans: one run of the stage for one login, and what it answers.

use serde::{Deserialize, Serialize};

use super::{
    AuthRequest, ComplianceView, Connector, DenialReason, DeviceRef, Evaluation, PolicyRef,
    StageHelp, UnixTime,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StageMode {
    #[default]
    Optional,
    Required,
}

impl StageMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StageMode::Optional => "optional",
            StageMode::Required => "required",
        }
    }
}

impl std::str::FromStr for StageMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "optional" => Ok(StageMode::Optional),
            "required" => Ok(StageMode::Required),
            other => Err(format!(
                "unknown stage mode {other:?} (optional or required)"
            )),
        }
    }
}

/// An endpoint stage: which connector it checks devices of, and whether a device is required.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    pub id: String,
    pub connector: String,
    pub mode: StageMode,
    /// The posture policy devices must meet (id, version, what to do when unknown).
    #[serde(default)]
    pub policy: Option<PolicyRef>,
    /// The origins its plans may redirect to (canonical form). `None`: stored before origins
    /// existed, which keeps the older redirect rule until origins are registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_origins: Option<Vec<String>>,
    /// The audiences its plans' device assertions may name besides the stage id (the default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// The operator's help for people denied by this stage (`stage set-help`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<StageHelp>,
}

/// Links a device, its device token and a connector for the interactive-auth (DTH) path.
/// Holds the token's hash, never its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAuthToken {
    pub id: String,
    pub device: DeviceRef,
    pub token_id: String,
    /// Lowercase hex SHA-256 of the device token key: the expected DTH header.
    pub token_sha256: String,
    pub connector: String,
    pub expires_at: Option<UnixTime>,
    /// The device's stored evaluations when the link was made (`auth_ia/` reads them with the
    /// device, in the same call), so the DTH path decides compliance without another read.
    #[serde(default)]
    pub compliance: Vec<Evaluation>,
}

/// What a plan keeps of its stage and connector when it is created, so that serving it needs
/// one read. A configuration change reaches running plans within one plan lifetime.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageSnapshot {
    pub mode: StageMode,
    pub connector: String,
    pub enabled: bool,
    pub challenge_key: Option<String>,
    pub challenge_idle_timeout: u32,
    pub challenge_trigger_check_in: bool,
    /// The stage's posture policy, if any (absent on plans stored before policies existed).
    #[serde(default)]
    pub policy: Option<PolicyRef>,
    /// The stage's help for denied people, for the hosted page (which reads only the plan).
    #[serde(default)]
    pub help: Option<StageHelp>,
}

impl StageSnapshot {
    pub fn of(stage: &Stage, connector: &Connector) -> Self {
        StageSnapshot {
            mode: stage.mode,
            connector: connector.id.clone(),
            enabled: connector.enabled,
            challenge_key: connector.challenge_key.clone(),
            challenge_idle_timeout: connector.challenge_idle_timeout,
            challenge_trigger_check_in: connector.challenge_trigger_check_in,
            policy: stage.policy.clone(),
            help: stage.help.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanStatus {
    Pending,
    Passed,
    Denied,
}

impl PlanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Pending => "pending",
            PlanStatus::Passed => "passed",
            PlanStatus::Denied => "denied",
        }
    }
}

/// The challenge a plan waits for an answer to: the whole compact JWS and its own `exp`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChallenge {
    pub jws: String,
    pub exp: UnixTime,
}

/// The id prefix of interactive-auth plans (those `auth_ia/` creates). Other plan ids are
/// `[A-Za-z0-9]` only, so IAM can let the agent function create these (`PLAN#ia_*`) and nothing
/// else: it can never overwrite a relying party's plan.
pub const INTERACTIVE_PLAN_PREFIX: &str = "ia_";

/// The id prefix of the OpenID provider's plans: IAM lets the oidc function create these
/// (`PLAN#oidc_*`) and no other plan.
pub const OIDC_PLAN_PREFIX: &str = "oidc_";

/// One run of the stage for one login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    pub stage: String,
    pub config: StageSnapshot,
    pub redirect: String,
    pub status: PlanStatus,
    pub pending_challenge: Option<PendingChallenge>,
    /// How many challenges this plan has minted (the attempt limit counts these).
    pub challenges_issued: u32,
    pub device: Option<DeviceRef>,
    pub device_auth: Option<DeviceAuthToken>,
    /// Why the plan was denied, for answering the denial again.
    pub denial: Option<String>,
    /// The IAM principal that created it (deployed); only it may read the plan. `None`: any
    /// caller may (local runs, interactive-auth plans).
    #[serde(default)]
    pub owner: Option<String>,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    /// The device's compliance with the stage's policy when the plan ended (`None`: no policy,
    /// or no device identified).
    #[serde(default)]
    pub compliance: Option<ComplianceView>,
    /// What the relying party asked its device assertion to carry: its nonce, and the
    /// audience (`None`: the stage id).
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
    /// When the plan passed or was denied.
    #[serde(default)]
    pub ended_at: Option<UnixTime>,
    /// Its device assertion, signed once (at the first read of the passed plan) and answered
    /// again by every later read until it expires.
    #[serde(default)]
    pub assertion: Option<String>,
    /// The OpenID provider's authorization request this plan runs the stage for (`None`: a
    /// relying party's or an interactive-auth plan).
    #[serde(default)]
    pub oidc: Option<AuthRequest>,
}

impl Plan {
    /// A pending plan of `stage`: nothing answered, no device, no owner (the one way plans are
    /// built, by the core and by every test).
    pub fn pending(
        id: impl Into<String>,
        stage: impl Into<String>,
        config: StageSnapshot,
        redirect: impl Into<String>,
        created_at: UnixTime,
        expires_at: UnixTime,
    ) -> Plan {
        Plan {
            id: id.into(),
            stage: stage.into(),
            config,
            redirect: redirect.into(),
            status: PlanStatus::Pending,
            pending_challenge: None,
            challenges_issued: 0,
            device: None,
            device_auth: None,
            denial: None,
            owner: None,
            created_at,
            expires_at,
            compliance: None,
            nonce: None,
            audience: None,
            ended_at: None,
            assertion: None,
            oidc: None,
        }
    }
}

/// What the executor answers: a flow outcome of the contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A challenge for the agent; `invalid_response` adds the contract's `response_errors`.
    Challenge {
        jws: String,
        idle_timeout: u32,
        invalid_response: bool,
        /// With `invalid_response`: why the response was refused (an extension field).
        reason: Option<DenialReason>,
    },
    Redirect {
        to: String,
        /// The device's compliance when it passed with warnings (rules failing in their grace
        /// period, or `warn`), for the page to show with their deadlines; `None` otherwise.
        compliance: Option<ComplianceView>,
    },
    Denied {
        message: String,
        /// Why a device does not meet the stage's policy (the page shows each failing rule).
        compliance: Option<ComplianceView>,
        /// Why, for the person (an extension field; `None` from an answer without one).
        reason: Option<DenialReason>,
    },
}
