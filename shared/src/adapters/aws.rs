//! What the AWS adapters share: one SDK configuration (bounded timeouts and retries, the HTTPS
//! client) and the classification of SDK errors into the core's typed errors.

use std::time::Duration;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Bounds of every AWS call: a dependency that does not answer becomes a typed error (503/429)
/// within about four seconds, well inside a function's timeout and API Gateway's 30 s.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(800);
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1500);
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(4);
/// Attempts per call (the first and two retries), for throttling and 5xx, with backoff.
pub const MAX_ATTEMPTS: u32 = 3;
/// The variable that sets another attempt timeout, in milliseconds (within 100 ms and
/// [`OPERATION_TIMEOUT`]). Unset when deployed. The local stack sets 3000: its emulator serves
/// one request at a time to every suite at once, so a request can wait there behind others
/// for longer than a DynamoDB attempt ever takes, and a retried write that had in fact been
/// applied would count twice (an extra attempt on a plan, say), failing a test at random.
pub const ATTEMPT_TIMEOUT_VAR: &str = "AWS_ATTEMPT_TIMEOUT_MS";

/// The attempt timeout for the value of [`ATTEMPT_TIMEOUT_VAR`]: [`ATTEMPT_TIMEOUT`] when it is
/// unset or not a number of milliseconds, else that number within its bounds.
pub fn attempt_timeout(setting: Option<&str>) -> Duration {
    setting
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|ms| Duration::from_millis(ms).clamp(Duration::from_millis(100), OPERATION_TIMEOUT))
        .unwrap_or(ATTEMPT_TIMEOUT)
}

/// The SDK's HTTPS client (hyper, rustls on ring, the system's roots). The SDK crates are built
/// without their `default-https-client` feature (rustls on aws-lc, whose C build was the
/// largest unit of a fresh build): every configuration gets this one, or the SDK panics at its
/// first call.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// The standard AWS configuration (region, credentials, `AWS_ENDPOINT_URL*`) with our bounds.
/// Build it once per process (cold start), then the clients from it.
pub async fn load_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(attempt_timeout(
                    std::env::var(ATTEMPT_TIMEOUT_VAR).ok().as_deref(),
                ))
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .load()
        .await
}

/// How an SDK error is to be treated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The service answered with this error code (e.g. `ConditionalCheckFailedException`).
    Service(String),
    /// Throttled after the SDK's retries.
    Throttled,
    /// No usable answer: connection refused, timeout, unparsable response, or a client fault.
    Unreachable(String),
}

const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "TooManyRequestsException",
];

/// Classifies an SDK error without keeping any of its text that could echo request data.
pub fn classify<E, R>(error: &SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    if let Some(why) = configuration_problem(error) {
        return Failure::Unreachable(why.into());
    }
    match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown").to_string();
            if THROTTLING_CODES.contains(&code.as_str()) {
                Failure::Throttled
            } else {
                Failure::Service(code)
            }
        }
        SdkError::TimeoutError(_) => Failure::Unreachable("timeout".into()),
        SdkError::DispatchFailure(d) => Failure::Unreachable(
            if d.is_timeout() {
                "timeout"
            } else if d.is_io() {
                "connection failed"
            } else {
                "dispatch failure"
            }
            .into(),
        ),
        SdkError::ResponseError(_) => Failure::Unreachable("unreadable response".into()),
        SdkError::ConstructionFailure(_) => {
            Failure::Unreachable("request could not be built (configuration)".into())
        }
        _ => Failure::Unreachable("unknown SDK error".into()),
    }
}

/// Missing credentials or region surface as dispatch or construction failures deep in the
/// error chain: name them, since "dispatch failure" tells an operator nothing.
fn configuration_problem(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut current = Some(error);
    while let Some(e) = current {
        let text = e.to_string().to_ascii_lowercase();
        if text.contains("credential") {
            return Some("no usable AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile");
        }
        if text.contains("region")
            && (text.contains("missing") || text.contains("no region") || text.contains("not set"))
        {
            return Some("no AWS region: set AWS_REGION");
        }
        current = e.source();
    }
    None
}

/// Wall time during which at least one AWS call was in flight, since the last `take_aws_time`.
/// Overlapping calls (the response validator's two parallel reads) count once.
struct AwsClock {
    active: u32,
    since: Option<std::time::Instant>,
    total: std::time::Duration,
}

static AWS_CLOCK: std::sync::Mutex<AwsClock> = std::sync::Mutex::new(AwsClock {
    active: 0,
    since: None,
    total: std::time::Duration::ZERO,
});

fn aws_clock() -> std::sync::MutexGuard<'static, AwsClock> {
    AWS_CLOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Time spent waiting on AWS since the last call of this function (the functions' per-request
/// log line reports it as `aws_ms`; a Lambda process serves one request at a time).
pub fn take_aws_time() -> std::time::Duration {
    let mut c = aws_clock();
    let now = std::time::Instant::now();
    if let Some(since) = c.since.replace(now).filter(|_| c.active > 0) {
        c.total += now - since;
    }
    if c.active == 0 {
        c.since = None;
    }
    std::mem::take(&mut c.total)
}

fn call_started() {
    let mut c = aws_clock();
    if c.active == 0 {
        c.since = Some(std::time::Instant::now());
    }
    c.active += 1;
}

fn call_ended() {
    let mut c = aws_clock();
    c.active = c.active.saturating_sub(1);
    if c.active == 0 {
        if let Some(since) = c.since.take() {
            c.total += since.elapsed();
        }
    }
}

/// An AWS call made without the SDK (adapters::lambda) in flight, for [`take_aws_time`], until
/// it is dropped.
pub struct InFlight(());

impl InFlight {
    pub fn start() -> Self {
        call_started();
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        call_ended();
    }
}

#[derive(Debug, Clone)]
struct CallStart;

impl aws_smithy_types::config_bag::Storable for CallStart {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// An SDK interceptor recording when AWS calls are in flight, for [`take_aws_time`].
#[derive(Debug, Clone, Default)]
pub struct CallTimer;

impl aws_smithy_runtime_api::client::interceptors::Intercept for CallTimer {
    fn name(&self) -> &'static str {
        "CallTimer"
    }

    fn read_before_execution(
        &self,
        _context: &aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        call_started();
        cfg.interceptor_state().store_put(CallStart);
        Ok(())
    }

    fn read_after_execution(
        &self,
        _context: &aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if cfg.load::<CallStart>().is_some() {
            call_ended();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{attempt_timeout, ATTEMPT_TIMEOUT, OPERATION_TIMEOUT};

    #[test]
    fn the_attempt_timeout_is_the_default_unless_set_within_bounds() {
        assert_eq!(attempt_timeout(None), ATTEMPT_TIMEOUT);
        assert_eq!(attempt_timeout(Some("")), ATTEMPT_TIMEOUT);
        assert_eq!(attempt_timeout(Some("3s")), ATTEMPT_TIMEOUT);
        assert_eq!(attempt_timeout(Some("-5")), ATTEMPT_TIMEOUT);
        assert_eq!(attempt_timeout(Some("3000")), Duration::from_secs(3));
        assert_eq!(attempt_timeout(Some(" 250 ")), Duration::from_millis(250));
        assert_eq!(attempt_timeout(Some("1")), Duration::from_millis(100));
        assert_eq!(attempt_timeout(Some("999999999")), OPERATION_TIMEOUT);
    }
}
