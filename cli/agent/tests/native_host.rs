//! `endpoint-agent native-host` as the browser runs it: started with the extension's origin as
//! its argument, framed JSON on stdin/stdout. Hostile input gets an error answer or a clean exit,
//! never a crash or a hang. (The whole browser path is tests/browser, in Chromium.)

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn frame(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u32).to_ne_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// Runs the host on `input` (then closes stdin); its answers and exit status, within 10 s.
fn host(input: &[u8]) -> (Vec<Value>, bool) {
    let dir = std::env::temp_dir().join(format!("native-host-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_endpoint-agent"))
        .arg("--state")
        .arg(dir.join("missing.json"))
        .args([
            "native-host",
            "chrome-extension://cpiflbgjplcglpcioajoollfokliibgn/",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the host hangs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let mut rest = out.stdout.as_slice();
    let mut answers = Vec::new();
    while rest.len() >= 4 {
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        answers.push(serde_json::from_slice(&rest[4..4 + len]).unwrap());
        rest = &rest[4 + len..];
    }
    assert!(rest.is_empty(), "stdout holds only frames");
    (answers, out.status.success())
}

#[test]
fn the_host_answers_ping_and_refuses_what_it_cannot_do() {
    let mut input =
        frame(br#"{"version":"1","path":"ping","profile":"default","id":"p1","data":{}}"#);
    input.extend(frame(b"\xff\xfe not json"));
    input.extend(frame(
        br#"{"version":"1","path":"platform_sign_endpoint_header","profile":"default","id":"s1","data":{"challenge":"a.b.c"}}"#,
    ));
    let (answers, ok) = host(&input);
    assert!(ok);
    assert_eq!(
        answers[0],
        json!({"response_to": "p1", "successful": true, "data": {"ping": "pong"}})
    );
    assert_eq!(answers[1]["successful"], false);
    assert_eq!(answers[2]["response_to"], "s1");
    assert_eq!(
        answers[2]["successful"], false,
        "not enrolled: no signature"
    );
    assert_eq!(answers.len(), 3);
}

#[test]
fn an_oversized_or_truncated_frame_ends_the_host_without_a_hang() {
    let (answers, ok) = host(&u32::MAX.to_ne_bytes());
    assert!(!ok);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0]["successful"], false);
    let (answers, ok) = host(&frame(br#"{"version":"1"}"#)[..9]);
    assert!(!ok && answers.is_empty());
}
