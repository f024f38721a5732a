//! Push delivery is no server-side request forgery, end to end: the Shared Signals routes refuse
//! internal push endpoints with 400 (the local stack, which allows loopback; and the function
//! as deployed, without `PUSH_ALLOW_LOOPBACK`); the pusher connects only to the addresses it
//! checked, names resolved once (an injected resolution stands for DNS); and a failing
//! receiver's status says why only in generic terms. The address table itself, with names that
//! resolve to private addresses: `shared/tests/domain/egress.rs`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use endpoint_core::delivery::Pusher;
use endpoint_core::edge::routes;
use endpoint_core::edge::{Base, FunctionConfig};
use endpoint_core::egress::{EgressPolicy, PushFailure};
use endpoint_core::ports::{SystemClock, SystemRandom};
use endpoint_e2e::Stack;
use fn_deliver::HttpPusher;
use lambda_http::{Body, Request};
use serde_json::{json, Value};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

const PUSH: &str = "urn:ietf:rfc:8935";

/// Internal addresses as a receiver may write them (loopback is the local stack's allowance,
/// tested below without it).
const INTERNAL: [&str; 16] = [
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "[fe80::1]",
    "[fd00:ec2::254]",
    "100.64.0.1",
    "224.0.0.251",
    "0.0.0.0",
    "[::]",
    "255.255.255.255",
    "240.0.0.1",
    "[::ffff:169.254.169.254]",
    "[64:ff9b::a00:1]",
    "169.254.43518",
    "0xa9.0xfe.0xa9.0xfe",
];

/// A receiver's address for the pusher: what the injected resolution answers for any name.
#[derive(Debug)]
struct Fixed(Vec<SocketAddr>);

impl Resolver for Fixed {
    fn resolve(
        &self,
        _uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut out = self.empty();
        for a in &self.0 {
            out.push(*a);
        }
        Ok(out)
    }
}

/// How a loopback receiver answers.
#[derive(Clone, Copy)]
enum Answer {
    /// Reads the request, then answers this.
    After(&'static str),
    /// Answers this at once, before reading anything (what a TLS client reads as garbage).
    At(&'static str),
    /// Reads the request and never answers.
    Never,
}

/// A receiver on loopback; keeps the `Host` header of each request it read.
struct Listener {
    port: u16,
    hosts: Arc<Mutex<Vec<String>>>,
}

fn listener(answer: Answer) -> Listener {
    let socket = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let hosts = Arc::new(Mutex::new(Vec::new()));
    let seen = hosts.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut conn in socket.incoming().flatten() {
            if let Answer::At(a) = answer {
                let _ = conn.write_all(a.as_bytes());
                held.push(BufReader::new(conn));
                continue;
            }
            let mut reader = BufReader::new(conn);
            let (mut host, mut length) = (String::new(), 0usize);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("host:") {
                    host = v.trim().to_string();
                }
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            seen.lock().unwrap().push(host);
            if let Answer::After(a) = answer {
                let _ = reader.get_mut().write_all(a.as_bytes());
            }
            held.push(reader);
        }
    });
    Listener { port, hosts }
}

const ACCEPTED: &str = "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

fn on(port: u16) -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], port))]
}

