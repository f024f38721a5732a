//! The agent-facing API (authentik platform agent compatible): `enroll/`, `agent_config/`,
//! `check_in/`, `auth_ia/`. Pure over the ports; the `agent` function maps these onto HTTP.
//!
//! Authentication: `Authorization: Bearer <enrollment token key>` for `enroll/`, and
//! `Authorization: Bearer+agent <device token key>` for the others; the scheme word matches
//! case-insensitively, as on the reference. Keys are looked up by their SHA-256 (no scan, no
//! key compared in variable time). A missing or malformed header, an unknown or expired key, an
//! expired device or a disabled connector are all 403, as on the reference.
//!
//! `agent_config/` and `core/brands/current/` answer exactly the objects of authentik's
//! generated API client (`AgentConfig`, `CurrentBrand`): every field, no other.

#[cfg(feature = "policy")]
mod check_in;
mod enroll;

use serde::Serialize;
use serde_json::Value;

use crate::audit::{device_actor, AuditKind};
use crate::error::CoreError;
use crate::model::{
    Connector, Device, DeviceAuthToken, DeviceRef, Evaluation, TokenRef, MSG_DEVICE_LOCKED,
};
use crate::ports::random_id;
use crate::ports::{record_audit, ChallengeSigner, Clock, Directory, Limiter, Store};
use crate::protocol::jwk::Jwks;
use crate::secret::sha256_hex;
use crate::settings::Env;
use crate::stage;

/// Longest accepted key in an `Authorization` header.
pub const MAX_KEY_LEN: usize = 256;
/// How long an interactive-auth link stays usable.
pub const DEVICE_AUTH_LIFETIME: i64 = 5 * 60;
/// The brand title `core/brands/current/` answers unless configured (`BRAND_TITLE`).
pub const DEFAULT_BRAND_TITLE: &str = "endpoint-stage";

#[cfg(feature = "policy")]
pub use check_in::check_in;
pub use enroll::{enroll, EnrollRequest, Enrolled};

const FORBIDDEN: &str = "The credentials are not valid for this request.";

/// The key of `Authorization: <scheme> <key>`, for that scheme in any letter case.
pub fn bearer<'a>(header: Option<&'a str>, scheme: &str) -> Result<&'a str, CoreError> {
    let refused = || {
        CoreError::Forbidden(format!(
            "An Authorization header \"{scheme} <key>\" with a valid key is required."
        ))
    };
    let value = header.ok_or_else(refused)?;
    let (got, key) = value.trim_start().split_once(' ').ok_or_else(refused)?;
    let key = key.trim();
    if !got.eq_ignore_ascii_case(scheme)
        || key.is_empty()
        || key.len() > MAX_KEY_LEN
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(refused());
    }
    Ok(key)
}

/// The `system_config` of `agent_config/` (authentik's `Config` model): error reporting off,
/// no capabilities, the reference's cache timeouts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SystemConfig {
    pub error_reporting: ErrorReporting,
    pub capabilities: Vec<String>,
    pub cache_timeout: u32,
    pub cache_timeout_flows: u32,
    pub cache_timeout_policies: u32,
}

/// authentik's `ErrorReportingConfig`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErrorReporting {
    pub enabled: bool,
    pub sentry_dsn: String,
    pub environment: String,
    pub send_pii: bool,
    pub traces_sample_rate: f64,
}

impl SystemConfig {
    /// The neutral configuration: nothing reported anywhere, no capability offered.
    pub fn neutral() -> Self {
        SystemConfig {
            error_reporting: ErrorReporting {
                enabled: false,
                sentry_dsn: String::new(),
                environment: String::new(),
                send_pii: false,
                traces_sample_rate: 0.0,
            },
            capabilities: Vec::new(),
            cache_timeout: 300,
            cache_timeout_flows: 300,
            cache_timeout_policies: 300,
        }
    }
}

