//! The contract's JSON: request bodies in, outcomes and errors out. Shared by every function
//! so a handler is parse -> one core call -> respond. No HTTP framework here: a status, a JSON
//! body and an optional `Retry-After`.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::CoreError;
use crate::model::Plan;
use crate::protocol::jwk::Jwks;
use crate::stage::{Outcome, PlanCreated, MSG_INVALID_RESPONSE};

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;
/// Seconds a throttled client is asked to wait.
pub const RETRY_AFTER_SECS: u32 = 1;

/// A reply: status, JSON body, and `Retry-After` seconds for 429s; or, for the browser's
/// routes, a document (HTML, JavaScript) with its own headers.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<u32>,
    pub document: Option<Document>,
}

/// A non-JSON body with its content type and extra headers (the hosted page, the module).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    pub content_type: &'static str,
    pub text: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Self::json(200, body)
    }
    pub fn created(body: Value) -> Self {
        Self::json(201, body)
    }
    pub fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            body,
            retry_after: None,
            document: None,
        }
    }
    pub fn document(status: u16, document: Document) -> Self {
        Reply {
            status,
            body: Value::Null,
            retry_after: None,
            document: Some(document),
        }
    }
}

/// The flow outcome's JSON (always status 200).
pub fn outcome_body(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Challenge {
            jws,
            idle_timeout,
            invalid_response,
        } => {
            let mut body = json!({
                "component": "ak-stage-endpoint-agent",
                "challenge": jws,
                "challenge_idle_timeout": idle_timeout,
            });
            if *invalid_response {
                body["response_errors"] =
                    json!({"response": [{"string": MSG_INVALID_RESPONSE, "code": "invalid"}]});
            }
            body
        }
        Outcome::Redirect { to } => json!({"component": "xak-flow-redirect", "to": to}),
        Outcome::Denied { message } => {
            json!({"component": "ak-stage-access-denied", "error_message": message})
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
        }),
        "xak-flow-redirect" => Some(Outcome::Redirect {
            to: body.get("to")?.as_str()?.to_string(),
        }),
        "ak-stage-access-denied" => Some(Outcome::Denied {
            message: body.get("error_message")?.as_str()?.to_string(),
        }),
        _ => None,
    }
}

/// How a core error leaves a function: status, the contract's `error` code, and log label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorClass {
    pub status: u16,
    pub code: &'static str,
    pub label: &'static str,
}

/// The one table of core errors: every reply and every log line takes its status, code and
/// label from here.
pub fn error_class(error: &CoreError) -> ErrorClass {
    let (status, code, label) = match error {
        CoreError::BadRequest(_) => (400, "bad_request", "bad_request"),
        CoreError::Forbidden(_) => (403, "forbidden", "forbidden"),
        CoreError::NotFound(_) => (404, "not_found", "not_found"),
        CoreError::PayloadTooLarge(_) => (413, "payload_too_large", "payload_too_large"),
        CoreError::Conflict(_) => (409, "conflict", "conflict"),
        CoreError::Throttled(_) => (429, "throttled", "throttled"),
        CoreError::Unavailable(_) => (503, "unavailable", "unavailable"),
        // Lost every retry against concurrent writers: to the client, unavailable.
        CoreError::LostRace => (503, "unavailable", "lost_race"),
    };
    ErrorClass {
        status,
        code,
        label,
    }
}

/// A core error as the contract's reply.
pub fn error_reply(error: &CoreError) -> Reply {
    let class = error_class(error);
    let message = match error {
        CoreError::NotFound(what) => format!("The {what} does not exist or has expired."),
        other => other.to_string(),
    };
    Reply {
        status: class.status,
        body: json!({"error": class.code, "message": message}),
        retry_after: (class.status == 429).then_some(RETRY_AFTER_SECS),
        document: None,
    }
}

/// An error reply for routing failures the core never sees.
pub fn simple_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(status, json!({"error": code, "message": message}))
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
}

/// `POST /v1/plans` body: the stage id and the optional redirect.
pub fn parse_plan_request(body: &[u8]) -> Result<(String, Option<String>), CoreError> {
    let r: PlanRequest = parse_object(body)?;
    Ok((r.stage, r.redirect))
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
        "executor": format!("/v1/plans/{}/executor", created.id),
        "page": format!("{}/v1/plans/{}/page", base_url.unwrap_or(""), created.id),
        "expires_at": created.expires_at,
    })
}

pub fn plan_body(plan: &Plan) -> Value {
    json!({
        "plan": plan.id,
        "stage": plan.stage,
        "status": plan.status.as_str(),
        "device": plan.device.as_ref().map(|d| json!({"identifier": d.identifier, "name": d.name})),
        "expires_at": plan.expires_at,
    })
}

pub fn jwks_body(jwks: &Jwks) -> Value {
    serde_json::to_value(jwks).expect("a JWKS of strings serializes")
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
    fn error_mapping_matches_the_contract() {
        let cases = [
            (CoreError::BadRequest("x".into()), 400, "bad_request"),
            (CoreError::Forbidden("x".into()), 403, "forbidden"),
            (CoreError::NotFound("plan".into()), 404, "not_found"),
            (CoreError::PayloadTooLarge(1), 413, "payload_too_large"),
            (CoreError::Conflict("x".into()), 409, "conflict"),
            (CoreError::Throttled("x".into()), 429, "throttled"),
            (CoreError::Unavailable("x".into()), 503, "unavailable"),
            (CoreError::LostRace, 503, "unavailable"),
        ];
        for (e, status, code) in cases {
            let r = error_reply(&e);
            assert_eq!(
                (r.status, r.body["error"].as_str()),
                (status, Some(code)),
                "{e:?}"
            );
            assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()));
            assert_eq!(r.retry_after.is_some(), status == 429);
        }
    }

    #[test]
    fn outcomes_round_trip_through_json() {
        for o in [
            Outcome::Challenge {
                jws: "a.b.c".into(),
                idle_timeout: 7,
                invalid_response: false,
            },
            Outcome::Challenge {
                jws: "a.b.c".into(),
                idle_timeout: 7,
                invalid_response: true,
            },
            Outcome::Redirect { to: "/x".into() },
            Outcome::Denied {
                message: "no".into(),
            },
        ] {
            assert_eq!(parse_outcome(&outcome_body(&o)), Some(o));
        }
        assert_eq!(parse_outcome(&json!({"error": "not_found"})), None);
    }

    #[test]
    fn outcome_json_is_the_reference_wire_json() {
        let c = outcome_body(&Outcome::Challenge {
            jws: "h.c.s".into(),
            idle_timeout: 5,
            invalid_response: true,
        });
        assert_eq!(
            c,
            json!({"component": "ak-stage-endpoint-agent", "challenge": "h.c.s", "challenge_idle_timeout": 5,
                   "response_errors": {"response": [{"string": "Invalid challenge response", "code": "invalid"}]}})
        );
        assert_eq!(
            outcome_body(&Outcome::Redirect { to: "/next".into() }),
            json!({"component": "xak-flow-redirect", "to": "/next"})
        );
        assert_eq!(
            outcome_body(&Outcome::Denied {
                message: "m".into()
            }),
            json!({"component": "ak-stage-access-denied", "error_message": "m"})
        );
    }
}
