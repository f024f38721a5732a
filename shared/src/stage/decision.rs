//! What the stage decides about a plan, as one value: how the plan ends and, built from it in
//! one step, its audit record. The executors decide; this file turns an ending into the store's
//! one conditional write and the answer.

use crate::audit::{caller_actor, device_actor, AuditEvent, AuditKind};
use crate::compliance::assess::{admits, assess, MSG_NON_COMPLIANT};
use crate::error::CoreError;
use crate::model::{
    ComplianceView, DenialReason, DeviceRef, Evaluation, Outcome, Plan, PlanStatus, StageMode,
    UnixTime, MSG_DEVICE_LOCKED,
};
use crate::ports::{Finish, PlanStore};
use crate::protocol::response::Invalid;
use crate::settings::Env;

use super::{
    MSG_INVALID_CONFIGURATION, MSG_INVALID_DEVICE_TOKEN, MSG_INVALID_RESPONSE,
    MSG_TOO_MANY_ATTEMPTS,
};

/// How a plan ends, and the reason class its audit record carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Ending {
    pub(super) finish: Finish,
    pub(super) reason: &'static str,
    /// The device's compliance with the stage's policy, kept with the plan.
    pub(super) compliance: Option<ComplianceView>,
    /// The device a denial concerns, when one was identified: its record names the device, so
    /// `audit list --device` shows why it was refused (a pass names its device in `finish`).
    pub(super) denied_device: Option<DeviceRef>,
}

impl Ending {
    /// Passed, with the device if one was identified.
    pub(super) fn pass(device: Option<DeviceRef>, reason: &'static str) -> Self {
        Ending {
            finish: Finish::Passed(device),
            reason,
            compliance: None,
            denied_device: None,
        }
    }

    /// Denied with `message`, recorded with the message's reason class.
    pub(super) fn deny(message: &str) -> Self {
        Ending {
            finish: Finish::Denied(message.to_string()),
            reason: denial_class(message),
            compliance: None,
            denied_device: None,
        }
    }

    /// Denied with `message`, about the identified `device` (recorded with it).
    pub(super) fn deny_device(message: &str, device: DeviceRef) -> Self {
        Ending {
            denied_device: Some(device),
            ..Ending::deny(message)
        }
    }

    /// A device identified by a valid response (or the DTH header): denied by every stage while
    /// an operator's lock holds (`locked`); otherwise judged by the stage's policy at `now` when
    /// it has one: a required stage denies a device its policy does not admit; an optional
    /// stage never denies for compliance. The view is kept either way.
    pub(super) fn identified(
        plan: &Plan,
        (device, locked): (DeviceRef, bool),
        evaluations: &[Evaluation],
        now: UnixTime,
        reason: &'static str,
    ) -> Self {
        if locked {
            return Ending::deny_device(MSG_DEVICE_LOCKED, device);
        }
        let Some(policy) = &plan.config.policy else {
            return Ending::pass(Some(device), reason);
        };
        let view = assess(policy, evaluations, now);
        let ending = match plan.config.mode {
            StageMode::Required if !admits(&view, policy.when_unknown) => {
                Ending::deny_device(MSG_NON_COMPLIANT, device)
            }
            _ => Ending::pass(Some(device), reason),
        };
        Ending {
            compliance: Some(view),
            ..ending
        }
    }

    /// A stage that cannot or need not check a device: passes without one in optional mode,
    /// denies with `message` in required mode (both recorded with the message's class).
    pub(super) fn skip_or_deny(mode: StageMode, message: &str) -> Self {
        match mode {
            StageMode::Optional => Ending::pass(None, denial_class(message)),
            StageMode::Required => Ending::deny(message),
        }
    }

    /// The audit record of this ending of `plan`.
    pub(super) fn event(&self, env: &Env<'_>, plan: &Plan) -> AuditEvent {
        match &self.finish {
            Finish::Passed(device) => record(
                env,
                plan,
                AuditKind::StagePassed,
                device.as_ref(),
                self.reason,
            ),
            Finish::Denied(_) => record(
                env,
                plan,
                AuditKind::StageDenied,
                self.denied_device.as_ref(),
                self.reason,
            ),
        }
    }
}

/// The audit record of an invalid response to `plan` (its class, never the response).
pub(super) fn invalid_event(env: &Env<'_>, plan: &Plan, why: &Invalid) -> AuditEvent {
    record(env, plan, AuditKind::InvalidResponse, None, why.class())
}

/// An audit record about `plan`: by the device if one was identified, else by the caller.
fn record(
    env: &Env<'_>,
    plan: &Plan,
    kind: AuditKind,
    device: Option<&DeviceRef>,
    reason: &str,
) -> AuditEvent {
    let actor = device.map_or_else(|| caller_actor(env.caller), |d| device_actor(&d.identifier));
    let event = env
        .audit(kind, actor)
        .plan(&plan.id)
        .connector(&plan.config.connector)
        .reason(reason);
    match device {
        Some(d) => event.device(&d.identifier),
        None => event,
    }
}

