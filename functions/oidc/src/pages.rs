//! The provider's HTML: the error page (status 400, never a redirect) and the auto-submitting
//! form of OAuth 2.0 Form Post Response Mode, each with a strict CSP.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use endpoint_core::edge::{Document, Reply};
use sha2::{Digest, Sha256};

/// The one script of the form post page: submit the form as soon as it is parsed.
const SUBMIT_SCRIPT: &str = "document.forms[0].submit();";

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn headers(csp: String) -> Vec<(&'static str, String)> {
    vec![
        ("content-security-policy", csp),
        ("x-frame-options", "DENY".into()),
        ("referrer-policy", "no-referrer".into()),
        ("x-content-type-options", "nosniff".into()),
        ("cache-control", "no-store".into()),
    ]
}

fn html(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"referrer\" content=\"no-referrer\">\n<title>{}</title>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(title)
    )
}

/// An error page with `status`: what went wrong, in one sentence; no link anywhere.
pub fn error_page(status: u16, message: &str) -> Reply {
    let body = format!(
        "<main data-oidc-error>\n<h1>This sign-in cannot continue</h1>\n<p>{}</p>\n</main>\n",
        escape(message)
    );
    Reply::document(
        status,
        Document {
            content_type: "text/html; charset=utf-8",
            text: html("Sign-in error", &body),
            headers: headers(
                "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
                    .into(),
            ),
        },
    )
}

/// The origin of `url` for a CSP `form-action` (`'none'` if it has none).
fn origin_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => "'none'".into(),
    }
}

/// The form POST of `fields` to `action`, submitted by the page's one script (its hash is the
/// only script the CSP allows), or by the person where scripts do not run.
pub fn form_post(action: &str, fields: &[(String, String)]) -> Reply {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                escape(k),
                escape(v)
            )
        })
        .collect();
    let body = format!(
        "<form method=\"post\" action=\"{}\">\n{inputs}<noscript><button type=\"submit\">Continue</button></noscript>\n</form>\n<script>{SUBMIT_SCRIPT}</script>\n",
        escape(action)
    );
    let hash = STANDARD.encode(Sha256::digest(SUBMIT_SCRIPT.as_bytes()));
    let csp = format!(
        "default-src 'none'; script-src 'sha256-{hash}'; form-action {}; base-uri 'none'; frame-ancestors 'none'",
        origin_of(action)
    );
    Reply::document(
        200,
        Document {
            content_type: "text/html; charset=utf-8",
            text: html("Continuing sign-in", &body),
            headers: headers(csp),
        },
    )
}

/// A `303 See Other` to `location` (the browser follows it with a GET).
pub fn see_other(location: &str) -> Reply {
    Reply::document(
        303,
        Document {
            content_type: "text/plain; charset=utf-8",
            text: String::new(),
            headers: vec![
                ("location", location.to_string()),
                ("referrer-policy", "no-referrer".into()),
                ("cache-control", "no-store".into()),
            ],
        },
    )
}

/// A JSON body with extra headers (the token and userinfo endpoints' errors, discovery with
/// its `Content-Length`).
pub fn json(status: u16, body: &serde_json::Value, extra: Vec<(&'static str, String)>) -> Reply {
    let text = body.to_string();
    let mut headers = vec![("content-length", text.len().to_string())];
    headers.extend(extra);
    Reply::document(
        status,
        Document {
            content_type: "application/json",
            text,
            headers,
        },
    )
}
