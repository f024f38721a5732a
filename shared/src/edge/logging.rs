//! Logs and metrics: JSON lines on stdout at the configured level, and the one line per
//! request, which is also the request's metrics (CloudWatch embedded metric format).

use super::labels::Label;

/// JSON logs on stdout (CloudWatch), one object per line. The level is Lambda's
/// `AWS_LAMBDA_LOG_LEVEL` (the template's `LoggingConfig.ApplicationLogLevel`), else
/// `LOG_LEVEL` (the local stack), else info. It applies to our own code only ([`log_filter`]).
pub fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let configured = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("LOG_LEVEL"))
        .unwrap_or_default();
    let format = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false);
    let _ = tracing_subscriber::registry()
        .with(format)
        .with(log_filter(&configured))
        .try_init();
}

/// Our crates' targets: they log at the configured level and never a secret.
const OWN_TARGETS: [&str; 16] = [
    "endpoint_core",
    "audit",
    "fn_plans",
    "fn_challenge",
    "fn_response",
    "fn_jwks",
    "fn_agent",
    "fn_web",
    "plans",
    "challenge",
    "response",
    "jwks",
    "agent",
    "web",
    "fallback",
    "fn_fallback",
];

/// The configured level for our own code; every other crate (the AWS SDK, hyper, the Lambda
/// runtime) at most at info, whatever is configured: at debug and trace they print raw events,
/// headers and request bodies, which hold device keys, tokens, challenges and responses.
pub fn log_filter(configured: &str) -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::LevelFilter;
    let level = match configured.to_ascii_lowercase().as_str() {
        "error" | "fatal" => LevelFilter::ERROR,
        "warn" => LevelFilter::WARN,
        "debug" => LevelFilter::DEBUG,
        "trace" => LevelFilter::TRACE,
        _ => LevelFilter::INFO,
    };
    OWN_TARGETS.iter().fold(
        tracing_subscriber::filter::Targets::new().with_default(level.min(LevelFilter::INFO)),
        |f, t| f.with_target(*t, level),
    )
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
    pub label: Label,
    pub latency_ms: f64,
    pub aws_ms: f64,
    pub namespace: &'a str,
    pub unix_ms: u128,
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
        "label": r.label.as_str(),
        "outcome": r.label.outcome_class(r.status),
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

pub(crate) fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// One JSON line on stdout, whatever the log level: the metrics must never depend on it.
pub(crate) fn write_line(record: &serde_json::Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // A closed stdout leaves nothing to report the failure to; the request is still answered.
    let _ = writeln!(out, "{record}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_crates_never_log_below_info() {
        use tracing::Level;
        let trace = log_filter("TRACE");
        for own in ["endpoint_core::stage", "fn_response", "audit"] {
            assert!(trace.would_enable(own, &Level::TRACE), "{own}");
        }
        for foreign in [
            "aws_smithy_runtime::client::orchestrator",
            "aws_sdk_dynamodb",
            "hyper_util::client",
            "lambda_runtime",
            "lambda_http",
            "rustls",
        ] {
            assert!(!trace.would_enable(foreign, &Level::DEBUG), "{foreign}");
            assert!(trace.would_enable(foreign, &Level::INFO), "{foreign}");
        }
        let warn = log_filter("warn");
        assert!(!warn.would_enable("endpoint_core", &Level::INFO));
        assert!(!warn.would_enable("aws_sdk_kms", &Level::INFO));
        assert!(log_filter("nonsense").would_enable("endpoint_core", &Level::INFO));
    }

    #[test]
    fn the_request_line_is_an_emf_record_without_path_or_body() {
        let r = request_record(&RequestLine {
            request_id: "r1",
            function: "response",
            method: "POST",
            route: "/v1/plans/{}/executor",
            status: 200,
            label: Label::ChallengeRetry,
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
        assert_eq!(Label::Passed.outcome_class(200), "passed");
        assert_eq!(Label::Denied.outcome_class(200), "denied");
        assert_eq!(Label::Challenge.outcome_class(200), "challenge");
        assert_eq!(Label::ChallengeRetry.outcome_class(200), "invalid_response");
        assert_eq!(Label::Throttled.outcome_class(429), "throttled");
        assert_eq!(Label::Unavailable.outcome_class(503), "unavailable");
        assert_eq!(Label::LostRace.outcome_class(503), "unavailable");
        assert_eq!(Label::Forbidden.outcome_class(403), "client_error");
        assert_eq!(Label::Created.outcome_class(201), "ok");
    }
}