#[tokio::test]
async fn the_pusher_connects_only_to_the_addresses_it_checked() {
    let l = listener(Answer::After(ACCEPTED));
    let url = format!("http://receiver.example:{}/events", l.port);
    // The name resolves (injected) to the loopback receiver: allowed in the local stack, and
    // connected to that very address, with the name in Host.
    let local = HttpPusher::with_resolver(
        EgressPolicy::AllowLoopback,
        Fixed(on(l.port)),
        Duration::from_secs(5),
    );
    assert_eq!(local.push(&url, None, "set").await, Ok(202));
    assert_eq!(
        *l.hosts.lock().unwrap(),
        [format!("receiver.example:{}", l.port)]
    );
    // Deployed, the same answer is refused before any connection.
    let strict = |addrs| {
        HttpPusher::with_resolver(
            EgressPolicy::PublicOnly,
            Fixed(addrs),
            Duration::from_secs(5),
        )
    };
    let https = format!("https://receiver.example:{}/events", l.port);
    assert_eq!(
        strict(on(l.port)).push(&https, None, "set").await,
        Err(PushFailure::RefusedAddress)
    );
    // A name that resolves to a public and an internal address, or to the metadata service.
    for addrs in [
        vec![
            "192.0.43.10:443".parse().unwrap(),
            "10.0.0.1:443".parse().unwrap(),
        ],
        vec!["169.254.169.254:443".parse().unwrap()],
        vec!["[::ffff:10.0.0.1]:443".parse().unwrap()],
        vec!["[fd00::1]:443".parse().unwrap()],
    ] {
        assert_eq!(
            strict(addrs.clone())
                .push("https://receiver.example/", None, "set")
                .await,
            Err(PushFailure::RefusedAddress),
            "{addrs:?}"
        );
    }
    // The system's resolver: localhost and loopback literals, refused deployed.
    let system = HttpPusher::new(EgressPolicy::PublicOnly);
    for url in [
        format!("https://localhost:{}/", l.port),
        format!("http://localhost:{}/", l.port),
        format!("https://127.0.0.1:{}/", l.port),
        format!("https://[::ffff:127.0.0.1]:{}/", l.port),
    ] {
        assert_eq!(
            system.push(&url, None, "set").await,
            Err(PushFailure::RefusedAddress),
            "{url}"
        );
    }
    assert_eq!(
        l.hosts.lock().unwrap().len(),
        1,
        "never connected when refused"
    );
}

#[tokio::test]
async fn push_failures_are_generic_and_redirects_are_not_followed() {
    let local = |port| {
        HttpPusher::with_resolver(
            EgressPolicy::AllowLoopback,
            Fixed(on(port)),
            Duration::from_secs(2),
        )
    };
    let url = |port| format!("http://receiver.example:{port}/events");
    // Nobody listening.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert_eq!(
        local(closed).push(&url(closed), None, "s").await,
        Err(PushFailure::ConnectionRefused)
    );
    // Listening, never answering.
    let silent = listener(Answer::Never);
    assert_eq!(
        local(silent.port).push(&url(silent.port), None, "s").await,
        Err(PushFailure::Timeout)
    );
    // https: to a receiver that speaks plain HTTP.
    let plain = listener(Answer::At(ACCEPTED));
    let https = format!("https://receiver.example:{}/events", plain.port);
    assert_eq!(
        local(plain.port).push(&https, None, "s").await,
        Err(PushFailure::Tls)
    );
    // A status other than 202, and a redirect: answered as is, never followed.
    let down = listener(Answer::After(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    ));
    assert_eq!(
        local(down.port).push(&url(down.port), None, "s").await,
        Ok(503)
    );
    let target = listener(Answer::After(ACCEPTED));
    let answer: &'static str = Box::leak(
        format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{}/x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            target.port
        )
        .into_boxed_str(),
    );
    let moved = listener(Answer::After(answer));
    assert_eq!(
        local(moved.port).push(&url(moved.port), None, "s").await,
        Ok(307)
    );
    assert!(
        target.hosts.lock().unwrap().is_empty(),
        "the redirect was not followed"
    );
}