/// The answer of `agent_config/` (authentik's `AgentConfig`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgentConfig {
    /// The device's stable opaque id (a UUID assigned at its first enrollment).
    pub device_id: String,
    pub refresh_interval: u32,
    pub authorization_flow: Option<String>,
    /// We issue no agent tokens: always `{"keys": []}`.
    pub jwks_auth: Jwks,
    pub jwks_challenge: Option<Jwks>,
    pub nss_uid_offset: u32,
    pub nss_gid_offset: u32,
    pub auth_terminate_session_on_expiry: bool,
    pub system_config: SystemConfig,
    /// Always `unlicensed`: agents then never offer the enterprise interactive-auth flow.
    pub license_status: &'static str,
}

/// authentik's `CurrentBrandFlags`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BrandFlags {
    pub flows_continuous_login: bool,
    pub flows_refresh_others: bool,
}

/// The answer of `core/brands/current/` (authentik's `CurrentBrand`, its required fields).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CurrentBrand {
    pub matched_domain: String,
    pub branding_title: String,
    pub branding_logo: String,
    pub branding_logo_themed_urls: Option<Value>,
    pub branding_favicon: String,
    pub branding_favicon_themed_urls: Option<Value>,
    pub branding_custom_css: String,
    pub branding_map_tiles: String,
    pub ui_footer_links: Vec<Value>,
    pub ui_theme: &'static str,
    pub default_locale: String,
    pub flags: BrandFlags,
}

/// `GET core/brands/current/`: served to anyone, without any store or KMS call. The Rust agent
/// keeps its remote configuration (and so `jwks_challenge`) only when this call succeeds too.
pub fn current_brand(title: &str, matched_domain: &str) -> CurrentBrand {
    CurrentBrand {
        matched_domain: matched_domain.to_string(),
        branding_title: title.to_string(),
        branding_logo: String::new(),
        branding_logo_themed_urls: None,
        branding_favicon: String::new(),
        branding_favicon_themed_urls: None,
        branding_custom_css: String::new(),
        branding_map_tiles: String::new(),
        ui_footer_links: Vec::new(),
        ui_theme: "automatic",
        default_locale: String::new(),
        flags: BrandFlags {
            flows_continuous_login: false,
            flows_refresh_others: false,
        },
    }
}

/// authentik's pagination block (`Pagination` of its generated clients).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pagination {
    pub next: u32,
    pub previous: u32,
    pub count: u32,
    pub current: u32,
    pub total_pages: u32,
    pub start_index: u32,
    pub end_index: u32,
}

/// One page of an authentik list (`PaginatedUserList`, `PaginatedGroupList`): `results` in the
/// model's shape, and `autocomplete` (an object).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DirectoryPage {
    pub pagination: Pagination,
    pub results: Vec<Value>,
    pub autocomplete: serde_json::Map<String, Value>,
}

impl DirectoryPage {
    /// The only page of an empty list.
    pub fn empty() -> Self {
        DirectoryPage {
            pagination: Pagination {
                next: 0,
                previous: 0,
                count: 0,
                current: 1,
                total_pages: 1,
                start_index: 0,
                end_index: 0,
            },
            results: Vec::new(),
            autocomplete: serde_json::Map::new(),
        }
    }
}

/// `GET core/users/` and `GET core/groups/` with a device token: the real agent syncs a directory
/// for Linux logins at start and every refresh interval. We serve no directory (owners as Linux
/// users would need the interactive sign-in that is not offered), so a valid device token gets
/// one empty page, the agent's directory stays empty without a warning, and nothing else is read:
/// one `GetItem` (the token index), as the other agent routes' first read; otherwise 403.
pub async fn directory_page<S: Store>(
    store: &S,
    clock: &dyn Clock,
    authorization: Option<&str>,
) -> Result<DirectoryPage, CoreError> {
    device_token(store, clock, authorization).await?;
    Ok(DirectoryPage::empty())
}

/// What `auth_ia/` creates: the plan whose executor GET (with the DTH header) passes the stage;
/// the edge answers its URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InteractiveAuth {
    pub plan: String,
}

