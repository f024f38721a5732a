//! The contract's JSON: request bodies in (bounded, typed), outcomes and answers out. No HTTP
//! framework here, and no I/O.

use serde::Deserialize;
use serde_json::{json, Value};

use super::reply::MAX_BODY;
use super::routes::{EXECUTOR_POST, STAGE_PAGE};
use crate::assertion::AssertionView;
use crate::error::CoreError;
use crate::model::{DenialReason, Plan};
use crate::stage::{Outcome, PlanCreated, PlanOptions, MSG_INVALID_RESPONSE};

/// The flow outcome's JSON (always status 200).
pub fn outcome_body(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Challenge {
            jws,
            idle_timeout,
            invalid_response,
            reason,
        } => {
            let mut body = json!({
                "component": "ak-stage-endpoint-agent",
                "challenge": jws,
                "challenge_idle_timeout": idle_timeout,
            });
            if *invalid_response {
                body["response_errors"] =
                    json!({"response": [{"string": MSG_INVALID_RESPONSE, "code": "invalid"}]});
                // Our extension: why, for the hosted page to explain.
                if let Some(r) = reason {
                    body["reason"] = Value::String(r.as_str().into());
                }
            }
            body
        }
        Outcome::Redirect { to, compliance } => {
            let mut body = json!({"component": "xak-flow-redirect", "to": to});
            // Our extension (authentik's component reads `to` only): warnings to show.
            if let Some(view) = compliance {
                body["compliance"] = to_body(view);
            }
            body
        }
        Outcome::Denied {
            message,
            compliance,
            reason,
        } => {
            let mut body = json!({"component": "ak-stage-access-denied", "error_message": message});
            if let Some(view) = compliance {
                body["compliance"] = to_body(view);
            }
            // Our extension (authentik's component reads `error_message` only): why, for the
            // hosted page to explain in the person's language.
            if let Some(r) = reason {
                body["reason"] = Value::String(r.as_str().into());
            }
            body
        }
    }
}

/// The inverse of [`outcome_body`]: reads a flow outcome's JSON (used where one function asks
/// another for an outcome, and by the device simulator).
pub fn parse_outcome(body: &Value) -> Option<Outcome> {
    match body.get("component")?.as_str()? {
        "ak-stage-endpoint-agent" => Some(Outcome::Challenge {
            jws: body.get("challenge")?.as_str()?.to_string(),
            idle_timeout: u32::try_from(body.get("challenge_idle_timeout")?.as_u64()?).ok()?,
            invalid_response: body.get("response_errors").is_some(),
            reason: reason_of(body).filter(|_| body.get("response_errors").is_some()),
        }),
        "xak-flow-redirect" => Some(Outcome::Redirect {
            to: body.get("to")?.as_str()?.to_string(),
            compliance: body
                .get("compliance")
                .and_then(|c| serde_json::from_value(c.clone()).ok()),
        }),
        "ak-stage-access-denied" => Some(Outcome::Denied {
            message: body.get("error_message")?.as_str()?.to_string(),
            compliance: body
                .get("compliance")
                .and_then(|c| serde_json::from_value(c.clone()).ok()),
            reason: reason_of(body),
        }),
        _ => None,
    }
}

/// An outcome's `reason` extension field; an unknown one is left out.
fn reason_of(body: &Value) -> Option<DenialReason> {
    DenialReason::parse(body.get("reason")?.as_str()?)
}

