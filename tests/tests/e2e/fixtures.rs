//! The event fixtures in events/ are valid events for their functions: each is invoked with
//! `cargo lambda invoke --data-file` against the running stack and answers as documented.

use serde_json::Value;

#[test]
fn every_event_fixture_invokes_its_function() {
    let api =
        std::env::var("ENDPOINT_API").expect("run through `make test` (scripts/stack-lib.sh)");
    let port = api.rsplit(':').next().unwrap();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    for (file, function, status, error) in [
        ("plans-create", "plans", 404, "not_found"),
        ("plans-read", "plans", 404, "not_found"),
        ("executor-get", "challenge", 404, "not_found"),
        ("executor-post", "response", 404, "not_found"),
        ("jwks", "jwks", 404, "not_found"),
        ("agent-config", "agent", 403, "forbidden"),
        ("fallback", "fallback", 404, "not_found"),
    ] {
        let out = std::process::Command::new("cargo")
            .current_dir(root)
            .args([
                "lambda",
                "invoke",
                function,
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
                port,
            ])
            .args([
                "--data-file",
                &format!("events/{file}.json"),
                "--output-format",
                "json",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reply: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{file}: {e}: {}", String::from_utf8_lossy(&out.stdout)));
        assert_eq!(reply["statusCode"], status, "{file}: {reply}");
        let body: Value = serde_json::from_str(reply["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["error"], error, "{file}: {body}");
    }
}
