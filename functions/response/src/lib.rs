//! `POST /v1/plans/{plan}/executor`: response validation.
//!
//! This function holds no signing permission. When a required stage receives an invalid
//! response, the contract answers a new challenge: [`InvokeMinter`] asks the challenge function
//! for exactly what a GET of the executor answers (same attempt limit), through Lambda Invoke.

use endpoint_core::error::CoreError;
use endpoint_core::function::{self, failed, match_path, Base};
use endpoint_core::http::{outcome_body, parse_executor_request, parse_outcome, Reply};
use endpoint_core::ports::{DeviceStore, PlanStore};
use endpoint_core::stage::{self, ChallengeMinter, Outcome};
use lambda_http::Request;
use serde_json::{json, Value};

pub struct App<S, M> {
    pub base: Base,
    pub store: S,
    pub minter: M,
}

impl<S: PlanStore + DeviceStore, M: ChallengeMinter> App<S, M> {
    pub async fn handle(&self, req: Request) -> (Reply, &'static str) {
        let path = function::path(&req);
        let Some(v) = match_path(path, "/v1/plans/{}/executor") else {
            return function::unrouted(path);
        };
        if req.method().as_str() != "POST" {
            return function::method_not_allowed();
        }
        let outcome = async {
            let response = parse_executor_request(function::body(&req)?)?;
            stage::executor_post(
                &self.store,
                &self.store,
                &self.minter,
                &self.base.env(),
                v[0],
                response.as_deref(),
            )
            .await
        };
        match outcome.await {
            Ok(outcome) => (Reply::ok(outcome_body(&outcome)), outcome.label()),
            Err(e) => failed(&e),
        }
    }
}

/// Mints a new challenge by invoking the challenge function with the API Gateway event of
/// `GET /v1/plans/{plan}/executor`.
pub struct InvokeMinter {
    pub client: aws_sdk_lambda::Client,
    pub function: String,
}

/// The API Gateway (HTTP API, payload 2.0) event of a GET of the plan's executor.
pub fn executor_get_event(plan_id: &str) -> Value {
    let path = format!("/v1/plans/{plan_id}/executor");
    json!({
        "version": "2.0",
        "routeKey": "GET /v1/plans/{plan}/executor",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "internal"},
        "requestContext": {
            "accountId": "internal",
            "apiId": "internal",
            "domainName": "internal",
            "domainPrefix": "internal",
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "endpoint-stage/response"},
            "requestId": "internal",
            "routeKey": "GET /v1/plans/{plan}/executor",
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 0
        },
        "pathParameters": {"plan": plan_id},
        "isBase64Encoded": false
    })
}

/// Reads the challenge function's API Gateway response into an outcome or a core error.
pub fn read_invoke_payload(payload: &[u8]) -> Result<Outcome, CoreError> {
    let unavailable = || {
        CoreError::Unavailable(
            "The challenge service answered unexpectedly; try again shortly.".into(),
        )
    };
    let response: Value = serde_json::from_slice(payload).map_err(|_| unavailable())?;
    let status = response
        .get("statusCode")
        .and_then(Value::as_u64)
        .ok_or_else(unavailable)?;
    let body: Value = response
        .get("body")
        .and_then(Value::as_str)
        .and_then(|b| serde_json::from_str(b).ok())
        .ok_or_else(unavailable)?;
    let message = || {
        body.get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match status {
        200 => parse_outcome(&body).ok_or_else(unavailable),
        404 => Err(CoreError::NotFound("plan".into())),
        429 => Err(CoreError::Throttled(message())),
        503 => Err(CoreError::Unavailable(message())),
        _ => Err(unavailable()),
    }
}

impl ChallengeMinter for InvokeMinter {
    async fn new_challenge(&self, plan_id: &str) -> Result<Outcome, CoreError> {
        let payload =
            serde_json::to_vec(&executor_get_event(plan_id)).map_err(|_| CoreError::Conflict)?;
        let out = self
            .client
            .invoke()
            .function_name(&self.function)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send()
            .await
            .map_err(|e| {
                let why = endpoint_core::adapters::aws::classify(&e);
                tracing::warn!(failure = ?why, "invoking the challenge function failed");
                match why {
                    endpoint_core::adapters::aws::Failure::Throttled => CoreError::Throttled(
                        "The challenge service is busy; try again shortly.".into(),
                    ),
                    _ => CoreError::Unavailable(
                        "The challenge service is unavailable; try again shortly.".into(),
                    ),
                }
            })?;
        if out.function_error().is_some() {
            tracing::warn!("the challenge function failed");
            return Err(CoreError::Unavailable(
                "The challenge service failed; try again shortly.".into(),
            ));
        }
        read_invoke_payload(out.payload().map(|p| p.as_ref()).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoke_payloads_map_to_outcomes_and_errors() {
        let ok = json!({"statusCode": 200, "body": json!({"component": "ak-stage-endpoint-agent", "challenge": "a.b.c", "challenge_idle_timeout": 5}).to_string()});
        assert_eq!(
            read_invoke_payload(ok.to_string().as_bytes()),
            Ok(Outcome::Challenge {
                jws: "a.b.c".into(),
                idle_timeout: 5,
                invalid_response: false
            })
        );
        let nf = json!({"statusCode": 404, "body": "{\"error\":\"not_found\",\"message\":\"x\"}"});
        assert_eq!(
            read_invoke_payload(nf.to_string().as_bytes()),
            Err(CoreError::NotFound("plan".into()))
        );
        assert!(matches!(
            read_invoke_payload(b"garbage"),
            Err(CoreError::Unavailable(_))
        ));
    }

    #[test]
    fn the_event_is_an_http_api_get() {
        let e = executor_get_event("p1");
        assert_eq!(e["rawPath"], "/v1/plans/p1/executor");
        assert_eq!(e["requestContext"]["http"]["method"], "GET");
    }
}