/// A JSON object body into `T`: 413 over 64 KiB, 400 for invalid JSON, a non-object or the
/// wrong fields.
pub fn parse_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, CoreError> {
    if body.len() > MAX_BODY {
        return Err(CoreError::PayloadTooLarge(MAX_BODY));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| CoreError::BadRequest("The body is not valid JSON.".into()))?;
    if !value.is_object() {
        return Err(CoreError::BadRequest(
            "The body must be a JSON object.".into(),
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        // serde names fields and expected types here; it never echoes a string's value.
        CoreError::BadRequest(format!("The body does not have the expected fields: {e}."))
    })
}

#[derive(Deserialize)]
struct PlanRequest {
    stage: String,
    #[serde(default)]
    redirect: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    audience: Option<String>,
}

/// `POST /v1/plans` body: the stage id, and the optional redirect and what the device
/// assertion is to carry (`nonce`, `audience`).
pub fn parse_plan_request(body: &[u8]) -> Result<(String, PlanOptions), CoreError> {
    let r: PlanRequest = parse_object(body)?;
    let options = PlanOptions {
        redirect: r.redirect,
        nonce: r.nonce,
        audience: r.audience,
    };
    Ok((r.stage, options))
}

#[derive(Deserialize)]
struct ExecutorRequest {
    #[serde(default)]
    component: Option<String>,
    #[serde(default)]
    response: Option<String>,
}

/// `POST /v1/plans/{plan}/executor` body: the response JWS, or `None` for null or absent.
pub fn parse_executor_request(body: &[u8]) -> Result<Option<String>, CoreError> {
    let r: ExecutorRequest = parse_object(body)?;
    match r.component.as_deref() {
        None | Some("ak-stage-endpoint-agent") => Ok(r.response),
        Some(_) => Err(CoreError::BadRequest(
            "component must be \"ak-stage-endpoint-agent\".".into(),
        )),
    }
}

/// `POST /v1/plans`' answer; `page` is absolute when the API's public base URL is known.
pub fn plan_created_body(created: &PlanCreated, base_url: Option<&str>) -> Value {
    json!({
        "plan": created.id,
        "executor": EXECUTOR_POST.path(&[&created.id]),
        "page": format!("{}{}", base_url.unwrap_or(""), STAGE_PAGE.path(&[&created.id])),
        "expires_at": created.expires_at,
    })
}

/// `GET /v1/plans/{plan}`'s answer; a passed plan's device assertion when there is one.
pub fn plan_body(plan: &Plan, assertion: &AssertionView) -> Value {
    let mut body = json!({
        "plan": plan.id,
        "stage": plan.stage,
        "status": plan.status.as_str(),
        "device": plan.device.as_ref().map(|d| json!({"identifier": d.identifier, "name": d.name})),
        "expires_at": plan.expires_at,
        "compliance": plan.compliance.as_ref().map(to_body),
    });
    match assertion {
        AssertionView::Absent => {}
        AssertionView::Expired => body["assertion"] = Value::Null,
        AssertionView::Signed(a) => body["assertion"] = Value::String(a.clone()),
    }
    body
}

/// `enroll/`'s answer (the reference's `AgentTokenResponse`).
pub fn enrolled_body(enrolled: &crate::agent::Enrolled) -> Value {
    json!({"token": enrolled.token.expose(), "expires_in": enrolled.expires_in})
}

/// `auth_ia/`'s answer: the absolute URL of the plan's executor.
pub fn interactive_auth_body(auth: &crate::agent::InteractiveAuth, base_url: &str) -> Value {
    json!({"url": format!("{base_url}{}", super::routes::EXECUTOR_GET.path(&[&auth.plan]))})
}

/// A serializable answer of the domain (`Jwks`, `AgentConfig`, `CurrentBrand`) as JSON.
pub fn to_body<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("answers of strings, numbers, lists and maps serialize")
}