/// The reason class of a denial message.
fn denial_class(message: &str) -> &'static str {
    match message {
        MSG_INVALID_CONFIGURATION => "invalid_configuration",
        MSG_INVALID_DEVICE_TOKEN => "invalid_device_token",
        MSG_INVALID_RESPONSE => "no_response",
        MSG_TOO_MANY_ATTEMPTS => "too_many_attempts",
        MSG_NON_COMPLIANT => "non_compliant",
        MSG_DEVICE_LOCKED => "device_locked",
        _ => "denied",
    }
}

/// Why a plan denied with `message` was denied, for the person: decided from the same reason
/// class its audit record carries. `None` for a message this version does not know.
pub fn denial_reason(message: &str) -> Option<DenialReason> {
    reason_of_class(denial_class(message))
}

/// The person's reason of an audit reason class. A plan that used all its attempts must be
/// started again, as an expired one; a device token that matches no live token of the
/// stage's connector is a device not enrolled for it.
fn reason_of_class(class: &str) -> Option<DenialReason> {
    match class {
        "invalid_configuration" => Some(DenialReason::Unavailable),
        "invalid_device_token" => Some(DenialReason::NotEnrolled),
        "no_response" => Some(DenialReason::NoResponse),
        "too_many_attempts" => Some(DenialReason::Expired),
        "non_compliant" => Some(DenialReason::NonCompliant),
        "device_locked" => Some(DenialReason::DeviceLocked),
        _ => None,
    }
}

/// Why a response was refused, for the person (with the new challenge of a required stage):
/// a device unknown to the stage's connector is not enrolled for it; anything else is an
/// answer that could not be verified.
pub(super) fn refusal_reason(why: &Invalid) -> DenialReason {
    match why {
        Invalid::UnknownDevice => DenialReason::NotEnrolled,
        _ => DenialReason::InvalidResponse,
    }
}

/// A pass shows the device's compliance only when it has warnings to show.
fn with_warnings(view: Option<ComplianceView>) -> Option<ComplianceView> {
    view.filter(|v| !v.warnings.is_empty())
}

/// The answer of a plan that is no longer pending.
pub(super) fn final_outcome(plan: &Plan) -> Option<Outcome> {
    match plan.status {
        PlanStatus::Pending => None,
        PlanStatus::Passed => Some(Outcome::Redirect {
            to: plan.redirect.clone(),
            compliance: with_warnings(plan.compliance.clone()),
        }),
        PlanStatus::Denied => {
            let message = plan
                .denial
                .clone()
                .unwrap_or_else(|| MSG_INVALID_CONFIGURATION.into());
            Some(Outcome::Denied {
                reason: denial_reason(&message),
                message,
                compliance: plan.compliance.clone(),
            })
        }
    }
}

/// The answer of a plan that ended as `ending` says.
fn ended(plan: &Plan, ending: Ending) -> Outcome {
    match ending.finish {
        Finish::Passed(_) => Outcome::Redirect {
            to: plan.redirect.clone(),
            compliance: with_warnings(ending.compliance),
        },
        Finish::Denied(message) => Outcome::Denied {
            reason: reason_of_class(ending.reason),
            message,
            // Shown with a denial for non-compliance; other denials carry none.
            compliance: ending
                .compliance
                .filter(|_| ending.reason == "non_compliant"),
        },
    }
}

/// Ends the plan as `ending` says, with its audit record in the same write; with `consume`,
/// only if the pending challenge is exactly that one (its single use). If another request
/// ended the plan first, answers what that request decided. If the plan is still
/// pending but the condition failed (a newer challenge replaced the consumed one): `Err` with
/// the plan as it is now.
pub(super) async fn conclude_consuming<P: PlanStore>(
    plans: &P,
    env: &Env<'_>,
    plan: &Plan,
    ending: Ending,
    consume: Option<&str>,
) -> Result<Result<Outcome, Plan>, CoreError> {
    let now = env.clock.now();
    let event = ending.event(env, plan);
    if plans
        .finish_plan(
            &plan.id,
            &ending.finish,
            consume,
            now,
            Some(&event),
            ending.compliance.as_ref(),
        )
        .await?
    {
        event.log();
        return Ok(Ok(ended(plan, ending)));
    }
    match plans.get_plan(&plan.id, now).await? {
        None => Err(CoreError::NotFound("plan".into())),
        Some(p) => Ok(final_outcome(&p).ok_or(p)),
    }
}

/// Ends the plan as `ending` says (see [`conclude_consuming`]); a plan still pending after a
/// lost write is a lost race, run again on fresh state.
pub(super) async fn conclude<P: PlanStore>(
    plans: &P,
    env: &Env<'_>,
    plan: &Plan,
    ending: Ending,
) -> Result<Outcome, CoreError> {
    conclude_consuming(plans, env, plan, ending, None)
        .await?
        .map_err(|_| CoreError::LostRace)
}

/// After a lost conditional write: the plan's final outcome, or `LostRace` if it is still
/// pending (a concurrent request replaced its challenge), or `NotFound` if it expired meanwhile.
pub(super) async fn settled<P: PlanStore>(
    plans: &P,
    id: &str,
    now: UnixTime,
) -> Result<Outcome, CoreError> {
    match plans.get_plan(id, now).await? {
        None => Err(CoreError::NotFound("plan".into())),
        Some(p) => final_outcome(&p).ok_or(CoreError::LostRace),
    }
}
