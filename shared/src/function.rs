//! The glue every Lambda function shares (cargo feature `lambda`): configuration from the
//! environment, request parsing with bounds, the contract's replies, and one JSON log line per
//! request. A function's `main` is: init tracing, build its clients once, `serve`.

use std::future::Future;
use std::time::Instant;

use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};

use crate::error::CoreError;
use crate::http::{error_class, error_reply, simple_error, Reply, MAX_BODY};
use crate::ports::{SystemClock, SystemRandom};
use crate::routes::{self, Route};
use crate::stage::{Env, Settings};

/// The functions' configuration, from environment variables with defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionConfig {
    /// `TABLE_NAME` (default `endpoint-stage`).
    pub table: String,
    /// `PLAN_LIFETIME_SECONDS` (900), `CLOCK_LEEWAY_SECONDS` (30), `MAX_CHALLENGES_PER_PLAN` (10).
    pub settings: Settings,
    /// `PUBLIC_BASE_URL`: where browsers reach the API (for URLs handed to agents); without
    /// it, `https://` and the request's `Host`.
    pub public_base_url: Option<String>,
    /// `CHALLENGE_FUNCTION_NAME`: the function the response validator asks for a new challenge.
    pub challenge_function: String,
    /// `BRAND_TITLE`: the title `core/brands/current/` answers (default `endpoint-stage`).
    pub brand_title: String,
}

impl FunctionConfig {
    /// Reads the environment. A malformed value is an error (a cold start should fail loudly
    /// rather than run with a silently different limit).
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let number = |name: &str, default: i64, min: i64, max: i64| -> Result<i64, String> {
            match get(name) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<i64>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(n),
                    _ => Err(format!("{name} must be a whole number from {min} to {max}")),
                },
            }
        };
        let defaults = Settings::default();
        Ok(FunctionConfig {
            table: get("TABLE_NAME")
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "endpoint-stage".into()),
            settings: Settings {
                leeway: number("CLOCK_LEEWAY_SECONDS", defaults.leeway, 0, 300)?,
                plan_lifetime: number("PLAN_LIFETIME_SECONDS", defaults.plan_lifetime, 60, 86_400)?,
                max_challenges_per_plan: number(
                    "MAX_CHALLENGES_PER_PLAN",
                    defaults.max_challenges_per_plan.into(),
                    1,
                    100,
                )? as u32,
            },
            public_base_url: get("PUBLIC_BASE_URL")
                .filter(|u| !u.is_empty())
                .map(|u| u.trim_end_matches('/').to_string()),
            challenge_function: get("CHALLENGE_FUNCTION_NAME")
                .unwrap_or_else(|| "challenge".into()),
            brand_title: match get("BRAND_TITLE") {
                None => crate::agent::DEFAULT_BRAND_TITLE.into(),
                Some(t)
                    if (1..=256).contains(&t.chars().count())
                        && !t.chars().any(char::is_control) =>
                {
                    t
                }
                Some(_) => {
                    return Err(
                        "BRAND_TITLE must be 1 to 256 characters without control characters".into(),
                    )
                }
            },
        })
    }
}

/// What every function holds besides its clients: configuration, clock and randomness.
pub struct Base {
    pub config: FunctionConfig,
    pub clock: SystemClock,
    pub rng: SystemRandom,
}

impl Base {
    pub fn from_env() -> Result<Self, lambda_http::Error> {
        let config = FunctionConfig::from_env().map_err(|e| {
            tracing::error!(error = %e, "invalid configuration");
            lambda_http::Error::from(e)
        })?;
        Ok(Base {
            config,
            clock: SystemClock,
            rng: SystemRandom,
        })
    }

    pub fn env(&self) -> Env<'_, SystemClock, SystemRandom> {
        Env {
            clock: &self.clock,
            rng: &self.rng,
            settings: &self.config.settings,
        }
    }
}

