//! Behind the edge (`EdgeProtection=cloudfront`), over Lambda's APIs against moto: the real
//! challenge, response and agent binaries run with both origin secrets set (as the template
//! sets them) on a Lambda emulator of their own, and are invoked with the events API Gateway
//! sends through CloudFront. A required stage's invalid response gets a new challenge through the response
//! function's internal invoke (it was a 503), public requests need one of the two secrets, and
//! the viewer's address from CloudFront's header is the one audited, only with the secret.

use std::process::{Child, Command, Stdio};

use endpoint_core::model::StageMode;
use endpoint_e2e::{is_retry, now, Stack};
use serde_json::{json, Value};

const SECRET: &str = "the-current-origin-secret-0123456789";
const PREVIOUS: &str = "the-previous-origin-secret-9876543210";

/// A Lambda emulator of its own (`cargo lambda watch --only-lambda-apis` on a free port: the
/// stack's serves only the workspace's function names, which its functions, without secrets,
/// already hold) and the functions started against it; stopped by their own pids on drop.
struct EdgeStack {
    api: String,
    children: Vec<Child>,
}

impl Drop for EdgeStack {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl EdgeStack {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let watch = Command::new("cargo")
            .current_dir(root)
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "-A",
                "127.0.0.1",
                "-P",
            ])
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stack = EdgeStack {
            api: format!("http://127.0.0.1:{port}"),
            children: vec![watch],
        };
        let up = (0..600).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "cargo lambda watch did not listen within 60 s");
        for f in ["challenge", "response", "agent"] {
            let child = stack.function(f);
            stack.children.push(child);
        }
        stack
    }

    /// Starts the function `name` behind the edge: both origin secrets, as the template sets.
    fn function(&self, name: &str) -> Child {
        let admin = std::env::var("STACK_ADMIN").expect("scripts/stack-lib.sh exports STACK_ADMIN");
        let bin = std::path::Path::new(&admin).with_file_name(name);
        let runtime = format!("{}/.rt/{name}", self.api);
        Command::new(bin)
            .env("AWS_LAMBDA_RUNTIME_API", runtime)
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_ENDPOINT_URL_LAMBDA", &self.api)
            .env("CHALLENGE_FUNCTION_NAME", "challenge")
            .env("ORIGIN_SECRET", SECRET)
            .env("ORIGIN_SECRET_PREVIOUS", PREVIOUS)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Invokes `function` with `event` (Lambda's Invoke API): its status and JSON body.
    fn invoke(&self, function: &str, event: &Value) -> (u64, Value) {
        let url = format!("{}/2015-03-31/functions/{function}/invocations", self.api);
        let out = Command::new("curl")
            .args([
                "-s",
                "-m",
                "30",
                "-X",
                "POST",
                &url,
                "-d",
                &event.to_string(),
            ])
            .output()
            .unwrap();
        let reply: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        let status = reply["statusCode"]
            .as_u64()
            .unwrap_or_else(|| panic!("{function}: not an HTTP response: {reply}"));
        let body = reply["body"].as_str().map_or(Value::Null, |b| {
            serde_json::from_str(b).unwrap_or(Value::String(b.into()))
        });
        (status, body)
    }
}

/// An API Gateway (HTTP API, payload 2.0) event as CloudFront's request reaches the function:
/// API Gateway's own request context (a CloudFront node's address), the viewer's headers.
fn event(
    method: &str,
    route: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Value {
    let mut h = json!({"host": "device.example.com", "content-type": "application/json", "user-agent": "edge-test"});
    for (k, v) in headers {
        h[*k] = Value::from(*v);
    }
    json!({
        "version": "2.0",
        "routeKey": format!("{method} {route}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": h,
        "requestContext": {
            "accountId": "111122223333",
            "apiId": "a1b2c3d4e5",
            "domainName": "device.example.com",
            "domainPrefix": "device",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "130.176.1.1", "userAgent": "Amazon CloudFront"},
            "requestId": format!("edge-{}", now()),
            "routeKey": format!("{method} {route}"),
            "stage": "$default",
            "time": "06/Dec/2026:21:00:00 +0000",
            "timeEpoch": 0
        },
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false
    })
}

#[tokio::test]
async fn behind_the_edge_invalid_responses_get_a_new_challenge_and_the_viewer_is_audited() {
    let s = Stack::connect().await;
    let edge = EdgeStack::start();
    let setup = s.setup(StageMode::Required, true, true).await;
    let plan = s.create_plan(&setup.stage);
    let executor = format!("/v1/plans/{plan}/executor");
    let route = "/v1/plans/{plan}/executor";
    let get = |headers: &[(&str, &str)]| {
        edge.invoke("challenge", &event("GET", route, &executor, headers, None))
    };

    // Public requests: only with one of the two secrets.
    let (status, body) = get(&[]);
    assert_eq!(
        (status, &body["error"]),
        (403, &json!("forbidden")),
        "{body}"
    );
    assert_eq!(get(&[("x-origin-verify", "not-the-secret")]).0, 403);
    let (status, body) = get(&[("x-origin-verify", SECRET)]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["component"], "ak-stage-endpoint-agent", "{body}");
    assert_eq!(
        get(&[("x-origin-verify", PREVIOUS)]).0,
        200,
        "during a rotation"
    );

    // An invalid response to a required stage: a new challenge, asked of the challenge
    // function by the response function's internal invoke, which carries no secret (503
    // before: the challenge function refused it).
    let post = event(
        "POST",
        route,
        &executor,
        &[("x-origin-verify", SECRET)],
        Some(json!({"component": "ak-stage-endpoint-agent", "response": "not.a.response"})),
    );
    let (status, body) = edge.invoke("response", &post);
    assert_eq!(status, 200, "{body}");
    assert!(is_retry(&body), "{body}");

    // The viewer's address, from CloudFront's header, is the one a refused enrollment records;
    // without the secret the header is nobody's word (and the request is refused anyway).
    let serial = format!("EDGE-{}", now());
    let enroll = |headers: &[(&str, &str)]| {
        let mut h = vec![("authorization", "Bearer not-an-enrollment-token")];
        h.extend_from_slice(headers);
        let body = json!({"device_serial": serial, "device_name": "edge"});
        edge.invoke(
            "agent",
            &event(
                "POST",
                "/api/v3/endpoints/agents/connectors/enroll/",
                "/api/v3/endpoints/agents/connectors/enroll/",
                &h,
                Some(body),
            ),
        )
    };
    let (status, body) = enroll(&[("cloudfront-viewer-address", "203.0.113.77:50123")]);
    assert_eq!(status, 403, "{body}");
    let (status, body) = enroll(&[
        ("x-origin-verify", SECRET),
        ("cloudfront-viewer-address", "2001:db8::77:50123"),
    ]);
    assert_eq!(status, 403, "{body}");
    let events = s.admin_json(&["audit", "list", "--device", &serial, "--since", "1h"]);
    let list = events["events"].as_array().unwrap();
    assert_eq!(
        list.len(),
        1,
        "only the request through the edge was served: {events}"
    );
    assert_eq!(list[0]["code"], "ES002W", "{events}");
    assert_eq!(list[0]["source_ip"], "2001:db8::77", "{events}");
}
