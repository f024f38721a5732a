//! Hostile input over real HTTP: every answer is a contract error or a flow outcome, never a
//! 5xx, a stack trace or AWS error text; nothing hostile passes a required stage.

use endpoint_agent::State;
use endpoint_core::model::StageMode;
use endpoint_core::protocol::b64url;
use endpoint_e2e::{denied, now, Stack};
use serde_json::{json, Value};

/// A raw request through curl (bodies and headers the JSON client would not send).
fn raw(api: &str, method: &str, path: &str, headers: &[&str], body: &[u8]) -> (u16, Value) {
    use std::io::Write;
    let mut cmd = std::process::Command::new("curl");
    cmd.args([
        "-s",
        "-X",
        method,
        "--data-binary",
        "@-",
        "-w",
        "\n%{http_code}",
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let mut child = cmd
        .arg(format!("{api}{path}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn assert_contract(what: &str, status: u16, body: &Value) {
    assert!(status < 500, "{what}: {status} {body}");
    let ok = (body["error"].is_string()
        && body["message"].is_string()
        && body.as_object().unwrap().len() == 2)
        || body["component"].is_string();
    assert!(ok, "{what}: not a contract answer: {status} {body}");
    let text = body.to_string();
    for leak in ["Exception", "panicked", "backtrace", "aws-sdk", "SdkError"] {
        assert!(!text.contains(leak), "{what}: {text}");
    }
}

fn forged(header: Value, claims: Value, key: &str) -> String {
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mac = jwt_hs512(&input, key);
    format!("{input}.{mac}")
}

fn jwt_hs512(input: &str, key: &str) -> String {
    // An HS512 MAC computed independently of the product, with Python's hmac.
    let (h, c) = input.split_once('.').unwrap();
    let out = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python"))
        .args([
            "-c",
            "import sys,hmac,hashlib,base64; print(base64.urlsafe_b64encode(hmac.new(sys.argv[3].encode(), (sys.argv[1]+'.'+sys.argv[2]).encode(), hashlib.sha512).digest()).rstrip(b'=').decode())",
            h,
            c,
            key,
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Hostile responses to `challenge` for `device`: (what, response).
fn hostile_responses(device: &State, challenge: &str) -> Vec<(String, String)> {
    let t = now();
    let claims = json!({"iss": device.serial, "aud": "goauthentik.io/platform/endpoint", "atc": challenge, "iat": t, "exp": t + 300});
    let wrong = "not-the-device-token";
    let mut cases: Vec<(String, String)> = vec![
        (
            "alg none".into(),
            format!(
                "{}.{}.",
                b64url(br#"{"alg":"none","typ":"JWT"}"#),
                b64url(claims.to_string().as_bytes())
            ),
        ),
        (
            "HS256 with the right key".into(),
            forged(json!({"alg": "HS256"}), claims.clone(), &device.token),
        ),
        (
            "RS256 header".into(),
            forged(json!({"alg": "RS256"}), claims.clone(), &device.token),
        ),
        (
            "kid elsewhere, wrong key".into(),
            forged(
                json!({"alg": "HS512", "kid": "../../etc/passwd"}),
                claims.clone(),
                wrong,
            ),
        ),
        (
            "jku elsewhere, wrong key".into(),
            forged(
                json!({"alg": "HS512", "jku": "http://127.0.0.1:1/jwks"}),
                claims.clone(),
                wrong,
            ),
        ),
        (
            "x5u elsewhere, wrong key".into(),
            forged(
                json!({"alg": "HS512", "x5u": "http://127.0.0.1:1/cert"}),
                claims.clone(),
                wrong,
            ),
        ),
        (
            "numbers for strings".into(),
            forged(
                json!({"alg": "HS512"}),
                json!({"iss": 5, "aud": 6, "atc": 7, "exp": t + 300}),
                &device.token,
            ),
        ),
        ("empty segments".into(), "..".into()),
        ("huge".into(), "a".repeat(40_000)),
    ];
    let dup = format!(
        "{}.{}",
        b64url(br#"{"alg":"HS512"}"#),
        b64url(format!(r#"{{"iss":"{}","iss":"other","aud":"goauthentik.io/platform/endpoint","atc":"{challenge}","exp":{}}}"#, device.serial, t + 300).as_bytes())
    );
    cases.push((
        "duplicated claims".into(),
        format!("{dup}.{}", jwt_hs512(&dup, &device.token)),
    ));
    cases
}

#[tokio::test]
async fn hostile_responses_never_pass_and_never_crash() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    let device = s
        .enrolled(&setup.connector, &format!("E2E-HOSTILE-{}", now()))
        .await;
    let plan = s.create_plan(&setup.stage);
    let challenge = s.challenge(&plan);
    let cases = hostile_responses(&device, &challenge);
    for (what, response) in cases {
        let (status, body) = s.post_executor(&plan, Some(&response));
        assert_contract(&what, status, &body);
        assert_ne!(
            body["component"], "xak-flow-redirect",
            "{what} passed the stage"
        );
    }
    // Ten invalid responses spent the plan's ten challenges: it is denied, never passed.
    let state = s.plan(&plan);
    assert_eq!(
        (state["status"].as_str(), &state["device"]),
        (Some("denied"), &Value::Null)
    );
    assert_eq!(s.get_executor(&plan).1, denied("Too many attempts"));
}

/// A hostile request: (what, method, path, headers, body).
type Case = (
    &'static str,
    &'static str,
    String,
    Vec<&'static str>,
    Vec<u8>,
);

/// Hostile bodies for plan creation on `stage`.
fn plan_creation_cases(stage: &str) -> Vec<Case> {
    let json_ct = "content-type: application/json";
    vec![
        (
            "number stage",
            "POST",
            "/v1/plans".into(),
            vec![json_ct],
            br#"{"stage":5}"#.to_vec(),
        ),
        (
            "huge string",
            "POST",
            "/v1/plans".into(),
            vec![json_ct],
            format!(r#"{{"stage":"{}"}}"#, "s".repeat(30_000)).into_bytes(),
        ),
        (
            "huge redirect",
            "POST",
            "/v1/plans".into(),
            vec![json_ct],
            format!(
                r#"{{"stage":"{}","redirect":"/{}"}}"#,
                stage,
                "r".repeat(5000)
            )
            .into_bytes(),
        ),
    ]
}

/// Hostile requests on the executor of `plan` and on plan creation for `stage`.
fn hostile_cases(stage: &str, plan: &str) -> Vec<Case> {
    let json_ct = "content-type: application/json";
    let deep = format!("{{\"response\":{}{}}}", "[".repeat(5000), "]".repeat(5000));
    let executor = format!("/v1/plans/{plan}/executor");
    let long_id = format!("/v1/plans/{}/executor", "p".repeat(8000));
    let mut cases = vec![
        (
            "deep nesting",
            "POST",
            executor.clone(),
            vec![json_ct],
            deep.into_bytes(),
        ),
        (
            "invalid UTF-8",
            "POST",
            executor.clone(),
            vec!["content-type: application/octet-stream"],
            vec![0xff, 0xfe, b'{', 0xc3],
        ),
        (
            "extra fields",
            "POST",
            executor.clone(),
            vec![json_ct],
            br#"{"component":"ak-stage-endpoint-agent","response":null,"extra":{"x":1}}"#.to_vec(),
        ),
        (
            "wrong component",
            "POST",
            executor.clone(),
            vec![json_ct],
            br#"{"component":"xak-flow-redirect","response":null}"#.to_vec(),
        ),
        ("long plan id", "GET", long_id, vec![], vec![]),
        (
            "odd plan id",
            "GET",
            "/v1/plans/%00%2F..%2F/executor".into(),
            vec![],
            vec![],
        ),
        (
            "DTH garbage",
            "GET",
            executor.clone(),
            vec!["X-Authentik-Platform-Auth-DTH: zz<script>../../"],
            vec![],
        ),
        (
            "long Authorization",
            "GET",
            "/api/v3/endpoints/agents/connectors/agent_config/".into(),
            vec![],
            vec![],
        ),
    ];
    cases.extend(plan_creation_cases(stage));
    cases
}

/// Odd Authorization headers on agent_config/: 401 or 403 in the contract's shape.
fn odd_authorizations(s: &Stack) {
    for auth in [
        "Authorization: Bearer+agent a b c",
        "Authorization: Bearer+agentx",
        "Authorization: bearer+agent x",
        "Authorization: Bearer+agent \u{e9}t\u{e9}",
    ] {
        let (status, answer) = raw(
            &s.api,
            "GET",
            "/api/v3/endpoints/agents/connectors/agent_config/",
            &[auth],
            b"",
        );
        assert_contract(auth, status, &answer);
        assert!(status == 401 || status == 403, "{auth}: {status}");
    }
}

#[tokio::test]
async fn hostile_bodies_headers_and_paths() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    let plan = s.create_plan(&setup.stage);
    let cases = hostile_cases(&setup.stage, &plan);
    let long_auth = format!("Authorization: Bearer+agent {}", "a".repeat(10_000));
    for (what, method, path, mut headers, body) in cases {
        if what == "long Authorization" {
            headers.push(&long_auth);
        }
        let (status, answer) = raw(&s.api, method, &path, &headers, &body);
        assert_contract(what, status, &answer);
    }
    odd_authorizations(&s);
    // The one well-formed body ("extra fields", response null) denied the required stage.
    assert_eq!(s.plan(&plan)["status"], "denied");
}
