//! The Lambda invoker (adapters::lambda): its signature is the one botocore computes for the same
//! request (an independent SigV4 implementation, the venv's), and against a scripted Lambda
//! endpoint on loopback it retries what the SDK retries, stops at what it does not, reads
//! function errors, and gives up within the operation timeout.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use aws_credential_types::Credentials;
use endpoint_core::adapters::aws::{Failure, OPERATION_TIMEOUT};
use endpoint_core::adapters::lambda::{invocations_url, signed_headers, LambdaInvoker};

/// 2026-11-29T12:00:00Z.
const T: u64 = 1_795_953_600;

fn botocore_headers(url: &str, payload: &str, token: &str) -> serde_json::Value {
    let script = r#"
import datetime, json, sys
from unittest import mock
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
a = json.loads(sys.argv[1])
request = AWSRequest(method="POST", url=a["url"], data=a["payload"].encode(),
                     headers={"content-type": "application/json"})
fixed = datetime.datetime(2026, 11, 29, 12, 0, 0)
with mock.patch.object(botocore.auth, "get_current_datetime", return_value=fixed):
    botocore.auth.SigV4Auth(Credentials("AKIDEXAMPLE", "secret/EXAMPLE+key", a["token"]),
                            "lambda", "eu-west-1").add_auth(request)
print(json.dumps({k.lower(): v for k, v in request.headers.items()}))
"#;
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python");
    let args = serde_json::json!({"url": url, "payload": payload, "token": token});
    let out = std::process::Command::new(python)
        .args(["-c", script, &args.to_string()])
        .output()
        .expect("the venv's python (scripts/venv.sh) with botocore");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_signature_is_the_one_botocore_computes() {
    for function in [
        "stage-ChallengeFunction-1A2B3C",
        "arn:aws:lambda:eu-west-1:111122223333:function:challenge",
    ] {
        let url = invocations_url("https://lambda.eu-west-1.amazonaws.com", function).unwrap();
        let payload = r#"{"version":"2.0","rawPath":"/v1/plans/p/executor"}"#;
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "secret/EXAMPLE+key",
            Some("session-token".into()),
            None,
            "test",
        );
        let ours: std::collections::HashMap<String, String> = signed_headers(
            credentials,
            "eu-west-1",
            &url,
            payload.as_bytes(),
            UNIX_EPOCH + Duration::from_secs(T),
        )
        .unwrap()
        .into_iter()
        .collect();
        let theirs = botocore_headers(&url, payload, "session-token");
        for header in ["authorization", "x-amz-date", "x-amz-security-token"] {
            assert_eq!(
                Some(ours[header].as_str()),
                theirs[header].as_str(),
                "{function}: {header}"
            );
        }
        assert!(ours["authorization"].contains("/eu-west-1/lambda/aws4_request"));
    }
}

/// What the scripted endpoint saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A Lambda endpoint on loopback answering each request with the next of `answers` (status,
/// extra headers, body); `None` holds the connection open without answering.
fn scripted(
    answers: Vec<Option<(u16, &'static str, &'static str)>>,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut answers = answers.into_iter();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut headers = Vec::new();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                let (k, v) = line.trim_end().split_once(':').unwrap();
                headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
                line.clear();
            }
            let length = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            log.lock().unwrap().push(Seen {
                request_line: request_line.trim_end().into(),
                headers,
                body,
            });
            match answers.next().flatten() {
                Some((status, extra, body)) => {
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes());
                }
                // Hold it: the client's attempt timeout ends it.
                None => std::thread::sleep(Duration::from_secs(10)),
            }
        }
    });
    (url, seen)
}

/// An invoker of `endpoint`, with fixed credentials (the suite's emulator is not involved).
async fn invoker(endpoint: &str) -> LambdaInvoker {
    let cfg = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                "AKID",
                "SECRET",
                Some("TOKEN".into()),
                None,
                "test",
            )),
        )
        .behavior_version(aws_config::BehaviorVersion::latest())
        .http_client(endpoint_core::adapters::aws::https_client())
        .build();
    // `with_endpoint`: make test exports AWS_ENDPOINT_URL_LAMBDA (the local stack's).
    LambdaInvoker::from_config(&cfg).with_endpoint(endpoint)
}

const THROTTLED: Option<(u16, &str, &str)> = Some((
    429,
    "x-amzn-errortype: TooManyRequestsException:http://internal.amazon.com/\r\n",
    r#"{"Type":"User","message":"Rate exceeded"}"#,
));

#[tokio::test]
async fn an_invocation_is_a_signed_post_of_the_payload() {
    let (url, seen) = scripted(vec![Some((200, "", r#"{"statusCode":200}"#))]);
    let out = invoker(&url)
        .await
        .invoke("challenge", b"{\"a\":1}".to_vec())
        .await
        .unwrap();
    assert_eq!(out.payload, b"{\"statusCode\":200}");
    assert!(!out.function_error);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].request_line,
        "POST /2015-03-31/functions/challenge/invocations HTTP/1.1"
    );
    assert_eq!(seen[0].body, b"{\"a\":1}");
    let header = |name: &str| {
        seen[0]
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let auth = header("authorization").unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKID/"),
        "{auth}"
    );
    assert!(auth.contains("/us-east-1/lambda/aws4_request"), "{auth}");
    assert!(
        auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"),
        "{auth}"
    );
    assert_eq!(header("x-amz-security-token").as_deref(), Some("TOKEN"));
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_and_a_function_error_is_read() {
    let (url, seen) = scripted(vec![
        THROTTLED,
        Some((500, "x-amzn-errortype: ServiceException\r\n", "{}")),
        Some((
            200,
            "x-amz-function-error: Unhandled\r\n",
            r#"{"errorType":"x"}"#,
        )),
    ]);
    let out = invoker(&url)
        .await
        .invoke("challenge", b"{}".to_vec())
        .await
        .unwrap();
    assert!(out.function_error);
    assert_eq!(seen.lock().unwrap().len(), 3);

    let (url, seen) = scripted(vec![THROTTLED, THROTTLED, THROTTLED, THROTTLED]);
    let out = invoker(&url)
        .await
        .invoke("challenge", b"{}".to_vec())
        .await;
    assert_eq!(out, Err(Failure::Throttled));
    assert_eq!(seen.lock().unwrap().len(), 3, "three attempts, no more");
}

#[tokio::test]
async fn a_client_error_is_not_retried() {
    let (url, seen) = scripted(vec![
        Some((
            404,
            "x-amzn-errortype: ResourceNotFoundException:http://x/\r\n",
            "{}",
        )),
        Some((200, "", "{}")),
    ]);
    let out = invoker(&url).await.invoke("missing", b"{}".to_vec()).await;
    assert_eq!(
        out,
        Err(Failure::Service("ResourceNotFoundException".into()))
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_endpoint_that_never_answers_fails_within_the_operation_timeout() {
    let (url, seen) = scripted(vec![None, None, None]);
    let started = Instant::now();
    let out = invoker(&url)
        .await
        .invoke("challenge", b"{}".to_vec())
        .await;
    let took = started.elapsed();
    assert_eq!(out, Err(Failure::Unreachable("timeout".into())));
    assert!(
        took <= OPERATION_TIMEOUT + Duration::from_millis(500),
        "{took:?}"
    );
    assert!(!seen.lock().unwrap().is_empty());
}
