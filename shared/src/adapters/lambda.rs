//! Lambda `Invoke` (synchronous) as one SigV4-signed HTTPS POST (feature `invoke`): the response
//! function's one Lambda call, asking the challenge function for a new challenge. The generated
//! `aws-sdk-lambda` crate did the same with 31 s of compile work (the largest crate of a fresh
//! build) for this one operation; here the request is signed by AWS's own signer (`aws-sigv4`,
//! which the SDK uses too) and sent by the SDK's own HTTPS connector (`aws-smithy-http-client`:
//! hyper, rustls on ring, the system's roots: what every SDK client of the function already
//! links), with the SDK configuration's region, credentials and endpoint, and the same bounds as
//! every SDK client: an attempt timeout, three attempts for throttling, 5xx and transport
//! failures, all within [`OPERATION_TIMEOUT`].

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_http_client::Connector;
use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorSettings};
use aws_smithy_runtime_api::http::Request as HttpRequest;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;

use super::aws::{
    attempt_timeout, Failure, InFlight, ATTEMPT_TIMEOUT_VAR, CONNECT_TIMEOUT, MAX_ATTEMPTS,
    OPERATION_TIMEOUT,
};

/// The service's signing name and API version path.
const SERVICE: &str = "lambda";
const API_VERSION: &str = "2015-03-31";
/// The largest synchronous response Lambda returns (6 MB), and some room.
const MAX_PAYLOAD: usize = 7 * 1024 * 1024;

/// What Lambda answered: the function's own response, or its error (`X-Amz-Function-Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub function_error: bool,
    pub payload: Vec<u8>,
}

/// Called with the IAM action of every request sent (`lambda:InvokeFunction`): the tests record
/// each function's accesses with it (`instrument::AccessRecorder`).
pub type Observer = Arc<dyn Fn(&'static str) + Send + Sync>;

/// Invokes Lambda functions, built once per process from the SDK configuration.
#[derive(Clone)]
pub struct LambdaInvoker {
    connector: Arc<Connector>,
    endpoint: String,
    region: String,
    credentials: Option<SharedCredentialsProvider>,
    attempt_timeout: Duration,
    observer: Option<Observer>,
}

/// The endpoint: `AWS_ENDPOINT_URL_LAMBDA`, else the configuration's (`AWS_ENDPOINT_URL`), else
/// the region's public endpoint.
pub fn endpoint(service_url: Option<&str>, config_url: Option<&str>, region: &str) -> String {
    match service_url.or(config_url) {
        Some(url) => url.trim_end_matches('/').to_string(),
        None if region.starts_with("cn-") => format!("https://lambda.{region}.amazonaws.com.cn"),
        None => format!("https://lambda.{region}.amazonaws.com"),
    }
}

/// The URL of a function's invocations: its name is one path segment, percent-encoded.
pub fn invocations_url(endpoint: &str, function: &str) -> Option<String> {
    let mut url = url::Url::parse(endpoint).ok()?;
    url.path_segments_mut().ok()?.pop_if_empty().extend([
        API_VERSION,
        "functions",
        function,
        "invocations",
    ]);
    Some(url.into())
}

/// The headers that sign a POST of `payload` to `url` (SigV4, service `lambda`), with the host
/// and content type that are signed with them.
pub fn signed_headers(
    credentials: Credentials,
    region: &str,
    url: &str,
    payload: &[u8],
    time: SystemTime,
) -> Result<Vec<(String, String)>, Failure> {
    let unsigned = || Failure::Unreachable("the request could not be signed".into());
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_string();
            Some(match u.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        })
        .ok_or_else(unsigned)?;
    let mut headers = vec![
        ("host".to_string(), host),
        ("content-type".to_string(), "application/json".to_string()),
    ];
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| unsigned())?
        .into();
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(payload),
    )
    .map_err(|_| unsigned())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|_| unsigned())?
        .into_parts();
    let (signature, _) = instructions.into_parts();
    headers.extend(
        signature
            .iter()
            .map(|h| (h.name().to_string(), h.value().to_string())),
    );
    Ok(headers)
}

/// One attempt's result: done (success or a final failure), or worth another attempt.
enum Attempt {
    Done(Result<Invocation, Failure>),
    Retry(Failure),
}

