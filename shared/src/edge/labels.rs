//! What a request's log line says happened: one enum, from which the line's `label` and its
//! metric class (`outcome`, what the dashboard and alarms count) both come.

use crate::model::Outcome;

/// A handler's label of what happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    // Flow outcomes.
    Challenge,
    ChallengeRetry,
    Passed,
    Denied,
    // Successful answers of the other routes.
    Created,
    Read,
    Page,
    Module,
    Jwks,
    /// `/health` answered 200 (a 503 is `Unavailable`).
    Healthy,
    /// A Shared Signals answer (configuration, stream, status, poll).
    Signals,
    Brand,
    /// An OpenID provider answer (discovery, keys, redirect, token, userinfo).
    Oidc,
    /// The agent's directory sync (`core/users/`, `core/groups/`): an empty page.
    Directory,
    Enrolled,
    Config,
    CheckedIn,
    InteractiveAuth,
    // Failures (the error table's labels, and routing's own).
    BadRequest,
    Forbidden,
    Unauthorized,
    NotFound,
    PayloadTooLarge,
    Conflict,
    Throttled,
    RateLimited,
    Unavailable,
    LostRace,
    MethodNotAllowed,
    NoRoute,
    /// Another region's plan: redirected to its home region (`edge/home.rs`).
    OtherRegion,
}

impl Label {
    /// The label of a flow outcome.
    pub fn of(outcome: &Outcome) -> Label {
        match outcome {
            Outcome::Challenge {
                invalid_response: false,
                ..
            } => Label::Challenge,
            Outcome::Challenge { .. } => Label::ChallengeRetry,
            Outcome::Redirect { .. } => Label::Passed,
            Outcome::Denied { .. } => Label::Denied,
        }
    }

    /// As the log line writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Challenge => "challenge",
            Label::ChallengeRetry => "challenge_retry",
            Label::Passed => "passed",
            Label::Denied => "denied",
            Label::Created => "created",
            Label::Read => "read",
            Label::Page => "page",
            Label::Module => "module",
            Label::Jwks => "jwks",
            Label::Healthy => "healthy",
            Label::Signals => "signals",
            Label::Brand => "brand",
            Label::Directory => "directory",
            Label::Oidc => "oidc",
            Label::Enrolled => "enrolled",
            Label::Config => "config",
            Label::CheckedIn => "checked_in",
            Label::InteractiveAuth => "auth_ia",
            Label::BadRequest => "bad_request",
            Label::Forbidden => "forbidden",
            Label::Unauthorized => "unauthorized",
            Label::NotFound => "not_found",
            Label::PayloadTooLarge => "payload_too_large",
            Label::Conflict => "conflict",
            Label::Throttled => "throttled",
            Label::RateLimited => "rate_limited",
            Label::Unavailable => "unavailable",
            Label::LostRace => "lost_race",
            Label::MethodNotAllowed => "method_not_allowed",
            Label::NoRoute => "no_route",
            Label::OtherRegion => "other_region",
        }
    }

    /// The metric class of a request with this label and status.
    pub fn outcome_class(self, status: u16) -> &'static str {
        match self {
            Label::Challenge => "challenge",
            Label::ChallengeRetry => "invalid_response",
            Label::Passed => "passed",
            Label::Denied => "denied",
            Label::Throttled => "throttled",
            Label::Unavailable => "unavailable",
            _ if status >= 500 => "unavailable",
            _ if status >= 400 => "client_error",
            _ => "ok",
        }
    }
}