/// `/health`'s answer (`crate::health`): 200 `{"status":"ok","region","checks":{...}}` when
/// every check is ok, else 503 `{"status":"unavailable",...}`; each check by name with its state
/// (`ok`, `unavailable`, `missing`, `unusable`), never a service's text or a key's id.
pub fn health_reply(report: &crate::health::Report, region: &str) -> super::reply::Reply {
    let checks: serde_json::Map<String, Value> = report
        .checks
        .iter()
        .map(|(check, state)| (check.as_str().to_string(), state.as_str().into()))
        .collect();
    let (status, word) = if report.healthy() {
        (200, "ok")
    } else {
        (503, "unavailable")
    };
    super::reply::Reply::json(
        status,
        json!({"status": word, "region": region, "checks": checks}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executor_body_accepts_null_absent_and_string() {
        assert_eq!(
            parse_executor_request(br#"{"component":"ak-stage-endpoint-agent","response":null}"#),
            Ok(None)
        );
        assert_eq!(parse_executor_request(br#"{}"#), Ok(None));
        assert_eq!(
            parse_executor_request(br#"{"response":"a.b.c"}"#),
            Ok(Some("a.b.c".into()))
        );
    }

    #[test]
    fn executor_body_rejects_bad_json_types_and_size() {
        assert!(matches!(
            parse_executor_request(b"{"),
            Err(CoreError::BadRequest(_))
        ));
        assert!(matches!(
            parse_executor_request(br#"{"response": 5}"#),
            Err(CoreError::BadRequest(_))
        ));
        assert!(matches!(
            parse_executor_request(br#"[]"#),
            Err(CoreError::BadRequest(_))
        ));
        assert!(matches!(
            parse_executor_request(br#"{"component":"other"}"#),
            Err(CoreError::BadRequest(_))
        ));
        let big = format!(r#"{{"response":"{}"}}"#, "a".repeat(MAX_BODY));
        assert_eq!(
            parse_executor_request(big.as_bytes()),
            Err(CoreError::PayloadTooLarge(MAX_BODY))
        );
    }

    #[test]
    fn outcomes_round_trip_through_json() {
        for o in [
            Outcome::Challenge {
                jws: "a.b.c".into(),
                idle_timeout: 7,
                invalid_response: false,
                reason: None,
            },
            Outcome::Challenge {
                jws: "a.b.c".into(),
                idle_timeout: 7,
                invalid_response: true,
                reason: None,
            },
            Outcome::Challenge {
                jws: "a.b.c".into(),
                idle_timeout: 7,
                invalid_response: true,
                reason: Some(DenialReason::NotEnrolled),
            },
            Outcome::Redirect {
                to: "/x".into(),
                compliance: None,
            },
            // A pass with a warning carries the compliance for the page to show.
            Outcome::Redirect {
                to: "/x".into(),
                compliance: Some(crate::model::ComplianceView {
                    policy: "p".into(),
                    version: 2,
                    status: crate::model::ComplianceStatus::Compliant,
                    evaluated_at: Some(1),
                    facts_at: Some(1),
                    failed: Vec::new(),
                    warnings: vec![crate::model::Warning {
                        rule: crate::model::ShownRule {
                            rule: "r".into(),
                            title: "Firewall turned on".into(),
                            enforcement: "grace:72h".into(),
                            remediation: "Turn it on.".into(),
                        },
                        deadline: Some(259_201),
                    }],
                }),
            },
            Outcome::Denied {
                message: "no".into(),
                compliance: None,
                reason: None,
            },
        ]
        .into_iter()
        .chain(DenialReason::ALL.map(|r| Outcome::Denied {
            message: "no".into(),
            compliance: None,
            reason: Some(r),
        })) {
            assert_eq!(parse_outcome(&outcome_body(&o)), Some(o));
        }
        // A reason this version does not know is left out, the outcome still read.
        assert_eq!(
            parse_outcome(
                &json!({"component": "ak-stage-access-denied", "error_message": "m", "reason": "new"})
            ),
            Some(Outcome::Denied {
                message: "m".into(),
                compliance: None,
                reason: None
            })
        );
        assert_eq!(parse_outcome(&json!({"error": "not_found"})), None);
    }

    #[test]
    fn outcome_json_is_the_reference_wire_json() {
        let c = outcome_body(&Outcome::Challenge {
            jws: "h.c.s".into(),
            idle_timeout: 5,
            invalid_response: true,
            reason: None,
        });
        assert_eq!(
            c,
            json!({"component": "ak-stage-endpoint-agent", "challenge": "h.c.s", "challenge_idle_timeout": 5,
                   "response_errors": {"response": [{"string": "Invalid challenge response", "code": "invalid"}]}})
        );
        // The reason is one extra field beside authentik's, which are unchanged.
        let c = outcome_body(&Outcome::Challenge {
            jws: "h.c.s".into(),
            idle_timeout: 5,
            invalid_response: true,
            reason: Some(DenialReason::NotEnrolled),
        });
        assert_eq!(
            c,
            json!({"component": "ak-stage-endpoint-agent", "challenge": "h.c.s", "challenge_idle_timeout": 5,
                   "response_errors": {"response": [{"string": "Invalid challenge response", "code": "invalid"}]},
                   "reason": "not_enrolled"})
        );
        assert_eq!(
            outcome_body(&Outcome::Denied {
                message: "Invalid challenge response".into(),
                compliance: None,
                reason: Some(DenialReason::NoResponse),
            }),
            json!({"component": "ak-stage-access-denied", "error_message": "Invalid challenge response", "reason": "no_response"})
        );
        assert_eq!(
            outcome_body(&Outcome::Redirect {
                to: "/next".into(),
                compliance: None,
            }),
            json!({"component": "xak-flow-redirect", "to": "/next"})
        );
        assert_eq!(
            outcome_body(&Outcome::Denied {
                message: "m".into(),
                compliance: None,
                reason: None,
            }),
            json!({"component": "ak-stage-access-denied", "error_message": "m"})
        );
    }

    #[test]
    fn health_answers_200_or_503_with_check_states_only() {
        use crate::health::{Check, CheckState, Report};
        let ok = Report {
            checks: vec![
                (Check::Table, CheckState::Ok),
                (Check::ChallengeKey, CheckState::Ok),
            ],
            checked_at: 0,
        };
        let reply = health_reply(&ok, "eu-west-1");
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.body,
            json!({"status": "ok", "region": "eu-west-1",
                   "checks": {"table": "ok", "challenge_key": "ok"}})
        );
        let failed = Report {
            checks: vec![
                (Check::Table, CheckState::Ok),
                (Check::ChallengeKey, CheckState::Unusable),
            ],
            checked_at: 0,
        };
        let reply = health_reply(&failed, "eu-west-1");
        assert_eq!(reply.status, 503);
        assert_eq!(reply.body["status"], "unavailable");
        assert_eq!(reply.body["checks"]["challenge_key"], "unusable");
    }
}