fn request(method: &str, path: &str, auth: &str, body: Value) -> Request {
    lambda_http::http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:9000")
        .header("authorization", auth)
        .body(Body::Text(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn deployed_the_ssf_function_refuses_loopback_and_http_push_endpoints() {
    let s = Stack::connect().await;
    // The function as deployed: the stack's environment without PUSH_ALLOW_LOOPBACK.
    let config = |allow: bool| {
        FunctionConfig::from_lookup(|k| match k {
            "PUSH_ALLOW_LOOPBACK" => allow.then(|| "1".to_string()),
            _ => std::env::var(k).ok(),
        })
        .unwrap()
    };
    let app = |allow| fn_ssf::App {
        base: Base {
            config: config(allow),
            clock: SystemClock,
            rng: SystemRandom,
        },
        store: s.store.clone(),
        signer: s.signer.clone(),
    };
    let (deployed, local) = (app(false), app(true));
    assert_eq!(deployed.base.config.push_egress, EgressPolicy::PublicOnly);
    let (_, token) =
        endpoint_core::ssf::create_receiver(&s.store, &SystemClock, &SystemRandom, "egress", None)
            .await
            .unwrap();
    let bearer = format!("Bearer {}", token.expose());
    let create = |url: &str| {
        request(
            "POST",
            routes::SSF_STREAM_CREATE.template,
            &bearer,
            json!({"delivery": {"method": PUSH, "endpoint_url": url}}),
        )
    };
    for url in [
        "https://localhost/events",
        "http://localhost:9000/events",
        "http://127.0.0.1:9000/events",
        "https://127.0.0.1/events",
        "https://127.1/events",
        "https://[::1]/events",
        "https://[::ffff:127.0.0.1]/events",
    ] {
        let (reply, _) = deployed.handle(create(url)).await;
        assert_eq!(
            (reply.status, reply.body["error"].as_str()),
            (400, Some("bad_request")),
            "{url}: {}",
            reply.body
        );
        // The same function in the local stack takes it.
        let (reply, _) = local.handle(create(url)).await;
        assert_eq!(reply.status, 201, "{url}: {}", reply.body);
        let id = reply.body["stream_id"].as_str().unwrap();
        delete_stream(&s.store, id).await;
    }
    // A public address is no problem deployed.
    let (reply, _) = deployed.handle(create("https://192.0.43.10/events")).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.body["stream_id"].as_str().unwrap().to_string();
    // Nor changed to an internal one.
    let change = json!({"stream_id": id, "delivery": {"method": PUSH, "endpoint_url": "https://localhost/"}});
    let (reply, _) = deployed
        .handle(request(
            "PATCH",
            routes::SSF_STREAM_UPDATE.template,
            &bearer,
            change,
        ))
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    delete_stream(&s.store, &id).await;
}

struct Receiver<'a> {
    s: &'a Stack,
    auth: String,
}

impl Receiver<'_> {
    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.s
            .http
            .post(path, &[("authorization", self.auth.as_str())], &body)
            .unwrap()
    }
    fn get(&self, path: &str) -> (u16, Value) {
        self.s
            .http
            .get(path, &[("authorization", self.auth.as_str())])
            .unwrap()
    }
}

#[tokio::test]
async fn the_local_stack_refuses_internal_push_endpoints_and_says_why_a_receiver_fails_generically()
{
    let s = Stack::connect().await;
    let created = s.admin_json(&["ssf", "receiver", "create", "--name", "egress"]);
    let r = Receiver {
        s: &s,
        auth: format!("Bearer {}", created["token"].as_str().unwrap()),
    };
    for host in INTERNAL {
        for url in [
            format!("https://{host}/events"),
            format!("http://{host}:8080/events"),
        ] {
            let (status, body) = r.post(
                routes::SSF_STREAM_CREATE.template,
                json!({"delivery": {"method": PUSH, "endpoint_url": url}}),
            );
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some("bad_request")),
                "{url}: {body}"
            );
        }
    }
    // Nobody listens on this loopback port (the local stack allows loopback): the status says
    // "connection refused", and nothing of the HTTP client's own error text.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{closed}/events");
    let (status, stream) = r.post(
        routes::SSF_STREAM_CREATE.template,
        json!({"delivery": {"method": PUSH, "endpoint_url": url}}),
    );
    assert_eq!(status, 201, "{stream}");
    let id = stream["stream_id"].as_str().unwrap().to_string();
    let (status, _) = r.post(routes::SSF_VERIFY.template, json!({"stream_id": id}));
    assert_eq!(status, 204);
    let mut reason = String::new();
    for _ in 0..60 {
        std::thread::sleep(Duration::from_secs(1));
        let (_, st) = r.get(&format!("/ssf/status?stream_id={id}"));
        if let Some(why) = st["reason"].as_str() {
            reason = why.to_string();
            break;
        }
    }
    assert!(
        reason.ends_with("): connection refused; retrying"),
        "{reason:?}"
    );
    for leak in ["io:", "os error", "127.0.0.1", &closed.to_string()] {
        assert!(!reason.contains(leak), "{reason}");
    }
    delete_stream(&s.store, &id).await;
    s.admin_json(&["ssf", "receiver", "revoke", created["id"].as_str().unwrap()]);
}

/// Deletes a stream the test made (it holds one of its receiver's ten).
async fn delete_stream<S: endpoint_core::ports::SignalStore>(store: &S, id: &str) {
    let stream = store
        .get_stream(id)
        .await
        .unwrap()
        .expect("the test's stream");
    assert!(store.delete_stream(&stream).await.unwrap());
}
