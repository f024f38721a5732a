//! The hosted page for people over HTTP: the executor's `reason` beside authentik's fields, the
//! page in the language `Accept-Language` asks for, the operator's help (set by the real
//! `endpoint-admin`, carried by the plan through DynamoDB), and the module with its catalogues.

use endpoint_core::model::StageMode;
use endpoint_e2e::{is_retry, Stack};
use serde_json::json;

/// GET by curl: status, headers (lowercase names) and body text.
fn get_text(url: &str, accept_language: Option<&str>) -> (u16, String, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "-i"]);
    if let Some(l) = accept_language {
        cmd.args(["-H", &format!("accept-language: {l}")]);
    }
    let out = cmd.arg(url).output().expect("curl runs");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test]
async fn denials_and_refusals_carry_their_reason_beside_authentiks_fields() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    let plan = s.create_plan(&setup.stage);
    s.challenge(&plan);
    // A malformed answer: a new challenge with authentik's response_errors, and why.
    let (_, out) = s.post_executor(&plan, Some("not.a.response"));
    assert!(is_retry(&out), "{out}");
    assert_eq!(out["reason"], "invalid_response");
    // No answer: the denial says so, and says it again when asked again.
    let (_, out) = s.post_executor(&plan, None);
    let want = json!({"component": "ak-stage-access-denied", "error_message": "Invalid challenge response", "reason": "no_response"});
    assert_eq!(out, want);
    assert_eq!(s.get_executor(&plan).1, want);
}

#[tokio::test]
async fn the_page_speaks_the_browsers_language_and_carries_the_stage_help() {
    let s = Stack::connect().await;
    let setup = s.setup(StageMode::Required, true, true).await;
    let shown = s.admin_json(&[
        "stage",
        "set-help",
        &setup.stage,
        "--text",
        "Call <IT> on 1234",
        "--url",
        "https://help.example.com/x?a=1&b=2",
    ]);
    assert_eq!(
        shown["help"],
        json!({"text": "Call <IT> on 1234", "url": "https://help.example.com/x?a=1&b=2"})
    );
    let plan = s.create_plan(&setup.stage);
    let page = format!("{}/v1/plans/{plan}/page", s.api);

    let (status, head, body) = get_text(&page, Some("fr-CH, de;q=0.9, en;q=0.5"));
    assert_eq!(status, 200);
    assert!(head.contains("content-language: fr"), "{head}");
    assert!(head.contains("vary: accept-language"), "{head}");
    assert!(body.contains("<html lang=\"fr\">"));
    assert!(body.contains("<title>Vérification de l&#39;appareil</title>"));
    assert!(body.contains("<p class=\"help-text\">Call &lt;IT&gt; on 1234</p>"));
    assert!(body.contains("href=\"https://help.example.com/x?a=1&amp;b=2\""));
    assert!(body.contains("data-back=\"/next\" data-back-kind=\"plan\""));

    let (_, _, body) = get_text(&page, Some("zh-CN,zh;q=0.9"));
    assert!(body.contains("<html lang=\"zh-Hans\">") && body.contains("返回登录"));
    // No header, or only languages without a catalogue: English.
    for header in [None, Some("nl-NL, sv;q=0.8")] {
        let (_, _, body) = get_text(&page, header);
        assert!(body.contains("<html lang=\"en\">"), "{header:?}");
        assert!(body.contains(">Back to sign-in</a>"));
    }
    // An unknown plan: the readable error page, in the person's language too.
    let (status, _, body) = get_text(&format!("{}/v1/plans/NoSuchPlan/page", s.api), Some("ja"));
    assert_eq!(status, 404);
    assert!(body.contains("<html lang=\"ja\">") && body.contains("有効期限"));
}

#[tokio::test]
async fn the_module_is_served_with_the_catalogue_of_the_language_asked_for() {
    let s = Stack::connect().await;
    let module = format!("{}/v1/stage.js", s.api);
    for (header, lang) in [
        (None, "en"),
        (Some("ja-JP,ja;q=0.9"), "ja"),
        (Some("pt-BR"), "pt"),
    ] {
        let (status, head, body) = get_text(&module, header);
        assert_eq!(status, 200);
        assert!(head.contains("content-type: text/javascript"), "{head}");
        assert!(
            head.contains(&format!("content-language: {lang}")),
            "{head}"
        );
        assert!(head.contains("vary: accept-language"), "{head}");
        assert!(!body.contains("/* endpoint-stage:catalogues */"));
        assert!(
            body.contains(&format!("\"{lang}\":{{")) && body.contains("\"en\":{"),
            "{lang}"
        );
        assert!(
            !body.contains("\"de\":{"),
            "{lang}: only its own catalogue and English"
        );
    }
}