/// The DynamoDB store and the KMS signer of a function, from one AWS configuration: built once
/// per cold start, outside the handler.
#[cfg(all(feature = "dynamodb", feature = "kms"))]
pub async fn dynamo_and_kms(
    base: &Base,
) -> (
    crate::adapters::dynamodb::DynamoStore,
    crate::adapters::kms::KmsSigner,
) {
    let aws = crate::adapters::aws::load_config().await;
    (
        crate::adapters::dynamodb::DynamoStore::from_config(&aws, &base.config.table),
        crate::adapters::kms::KmsSigner::from_config(&aws),
    )
}

/// JSON logs on stdout (CloudWatch), one object per line. The level is Lambda's
/// `AWS_LAMBDA_LOG_LEVEL` (the template's `LoggingConfig.ApplicationLogLevel`), else
/// `LOG_LEVEL` (the local stack), else info.
pub fn init_tracing() {
    let configured = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("LOG_LEVEL"))
        .unwrap_or_default();
    let level = match configured.to_ascii_lowercase().as_str() {
        "error" | "fatal" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_max_level(level)
        .try_init();
}

/// The request path as the client sent it.
pub fn path(req: &Request) -> &str {
    let raw = req.raw_http_path();
    if raw.is_empty() {
        req.uri().path()
    } else {
        raw
    }
}

/// The request's `Host` header if it is a plausible host name (with an optional port).
pub fn host(req: &Request) -> Option<&str> {
    header(req, "host").filter(|h| {
        !h.is_empty()
            && h.len() <= 255
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    })
}

/// The API's public base URL: the configured one, else `https://<Host>` of the request.
pub fn public_base_url(config: &FunctionConfig, req: &Request) -> Option<String> {
    config
        .public_base_url
        .clone()
        .or_else(|| host(req).map(|h| format!("https://{h}")))
}

/// The body's bytes, refused over 64 KiB (every route but `check_in/`).
pub fn body(req: &Request) -> Result<&[u8], CoreError> {
    body_within(req, MAX_BODY)
}

/// The body's bytes, refused over `limit`.
pub fn body_within(req: &Request, limit: usize) -> Result<&[u8], CoreError> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => &[],
        Body::Text(s) => s.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    };
    if bytes.len() > limit {
        return Err(CoreError::PayloadTooLarge(limit));
    }
    Ok(bytes)
}

/// A header's value if present and valid UTF-8.
pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Time spent in AWS calls since the last call (zero for functions without AWS clients).
fn aws_time() -> std::time::Duration {
    #[cfg(feature = "aws")]
    {
        crate::adapters::aws::take_aws_time()
    }
    #[cfg(not(feature = "aws"))]
    {
        std::time::Duration::ZERO
    }
}

/// A reply and its log label: what a handler answers.
pub type Answer = (Reply, &'static str);

/// The route among `served` (the function's own entries of [`routes::ROUTES`]) that this
/// request asks for, with the path's parameters; otherwise the contract's 405 (this path, another
/// method) or, by the whole table, 404 or 405.
pub fn route<'a>(req: &'a Request, served: &[Route]) -> Result<(Route, Vec<&'a str>), Box<Answer>> {
    let path = path(req);
    let method = req.method().as_str();
    let mut path_served = false;
    for r in served {
        if let Some(params) = r.matches(path) {
            if r.method == method {
                return Ok((*r, params));
            }
            path_served = true;
        }
    }
    Err(Box::new(if path_served {
        method_not_allowed()
    } else {
        unrouted(path)
    }))
}

/// 405 if some route serves `path` with other methods, else 404.
pub fn unrouted(path: &str) -> (Reply, &'static str) {
    if routes::is_routed(path) {
        method_not_allowed()
    } else {
        no_route()
    }
}

/// The contract's 405 for a method a route does not serve.
pub fn method_not_allowed() -> (Reply, &'static str) {
    (
        simple_error(
            405,
            "method_not_allowed",
            "This route does not serve that method.",
        ),
        "method_not_allowed",
    )
}

/// The contract's 404 for a path no route serves.
pub fn no_route() -> (Reply, &'static str) {
    (
        simple_error(404, "not_found", "No route serves this path."),
        "no_route",
    )
}

