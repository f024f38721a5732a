//! `edge::fetch::HttpFetcher` against a loopback server of the test's own (std's TcpListener):
//! a JWKS is read whole, a body over the bound, a status other than 200 and a redirect are
//! failures, and where the egress policy allows public addresses only, a loopback address is
//! refused before anything is sent. Feature `fetch` (`make test` builds every feature).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use endpoint_core::edge::fetch::HttpFetcher;
use endpoint_core::egress::EgressPolicy;
use endpoint_core::ports::{FetchFailure, FetchKeys};

/// Serves `answers` (a status line, headers and body each), one per connection, in order;
/// counts the requests it read.
fn serve(answers: Vec<String>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/keys",
        listener.local_addr().unwrap().port()
    );
    let seen = Arc::new(AtomicUsize::new(0));
    let counted = seen.clone();
    thread::spawn(move || {
        for answer in answers {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            counted.fetch_add(1, Ordering::SeqCst);
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (url, seen)
}

fn ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn a_document_is_read_within_its_bound_and_only_from_a_200() {
    let body = r#"{"keys":[]}"#;
    let big = "x".repeat(2048);
    let (url, seen) = serve(vec![
        ok(body),
        ok(&big),
        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into(),
        "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:9/elsewhere\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into(),
    ]);
    let fetcher = HttpFetcher::new(EgressPolicy::AllowLoopback);
    assert_eq!(fetcher.fetch(&url, 1024).await.unwrap(), body.as_bytes());
    assert_eq!(
        fetcher.fetch(&url, 1024).await,
        Err(FetchFailure::Unavailable),
        "over the bound"
    );
    assert_eq!(
        fetcher.fetch(&url, 1024).await,
        Err(FetchFailure::Unavailable),
        "404"
    );
    assert_eq!(
        fetcher.fetch(&url, 1024).await,
        Err(FetchFailure::Unavailable),
        "no redirect followed"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn public_only_refuses_a_loopback_address_before_connecting() {
    let (url, seen) = serve(vec![ok("{}")]);
    let fetcher = HttpFetcher::new(EgressPolicy::PublicOnly);
    assert_eq!(fetcher.fetch(&url, 1024).await, Err(FetchFailure::Refused));
    let named = url.replace("127.0.0.1", "localhost");
    assert_eq!(
        fetcher.fetch(&named, 1024).await,
        Err(FetchFailure::Refused)
    );
    assert_eq!(seen.load(Ordering::SeqCst), 0, "nothing was sent");
}
