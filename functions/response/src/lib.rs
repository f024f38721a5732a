//! `POST /v1/plans/{plan}/executor`: response validation.
//!
//! This function holds no signing permission. When a required stage receives an invalid
//! response, the contract answers a new challenge: [`InvokeMinter`] asks the challenge function
//! for exactly what a GET of the executor answers (same attempt limit), through Lambda Invoke.

use endpoint_core::adapters::aws::Failure;
use endpoint_core::adapters::lambda::LambdaInvoker;
use endpoint_core::edge::origin::INTERNAL_ROUTE_KEY;
use endpoint_core::edge::routes::{self, ResponseRoute};
use endpoint_core::edge::{self, failed, Base};
use endpoint_core::edge::{outcome_body, parse_executor_request, parse_outcome, Reply};
use endpoint_core::edge::{Answer, Label};
use endpoint_core::error::CoreError;
use endpoint_core::ports::ChallengeMinter;
use endpoint_core::ports::Store;
use endpoint_core::stage::{self, Outcome};
use std::collections::HashMap;

use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext,
    ApiGatewayV2httpRequestContextHttpDescription,
};
use lambda_http::http::{HeaderValue, Method};
use lambda_http::Request;
use serde_json::Value;

pub struct App<S, M> {
    pub base: Base,
    pub store: S,
    pub minter: M,
}

impl<S: Store, M: ChallengeMinter> App<S, M> {
    pub async fn handle(&self, req: Request) -> Answer {
        // The one route of the function: a second one would make this pattern refutable.
        let (ResponseRoute::PostExecutor, v) = match edge::route::<ResponseRoute>(&req) {
            Ok(route) => route,
            Err(reply) => return *reply,
        };
        if let Err(answer) = edge::at_home(&self.base.config, &req, v[0]) {
            return *answer;
        }
        let outcome = async {
            let response = parse_executor_request(edge::body(&req)?)?;
            stage::executor_post(
                &self.store,
                &self.minter,
                &self.base.env(&edge::caller(&req)),
                v[0],
                response.as_deref(),
            )
            .await
        };
        match outcome.await {
            Ok(outcome) => (Reply::ok(outcome_body(&outcome)), Label::of(&outcome)),
            Err(e) => failed(&e),
        }
    }
}

/// Mints a new challenge by invoking the challenge function with the API Gateway event of
/// `GET /v1/plans/{plan}/executor`.
pub struct InvokeMinter {
    pub invoker: LambdaInvoker,
    pub function: String,
}

impl InvokeMinter {
    /// The Lambda invoker (SigV4-signed, timed like every AWS call) for the configured
    /// challenge function.
    pub fn from_config(aws: &aws_config::SdkConfig, base: &Base) -> Self {
        InvokeMinter {
            invoker: LambdaInvoker::from_config(aws),
            function: base.config.challenge_function.clone(),
        }
    }
}