/// Who a device token key authenticates: its index entry, the device, the enabled connector,
/// and the key's SHA-256 (the DTH value of interactive auth).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticatedDevice {
    pub token: TokenRef,
    pub device: Device,
    /// The device's stored evaluations (read with the device, in the same query).
    pub evaluations: Vec<Evaluation>,
    pub connector: Connector,
    pub key_sha256: String,
}

async fn enabled_connector<D: Directory>(dir: &D, id: &str) -> Result<Connector, CoreError> {
    match dir.get_connector(id).await? {
        Some(c) if c.enabled => Ok(c),
        _ => Err(CoreError::Forbidden(FORBIDDEN.into())),
    }
}

/// The device and connector a device token key authenticates, or 403.
pub async fn authenticate_device<S: Store>(
    store: &S,
    clock: &dyn Clock,
    authorization: Option<&str>,
) -> Result<AuthenticatedDevice, CoreError> {
    let (token, hash) = device_token(store, clock, authorization).await?;
    authenticated(store, clock, token, hash).await
}

/// The index entry of the device token key in `authorization`, with the key's hash, or 403.
async fn device_token<S: Store>(
    store: &S,
    clock: &dyn Clock,
    authorization: Option<&str>,
) -> Result<(TokenRef, String), CoreError> {
    let key = bearer(authorization, "Bearer+agent")?;
    let hash = sha256_hex(key.as_bytes());
    let token = store
        .token_by_hash(&hash, clock.now())
        .await?
        .ok_or_else(|| CoreError::Forbidden(FORBIDDEN.into()))?;
    Ok((token, hash))
}

/// The device and the enabled connector of a token: independent reads, issued together.
async fn authenticated<S: Store>(
    store: &S,
    clock: &dyn Clock,
    token: TokenRef,
    key_sha256: String,
) -> Result<AuthenticatedDevice, CoreError> {
    let (profile, connector) = futures::join!(
        store.device_profile(&token.device, clock.now()),
        enabled_connector(store, &token.connector)
    );
    let (device, evaluations) = profile?.ok_or_else(|| CoreError::Forbidden(FORBIDDEN.into()))?;
    Ok(AuthenticatedDevice {
        token,
        device,
        evaluations,
        connector: connector?,
        key_sha256,
    })
}

/// `GET agent_config/`.
pub async fn agent_config<S: Store, K: ChallengeSigner>(
    store: &S,
    signer: &K,
    clock: &dyn Clock,
    authorization: Option<&str>,
) -> Result<AgentConfig, CoreError> {
    let AuthenticatedDevice {
        token,
        device,
        connector,
        key_sha256,
        ..
    } = authenticate_device(store, clock, authorization).await?;
    // The connector is already read: its JWKS (current, next and retired keys) costs no
    // further DynamoDB call.
    let jwks_challenge = match connector.challenge_key {
        Some(_) => Some(stage::jwks_of(&connector, signer, clock.now()).await?),
        None => None,
    };
    // A next key is pending and this device's token index entry (read above) does not name it
    // yet: record that the device now has it (`connector rotate` waits for every device). At
    // most one write per device and next key; none while no rotation is under way.
    if let Some(next) = connector
        .next_key
        .as_ref()
        .filter(|n| token.config_next_key.as_deref() != Some(n.key.as_str()))
    {
        let recorded = store
            .record_config_fetch(&key_sha256, &connector.id, &next.key, clock.now())
            .await;
        if let Err(e) = recorded {
            // The configuration is still answered: the device counts as not having fetched
            // the key, which only makes `connector rotate` wait for it (its next fetch retries).
            tracing::warn!(error = %e, "recording the configuration fetch failed");
        }
    }
    Ok(AgentConfig {
        device_id: device.id,
        refresh_interval: connector.refresh_interval,
        authorization_flow: None,
        jwks_auth: Jwks { keys: Vec::new() },
        jwks_challenge,
        nss_uid_offset: 1000,
        nss_gid_offset: 1000,
        auth_terminate_session_on_expiry: false,
        system_config: SystemConfig::neutral(),
        license_status: "unlicensed",
    })
}