/// A core error as a reply and a log label, both from the one table ([`error_class`]).
pub fn failed(e: &CoreError) -> (Reply, &'static str) {
    (error_reply(e), error_class(e).label)
}

/// The HTTP response of a reply: JSON (or the reply's document), never cached unless the
/// document says otherwise.
pub fn respond(reply: Reply) -> Response<Body> {
    let body = match (&reply.document, reply.status) {
        (Some(doc), _) => Body::Text(doc.text.clone()),
        (None, 204) => Body::Empty,
        (None, _) => Body::Text(reply.body.to_string()),
    };
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let headers = response.headers_mut();
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    match &reply.document {
        Some(doc) => {
            headers.insert("content-type", HeaderValue::from_static(doc.content_type));
            for (name, value) in &doc.headers {
                // Our own constant header values: always valid; one that were not is left out
                // rather than sent wrong.
                if let Ok(v) = HeaderValue::from_str(value) {
                    headers.insert(*name, v);
                }
            }
        }
        None if reply.status != 204 => {
            headers.insert("content-type", HeaderValue::from_static("application/json"));
        }
        None => {}
    }
    if let Some(seconds) = reply.retry_after {
        headers.insert("retry-after", HeaderValue::from(seconds));
    }
    response
}

/// What the one log line of a request says.
pub struct RequestLine<'a> {
    pub request_id: &'a str,
    pub function: &'static str,
    pub method: &'a str,
    /// The route template, never the path.
    pub route: &'static str,
    pub status: u16,
    /// The handler's label of what happened (`passed`, `challenge_retry`, `forbidden`, ...).
    pub label: &'static str,
    pub latency_ms: f64,
    pub aws_ms: f64,
    pub namespace: &'a str,
    pub unix_ms: u128,
}

/// The metric class of a request: what the dashboard and the alarms count.
pub fn outcome_class(label: &str, status: u16) -> &'static str {
    match label {
        "challenge" => "challenge",
        "challenge_retry" => "invalid_response",
        "passed" => "passed",
        "denied" => "denied",
        "throttled" => "throttled",
        "unavailable" => "unavailable",
        _ if status >= 500 => "unavailable",
        _ if status >= 400 => "client_error",
        _ => "ok",
    }
}