impl LambdaInvoker {
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        let region = config.region().map(|r| r.to_string()).unwrap_or_default();
        let service_url = std::env::var("AWS_ENDPOINT_URL_LAMBDA").ok();
        let connector = Connector::builder()
            .connector_settings(
                HttpConnectorSettings::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .build(),
            )
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build();
        LambdaInvoker {
            connector: Arc::new(connector),
            endpoint: endpoint(service_url.as_deref(), config.endpoint_url(), &region),
            region,
            credentials: config.credentials_provider(),
            attempt_timeout: attempt_timeout(std::env::var(ATTEMPT_TIMEOUT_VAR).ok().as_deref()),
            observer: None,
        }
    }

    /// The same invoker, sending to `endpoint` whatever the environment says.
    pub fn with_endpoint(mut self, endpoint: &str) -> Self {
        self.endpoint = endpoint.trim_end_matches('/').to_string();
        self
    }

    /// The same invoker, telling `observer` of every request it sends.
    pub fn observed(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Invokes `function` synchronously with `payload` (JSON), retrying throttling, 5xx and
    /// transport failures up to [`MAX_ATTEMPTS`] times within [`OPERATION_TIMEOUT`].
    pub async fn invoke(&self, function: &str, payload: Vec<u8>) -> Result<Invocation, Failure> {
        let _in_flight = InFlight::start();
        let url = invocations_url(&self.endpoint, function)
            .ok_or_else(|| Failure::Unreachable("invalid Lambda endpoint".into()))?;
        let deadline = Instant::now() + OPERATION_TIMEOUT;
        let mut attempt = 1;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let failure = match self
                .attempt(&url, &payload, left.min(self.attempt_timeout))
                .await
            {
                Attempt::Done(result) => return result,
                Attempt::Retry(failure) => failure,
            };
            let backoff = Duration::from_millis(50 << attempt);
            if attempt >= MAX_ATTEMPTS || Instant::now() + backoff >= deadline {
                return Err(failure);
            }
            tokio::time::sleep(backoff).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, url: &str, payload: &[u8], timeout: Duration) -> Attempt {
        let credentials = match &self.credentials {
            Some(provider) => match provider.provide_credentials().await {
                Ok(c) => c,
                Err(_) => return Attempt::Done(Err(no_credentials())),
            },
            None => return Attempt::Done(Err(no_credentials())),
        };
        if self.region.is_empty() {
            return Attempt::Done(Err(Failure::Unreachable(
                "no AWS region: set AWS_REGION".into(),
            )));
        }
        let headers =
            match signed_headers(credentials, &self.region, url, payload, SystemTime::now()) {
                Ok(h) => h,
                Err(e) => return Attempt::Done(Err(e)),
            };
        if let Some(observe) = &self.observer {
            observe("lambda:InvokeFunction");
        }
        post(&self.connector, url, &headers, payload, timeout).await
    }
}

fn no_credentials() -> Failure {
    Failure::Unreachable(
        "no usable AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile"
            .into(),
    )
}

/// What came back of one POST.
struct Answer {
    status: u16,
    function_error: bool,
    code: String,
    body: Vec<u8>,
}

/// One POST, ended after `timeout`.
async fn post(
    connector: &Connector,
    url: &str,
    headers: &[(String, String)],
    payload: &[u8],
    timeout: Duration,
) -> Attempt {
    let mut request = http::Request::builder().method("POST").uri(url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let Some(request) = request
        .body(SdkBody::from(payload))
        .ok()
        .and_then(|r| HttpRequest::try_from(r).ok())
    else {
        return Attempt::Done(Err(Failure::Unreachable(
            "the request could not be built".into(),
        )));
    };
    let answer = match tokio::time::timeout(timeout, send(connector, request)).await {
        Err(_) => return Attempt::Retry(Failure::Unreachable("timeout".into())),
        Ok(Err(failure)) => return Attempt::Retry(failure),
        Ok(Ok(answer)) => answer,
    };
    match answer.status {
        200 if answer.body.len() <= MAX_PAYLOAD => Attempt::Done(Ok(Invocation {
            function_error: answer.function_error,
            payload: answer.body,
        })),
        200 => Attempt::Done(Err(Failure::Unreachable("unreadable response".into()))),
        429 => Attempt::Retry(Failure::Throttled),
        500.. => Attempt::Retry(Failure::Service(answer.code)),
        _ => Attempt::Done(Err(Failure::Service(answer.code))),
    }
}

async fn send(connector: &Connector, request: HttpRequest) -> Result<Answer, Failure> {
    let response = connector.call(request).await.map_err(|e| {
        Failure::Unreachable(
            if e.is_timeout() {
                "timeout"
            } else {
                "connection failed"
            }
            .into(),
        )
    })?;
    let status = response.status().as_u16();
    let function_error = response.headers().get("x-amz-function-error").is_some();
    // `x-amzn-ErrorType: TooManyRequestsException:http://internal.amazon.com/...`
    let code = response
        .headers()
        .get("x-amzn-errortype")
        .map(|t| t.split(':').next().unwrap_or_default().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| format!("HTTP {status}"));
    let body = ByteStream::new(response.into_body())
        .collect()
        .await
        .map_err(|_| Failure::Unreachable("unreadable response".into()))?
        .into_bytes()
        .to_vec();
    Ok(Answer {
        status,
        function_error,
        code,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::{endpoint, invocations_url};

    #[test]
    fn the_endpoint_is_the_services_then_the_configurations_then_the_regions() {
        assert_eq!(
            endpoint(
                Some("http://127.0.0.1:9000/"),
                Some("http://x"),
                "us-east-1"
            ),
            "http://127.0.0.1:9000"
        );
        assert_eq!(endpoint(None, Some("http://x"), "eu-west-1"), "http://x");
        assert_eq!(
            endpoint(None, None, "eu-west-1"),
            "https://lambda.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            endpoint(None, None, "cn-north-1"),
            "https://lambda.cn-north-1.amazonaws.com.cn"
        );
    }

    #[test]
    fn the_function_name_is_one_encoded_path_segment() {
        assert_eq!(
            invocations_url("https://lambda.us-east-1.amazonaws.com", "stage-Challenge-1A").as_deref(),
            Some("https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/stage-Challenge-1A/invocations")
        );
        assert_eq!(
            invocations_url("http://127.0.0.1:9000", "a/b?c#d").as_deref(),
            Some("http://127.0.0.1:9000/2015-03-31/functions/a%2Fb%3Fc%23d/invocations")
        );
        assert_eq!(invocations_url("not a url", "f"), None);
    }
}