/// The end of the one-minute window `now` falls in (the per-device limits count in such
/// windows).
pub(crate) fn minute_end(now: i64) -> i64 {
    now - now.rem_euclid(60) + 60
}

/// The `Retry-After` of a refusal in the window ending at `window_end`: the seconds until it ends.
pub(crate) fn retry_after(window_end: i64, now: i64) -> CoreError {
    CoreError::RateLimited((window_end - now).clamp(1, 60) as u32)
}

/// Whether this refusal of `route` for `device` is the first in its minute: a client refused
/// over and over writes at most one audit record a minute (`<route>_refused#<device>#<window>`,
/// one conditional write, made only when a request is refused). A failed write counts as not
/// first: a flood must not reach the audit trail because the counter is unavailable.
pub(crate) async fn first_refusal_in_minute<L: Limiter>(
    limiter: &L,
    route: &str,
    device: &str,
    window_end: i64,
) -> bool {
    let bucket = format!("{route}_refused#{device}#{window_end}");
    match limiter.take(&bucket, 1, window_end).await {
        Ok(first) => first,
        Err(e) => {
            tracing::error!(event = "limit_write_failed", error = %e, "refusal not counted");
            false
        }
    }
}

/// `POST auth_ia/`: a device authentication token and a plan of the connector's interactive
/// stage, whose executor GET (with the DTH header) passes the stage with this device. At most
/// `auth_ia_per_minute` per device and minute (each plan allows several KMS signatures), then
/// 429 with the seconds until the minute ends. Refusals (a locked device, the limit) write at
/// most one audit record per device and minute.
pub async fn auth_ia<S: Store>(
    store: &S,
    env: &Env<'_>,
    authorization: Option<&str>,
) -> Result<InteractiveAuth, CoreError> {
    let (token, hash) = device_token(store, env.clock, authorization).await?;
    let now = env.clock.now();
    let window_end = minute_end(now);
    let bucket = format!("auth_ia#{}#{window_end}", token.device);
    let limit = env.settings.auth_ia_per_minute;
    // The counter is taken beside the device and connector reads: no extra round trip.
    let (auth, allowed) = futures::join!(
        authenticated(store, env.clock, token, hash),
        store.take(&bucket, limit, window_end)
    );
    let AuthenticatedDevice {
        token,
        device,
        evaluations,
        connector,
        key_sha256: hash,
    } = auth?;
    let refused = |reason: &'static str| {
        let event = env
            .audit(
                AuditKind::InteractiveAuthRefused,
                device_actor(&device.identifier),
            )
            .device(&device.identifier)
            .connector(&connector.id)
            .reason(reason);
        let device_id = device.id.clone();
        async move {
            if first_refusal_in_minute(store, "auth_ia", &device_id, window_end).await {
                record_audit(store, &event).await;
            }
        }
    };
    // A locked device is refused right after its authentication, before anything else.
    if device.lock_at(now).is_some() {
        refused("device_locked").await;
        return Err(CoreError::Forbidden(MSG_DEVICE_LOCKED.into()));
    }
    if !allowed? {
        refused("rate_limited").await;
        return Err(retry_after(window_end, now));
    }
    let stage_id = connector
        .interactive_stage
        .clone()
        .ok_or_else(|| CoreError::Conflict("The connector has no interactive stage.".into()))?;
    let auth = DeviceAuthToken {
        id: random_id(env.rng, 16),
        device: DeviceRef::from(&device),
        token_id: token.token_id,
        token_sha256: hash,
        connector: connector.id,
        expires_at: Some(env.clock.now() + DEVICE_AUTH_LIFETIME),
        compliance: evaluations,
    };
    let plan = stage::create_plan(store, env, &stage_id, None, Some(auth)).await?;
    Ok(InteractiveAuth { plan: plan.id })
}
