//! What a person is told when a plan does not pass: why (a reason class the hosted page
//! explains in the person's language), and the operator's help for the stage.

use serde::{Deserialize, Serialize};

/// Why a plan was denied, or why a response was refused, as the person is to understand it.
/// An extension field of the executor's outcomes (`"reason"`); authentik's own fields are
/// unchanged. The decision is the stage's (`stage::denial_reason`); the page only explains it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenialReason {
    /// No agent answered: the response was null or missing.
    NoResponse,
    /// An answer came, but it is not a valid response to this plan's challenge.
    InvalidResponse,
    /// The answering device is not enrolled with this stage's connector.
    NotEnrolled,
    /// An administrator locked the device (the lock's reason is never shown to the person).
    DeviceLocked,
    /// The device does not meet the stage's posture policy (the outcome lists the rules).
    NonCompliant,
    /// The sign-in ran out (expired, or used all its attempts): a new sign-in is needed.
    Expired,
    /// The stage is misconfigured or the service unavailable.
    Unavailable,
}

impl DenialReason {
    pub const ALL: [DenialReason; 7] = [
        DenialReason::NoResponse,
        DenialReason::InvalidResponse,
        DenialReason::NotEnrolled,
        DenialReason::DeviceLocked,
        DenialReason::NonCompliant,
        DenialReason::Expired,
        DenialReason::Unavailable,
    ];

    /// The wire name (`"no_response"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DenialReason::NoResponse => "no_response",
            DenialReason::InvalidResponse => "invalid_response",
            DenialReason::NotEnrolled => "not_enrolled",
            DenialReason::DeviceLocked => "device_locked",
            DenialReason::NonCompliant => "non_compliant",
            DenialReason::Expired => "expired",
            DenialReason::Unavailable => "unavailable",
        }
    }

    /// The reason of a wire name; `None` for a name this version does not know.
    pub fn parse(name: &str) -> Option<DenialReason> {
        DenialReason::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// Longest help text an operator may set for a stage (characters).
pub const MAX_HELP_TEXT_CHARS: usize = 500;
/// Longest help link (bytes).
pub const MAX_HELP_URL_LEN: usize = 2048;

/// The operator's help for the people who sign in through a stage (`stage set-help`): a text
/// and an `https:` link, shown as written on every denial of the stage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageHelp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl StageHelp {
    /// Nothing to show.
    pub fn is_empty(&self) -> bool {
        self.text.is_none() && self.url.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_have_stable_wire_names_that_parse_back() {
        let names: Vec<&str> = DenialReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            [
                "no_response",
                "invalid_response",
                "not_enrolled",
                "device_locked",
                "non_compliant",
                "expired",
                "unavailable"
            ]
        );
        for r in DenialReason::ALL {
            assert_eq!(DenialReason::parse(r.as_str()), Some(r));
            assert_eq!(
                serde_json::to_value(r).ok(),
                Some(serde_json::Value::String(r.as_str().into()))
            );
        }
        assert_eq!(DenialReason::parse("other"), None);
    }
}
