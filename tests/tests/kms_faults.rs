//! KMS faults the emulator cannot produce (moto signs with disabled keys and never throttles),
//! with a mocked KMS endpoint answering the real service's error documents, through the
//! challenge function's handler: a disabled key is a 503 with a clear message, throttling after
//! the SDK's retries a 429 with Retry-After.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use endpoint_core::adapters::aws::load_config;
use endpoint_core::adapters::kms::KmsSigner;
use endpoint_core::adapters::memory::MemoryStore;
use endpoint_core::edge::{respond, Base};
use endpoint_core::model::{Connector, Plan, Stage, StageMode, StageSnapshot};
use endpoint_core::ports::{Directory, PlanStore};
use lambda_http::{Body, Request};

/// A KMS stand-in on loopback: every request gets `status` and the awsJson error `error_type`.
fn mock_kms(status: u16, error_type: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || loop {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let payload =
                    format!(r#"{{"__type":"{error_type}","message":"mocked {error_type}"}}"#);
                let reason = if status == 400 {
                    "Bad Request"
                } else {
                    "Error"
                };
                let response = format!(
                    "HTTP/1.1 {status} {reason}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-requestid: mock\r\ncontent-length: {}\r\n\r\n{payload}",
                    payload.len()
                );
                if stream.write_all(response.as_bytes()).is_err() {
                    return;
                }
            });
        }
    });
    (url, hits)
}

async fn challenge_get(kms_url: &str) -> (lambda_http::Response<Body>, serde_json::Value) {
    let store = MemoryStore::new();
    let mut c = Connector::new("c1", "mock");
    c.challenge_key = Some("alias/mocked".into());
    store.put_connector(&c).await.unwrap();
    let stage = Stage {
        redirect_origins: None,
        audiences: Vec::new(),
        help: None,
        policy: None,
        id: "s1".into(),
        connector: "c1".into(),
        mode: StageMode::Required,
    };
    store.put_stage(&stage).await.unwrap();
    let now = endpoint_agent::now();
    store
        .create_plan(&Plan::pending(
            "p1",
            "s1",
            StageSnapshot::of(&stage, &c),
            "/",
            now,
            now + 900,
        ))
        .await
        .unwrap();
    let config = load_config().await;
    let kms = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(&config)
            .endpoint_url(kms_url)
            .build(),
    );
    let app = fn_challenge::App {
        base: Base::from_env().unwrap(),
        store,
        signer: KmsSigner::new(kms),
    };
    let req: Request = lambda_http::http::Request::builder()
        .method("GET")
        .uri("/v1/plans/p1/executor")
        .body(Body::Empty)
        .unwrap();
    let (reply, _) = app.handle(req).await;
    let body = reply.body.clone();
    (respond(reply), body)
}

#[tokio::test]
async fn a_disabled_key_is_a_503_with_a_clear_message() {
    let (url, hits) = mock_kms(400, "DisabledException");
    let (response, body) = challenge_get(&url).await;
    assert_eq!(response.status(), 503);
    assert_eq!(body["error"], "unavailable");
    // What is down is logged, never answered: the public message names no internal state.
    assert_eq!(
        body["message"],
        "The service is unavailable right now; try again shortly."
    );
    assert!(!body.to_string().contains("key"), "{body}");
    assert!(
        !body.to_string().contains("mocked"),
        "no AWS error text in the body"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "a disabled key is not retried"
    );
}

#[tokio::test]
async fn throttling_after_retries_is_a_429_with_retry_after() {
    let (url, hits) = mock_kms(400, "ThrottlingException");
    let (response, body) = challenge_get(&url).await;
    assert_eq!(response.status(), 429);
    assert_eq!(body["error"], "throttled");
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "the SDK retried (3 attempts) before giving up"
    );
}