/// The request's log line, which is also a CloudWatch embedded-metric-format record: the count
/// (`Requests`), `latency_ms` and `aws_ms` by `outcome` and by `route` + `outcome`. No extra
/// call: CloudWatch extracts the metrics from the log.
pub fn request_record(r: &RequestLine<'_>) -> serde_json::Value {
    serde_json::json!({
        "level": "INFO",
        "message": "request",
        "request_id": r.request_id,
        "function": r.function,
        "method": r.method,
        "route": r.route,
        "status": r.status,
        "label": r.label,
        "outcome": outcome_class(r.label, r.status),
        "latency_ms": r.latency_ms,
        "aws_ms": r.aws_ms,
        "Requests": 1,
        "_aws": {
            "Timestamp": r.unix_ms,
            "CloudWatchMetrics": [{
                "Namespace": r.namespace,
                "Dimensions": [["outcome"], ["route", "outcome"]],
                "Metrics": [
                    {"Name": "Requests", "Unit": "Count"},
                    {"Name": "latency_ms", "Unit": "Milliseconds"},
                    {"Name": "aws_ms", "Unit": "Milliseconds"},
                ],
            }],
        },
    })
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// One JSON line on stdout, whatever the log level: the metrics must never depend on it.
fn write_line(record: &serde_json::Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // A closed stdout leaves nothing to report the failure to; the request is still answered.
    let _ = writeln!(out, "{record}");
}

/// Runs the function: every request goes through `handler`, and one JSON line
/// ([`request_record`], also the request's metrics) records the request id, function, method,
/// route template, status, outcome and latency. No path parameter, header, body or response is
/// logged (they carry plan ids, tokens, challenges and responses).
pub async fn serve<F, Fut>(function: &'static str, handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(Request) -> Fut + Send + Sync,
    Fut: Future<Output = (Reply, &'static str)> + Send,
{
    let handler = &handler;
    let namespace = std::env::var("METRICS_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "endpoint-stage".into());
    let namespace = &namespace;
    lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
        let started = Instant::now();
        let request_id = req
            .lambda_context_ref()
            .map(|c| c.request_id.clone())
            .unwrap_or_default();
        let method = req.method().as_str().to_string();
        // The route template, never the path itself (it carries plan and connector ids).
        let route = routes::template_of(path(&req));
        let _ = aws_time();
        let (reply, outcome) = handler(req).await;
        let aws_ms = aws_time().as_secs_f64() * 1000.0;
        let record = request_record(&RequestLine {
            request_id: &request_id,
            function,
            method: &method,
            route,
            status: reply.status,
            label: outcome,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            aws_ms,
            namespace,
            unix_ms: unix_ms(),
        });
        write_line(&record);
        Ok::<_, std::convert::Infallible>(respond(reply))
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_bounds() {
        let Ok(c) = FunctionConfig::from_lookup(|_| None) else {
            panic!("defaults must parse");
        };
        assert_eq!(c.table, "endpoint-stage");
        assert_eq!(c.settings, Settings::default());
        let three =
            FunctionConfig::from_lookup(|k| (k == "MAX_CHALLENGES_PER_PLAN").then(|| "3".into()));
        assert_eq!(three.map(|c| c.settings.max_challenges_per_plan), Ok(3));
        assert!(
            FunctionConfig::from_lookup(|k| (k == "CLOCK_LEEWAY_SECONDS").then(|| "-1".into()))
                .is_err()
        );
        assert!(FunctionConfig::from_lookup(
            |k| (k == "PLAN_LIFETIME_SECONDS").then(|| "soon".into())
        )
        .is_err());
    }

    #[test]
    fn the_request_line_is_an_emf_record_without_path_or_body() {
        let r = request_record(&RequestLine {
            request_id: "r1",
            function: "response",
            method: "POST",
            route: "/v1/plans/{}/executor",
            status: 200,
            label: "challenge_retry",
            latency_ms: 12.5,
            aws_ms: 10.0,
            namespace: "endpoint-stage",
            unix_ms: 1_800_000_000_000,
        });
        assert_eq!(r["outcome"], "invalid_response");
        assert_eq!(r["Requests"], 1);
        let metrics = &r["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(metrics["Namespace"], "endpoint-stage");
        // Every metric and dimension named is a top-level field of the record.
        for m in metrics["Metrics"].as_array().into_iter().flatten() {
            assert!(r.get(m["Name"].as_str().unwrap_or("")).is_some(), "{m}");
        }
        for set in metrics["Dimensions"].as_array().into_iter().flatten() {
            for d in set.as_array().into_iter().flatten() {
                assert!(r[d.as_str().unwrap_or("")].is_string(), "{d}");
            }
        }
        assert_eq!(r["_aws"]["Timestamp"], 1_800_000_000_000u64);
    }

    #[test]
    fn outcome_classes_are_what_the_alarms_count() {
        assert_eq!(outcome_class("passed", 200), "passed");
        assert_eq!(outcome_class("denied", 200), "denied");
        assert_eq!(outcome_class("challenge", 200), "challenge");
        assert_eq!(outcome_class("throttled", 429), "throttled");
        assert_eq!(outcome_class("unavailable", 503), "unavailable");
        assert_eq!(outcome_class("anything", 502), "unavailable");
        assert_eq!(outcome_class("forbidden", 403), "client_error");
        assert_eq!(outcome_class("created", 201), "ok");
    }

    #[test]
    fn replies_are_json_and_429_has_retry_after() {
        let r = respond(error_reply(&CoreError::Throttled("busy".into())));
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "1");
        assert_eq!(r.headers()["content-type"], "application/json");
    }
}