/// The event of an internal GET of the plan's executor: shaped as API Gateway's (HTTP API,
/// payload 2.0), built from the same `aws_lambda_events` types the challenge function's runtime
/// parses it with, but with the internal route key and no API id, which no event of API
/// Gateway has: behind the edge the challenge function serves it without the origin secret
/// (`edge::origin`), as the internal call it is.
pub fn executor_get_event(plan_id: &str) -> ApiGatewayV2httpRequest {
    let path = routes::EXECUTOR_GET.path(&[plan_id]);
    let route_key = INTERNAL_ROUTE_KEY.to_string();
    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = Method::GET;
    http.path = Some(path.clone());
    http.protocol = Some("HTTP/1.1".into());
    http.source_ip = Some("127.0.0.1".into());
    http.user_agent = Some("endpoint-stage/response".into());
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.route_key = Some(route_key.clone());
    context.stage = Some("$default".into());
    context.request_id = Some("internal".into());
    context.domain_name = Some("internal".into());
    context.http = http;
    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".into());
    event.route_key = Some(route_key);
    event.raw_path = Some(path);
    event.raw_query_string = Some(String::new());
    event
        .headers
        .insert("host", HeaderValue::from_static("internal"));
    event.path_parameters = HashMap::from([("plan".to_string(), plan_id.to_string())]);
    event.request_context = context;
    event
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
        // Plain strings and maps: encoding cannot fail, and if it ever did the challenge
        // function could not be asked, which is what unavailable means.
        let payload = serde_json::to_vec(&executor_get_event(plan_id)).map_err(|_| {
            CoreError::Unavailable("The challenge service could not be asked.".into())
        })?;
        let out = self
            .invoker
            .invoke(&self.function, payload)
            .await
            .map_err(|why| {
                tracing::warn!(failure = ?why, "invoking the challenge function failed");
                match why {
                    Failure::Throttled => CoreError::Throttled(
                        "The challenge service is busy; try again shortly.".into(),
                    ),
                    _ => CoreError::Unavailable(
                        "The challenge service is unavailable; try again shortly.".into(),
                    ),
                }
            })?;
        if out.function_error {
            tracing::warn!("the challenge function failed");
            return Err(CoreError::Unavailable(
                "The challenge service failed; try again shortly.".into(),
            ));
        }
        read_invoke_payload(&out.payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn invoke_payloads_map_to_outcomes_and_errors() {
        let ok = json!({"statusCode": 200, "body": json!({"component": "ak-stage-endpoint-agent", "challenge": "a.b.c", "challenge_idle_timeout": 5}).to_string()});
        assert_eq!(
            read_invoke_payload(ok.to_string().as_bytes()),
            Ok(Outcome::Challenge {
                jws: "a.b.c".into(),
                idle_timeout: 5,
                invalid_response: false,
                reason: None,
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

    /// Every error the challenge function can answer comes back as an error of the same class
    /// in the one error table (status and contract code), so the response function's map and
    /// the table cannot drift apart.
    #[test]
    fn the_challenge_functions_errors_map_back_through_the_error_table() {
        use endpoint_core::edge::{error_class, error_reply};
        for sent in [
            CoreError::NotFound("plan".into()),
            CoreError::Throttled("busy".into()),
            CoreError::RateLimited(3),
            CoreError::Unavailable("down".into()),
            CoreError::LostRace,
        ] {
            let reply = error_reply(&sent);
            let payload = json!({"statusCode": reply.status, "body": reply.body.to_string()});
            let Err(back) = read_invoke_payload(payload.to_string().as_bytes()) else {
                panic!("{sent:?} came back as an outcome");
            };
            let (sent, back) = (error_class(&sent), error_class(&back));
            assert_eq!((back.status, back.code), (sent.status, sent.code));
        }
    }

    #[test]
    fn the_event_is_an_http_api_get_the_runtime_parses_into_the_executor_request() {
        let e = serde_json::to_value(executor_get_event("p1")).unwrap();
        assert_eq!(e["rawPath"], "/v1/plans/p1/executor");
        assert_eq!(e["requestContext"]["http"]["method"], "GET");
        // What the challenge function's runtime makes of it: the request its handler routes.
        let bytes = serde_json::to_vec(&e).unwrap();
        let req: lambda_http::request::LambdaRequest = serde_json::from_slice(&bytes).unwrap();
        let req: Request = req.into();
        assert_eq!(req.method(), Method::GET);
        assert_eq!(endpoint_core::edge::path(&req), "/v1/plans/p1/executor");
    }

    /// Behind CloudFront every function has the origin secret; the internal event carries none
    /// and is still served (it was refused, and a required stage answered 503 instead of a new
    /// challenge), and it is served as internal, not as if it came through the edge.
    #[test]
    fn behind_the_edge_the_challenge_function_serves_the_internal_event() {
        use endpoint_core::edge::origin::{is_internal, OriginGuard};
        let bytes = serde_json::to_vec(&executor_get_event("p1")).unwrap();
        let req: lambda_http::request::LambdaRequest = serde_json::from_slice(&bytes).unwrap();
        let mut req: Request = req.into();
        assert!(is_internal(&req));
        let guard = OriginGuard::new(Some("the-edge-secret".into()), Some("the-old-one".into()));
        assert!(guard.admit(&mut req));
        assert!(req
            .extensions()
            .get::<endpoint_core::edge::request::ThroughEdge>()
            .is_none());
        // The same GET as API Gateway delivers it (its API id, its route key), without the
        // secret: refused.
        let mut from_api = serde_json::to_value(executor_get_event("p1")).unwrap();
        from_api["routeKey"] = "GET /v1/plans/{plan}/executor".into();
        from_api["requestContext"]["routeKey"] = "GET /v1/plans/{plan}/executor".into();
        from_api["requestContext"]["apiId"] = "a1b2c3d4e5".into();
        let req: lambda_http::request::LambdaRequest = serde_json::from_value(from_api).unwrap();
        let mut req: Request = req.into();
        assert!(!guard.admit(&mut req));
    }
}
