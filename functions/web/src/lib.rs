//! The browser's routes (public): `GET /v1/plans/{plan}/page`, the hosted stage page, and
//! `GET /v1/stage.js`, the dependency-free ES module that page runs and that relying parties
//! can import into their own login pages (`runStage({api, plan, onStatus})`).
//!
//! The page carries no inline script (its data travels in attributes) and a strict
//! Content-Security-Policy: scripts and connections only to this origin, its one inline style
//! allowed by hash, no framing, no base or form targets. No referrer (the plan id in the URL
//! is a capability) and no caching. An unknown or expired plan gets a readable HTML page.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use endpoint_core::edge::routes;
use endpoint_core::edge::{self, Base};
use endpoint_core::edge::{Answer, Label};
use endpoint_core::edge::{Document, Reply};
use endpoint_core::ports::PlanStore;
use endpoint_core::{stage, CoreError};
use lambda_http::Request;
use sha2::{Digest, Sha256};

/// The stage module, served as-is.
pub const STAGE_JS: &str = include_str!("../assets/stage.js");
/// The page's only style, inline and allowed by its hash.
pub const PAGE_CSS: &str = include_str!("../assets/page.css");
/// Where the page loads the module from.
pub const MODULE_PATH: &str = routes::STAGE_MODULE.template;

pub struct App<S> {
    pub base: Base,
    pub store: S,
    csp: String,
}

/// The page's Content-Security-Policy, with the hash of its inline style.
pub fn content_security_policy(css: &str) -> String {
    let hash = STANDARD.encode(Sha256::digest(css.as_bytes()));
    format!(
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'sha256-{hash}'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// `&`, `<`, `>`, `"` and `'` as entities: safe in text and in quoted attributes.
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

fn html(title: &str, main: &str, script: bool) -> String {
    let module = if script {
        format!("<script type=\"module\" src=\"{MODULE_PATH}\"></script>\n")
    } else {
        String::new()
    };
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"referrer\" content=\"no-referrer\">\n<title>{}</title>\n<style>{PAGE_CSS}</style>\n{module}</head>\n<body>\n{main}</body>\n</html>\n",
        escape(title)
    )
}

/// The hosted stage page of `plan`.
pub fn stage_page(plan: &str) -> String {
    let main = format!(
        "<main data-endpoint-stage data-plan=\"{}\" data-api=\"\">\n<h1>Device check</h1>\n<p data-stage-status role=\"status\" aria-live=\"polite\">Checking this device…</p>\n<ul data-stage-errors hidden></ul>\n<button type=\"button\" data-stage-retry hidden>Try again</button>\n<p class=\"hint\">This sign-in checks that you are on an enrolled device, through the authentik browser extension and agent.</p>\n<noscript><p>This check needs JavaScript. Turn it on and reload the page.</p></noscript>\n</main>\n",
        escape(plan)
    );
    html("Device check", &main, true)
}

/// A readable HTML error page (no script).
pub fn error_page(heading: &str, text: &str) -> String {
    let main = format!(
        "<main data-state=\"error\">\n<h1>{}</h1>\n<p role=\"alert\">{}</p>\n</main>\n",
        escape(heading),
        escape(text)
    );
    html(heading, &main, false)
}

impl<S: PlanStore> App<S> {
    pub fn new(base: Base, store: S) -> Self {
        App {
            base,
            store,
            csp: content_security_policy(PAGE_CSS),
        }
    }

    pub async fn handle(&self, req: Request) -> Answer {
        match edge::route(&req, &[routes::STAGE_MODULE, routes::STAGE_PAGE]) {
            Ok((route, _)) if route == routes::STAGE_MODULE => (module_reply(), Label::Module),
            Ok((_, v)) => self.page(v[0]).await,
            Err(reply) => *reply,
        }
    }

    fn page_reply(&self, status: u16, text: String) -> Reply {
        Reply::document(
            status,
            Document {
                content_type: "text/html; charset=utf-8",
                text,
                headers: vec![
                    ("content-security-policy", self.csp.clone()),
                    ("x-frame-options", "DENY".into()),
                    ("referrer-policy", "no-referrer".into()),
                    ("x-content-type-options", "nosniff".into()),
                    ("cache-control", "no-store".into()),
                ],
            },
        )
    }

    async fn page(&self, plan: &str) -> Answer {
        // The plan must exist and be unexpired; whatever its status, the page runs the stage
        // (a finished plan answers its final outcome again).
        match stage::read_plan(&self.store, &self.base.clock, plan).await {
            Ok(plan) => (self.page_reply(200, stage_page(&plan.id)), Label::Page),
            Err(CoreError::NotFound(_)) => (
                self.page_reply(
                    404,
                    error_page(
                        "This sign-in link has expired",
                        "The device check for this sign-in does not exist or has expired. Go back to the site you came from and sign in again.",
                    ),
                ),
                Label::NotFound,
            ),
            Err(e) => {
                let (reply, label) = edge::failed(&e);
                let page = self.page_reply(
                    reply.status,
                    error_page(
                        "The device check is unavailable",
                        "The sign-in service could not be reached just now. Wait a moment, then reload this page.",
                    ),
                );
                (page, label)
            }
        }
    }
}

fn module_reply() -> Reply {
    Reply::document(
        200,
        Document {
            content_type: "text/javascript; charset=utf-8",
            text: STAGE_JS.to_string(),
            headers: vec![
                ("x-content-type-options", "nosniff".into()),
                ("cache-control", "public, max-age=300".into()),
            ],
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_no_inline_script_and_escapes_its_data() {
        let page = stage_page("abc\"<x>");
        assert!(page.contains("data-plan=\"abc&quot;&lt;x&gt;\""));
        assert!(!page.contains("abc\"<x>"));
        assert_eq!(page.matches("<script").count(), 1);
        assert!(page.contains("<script type=\"module\" src=\"/v1/stage.js\"></script>"));
        assert!(page.contains("role=\"status\" aria-live=\"polite\""));
        let error = error_page("T", "<b>");
        assert!(!error.contains("<script") && error.contains("&lt;b&gt;"));
    }

    #[test]
    fn the_policy_allows_exactly_the_inline_style_it_ships() {
        let csp = content_security_policy(PAGE_CSS);
        let hash = STANDARD.encode(Sha256::digest(PAGE_CSS.as_bytes()));
        assert!(csp.contains(&format!("style-src 'sha256-{hash}'")));
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ] {
            assert!(csp.contains(directive), "{directive}");
        }
        assert!(!csp.contains("unsafe"));
    }

    #[test]
    fn the_module_exports_run_stage() {
        assert!(STAGE_JS.contains("export async function runStage("));
        let imports = STAGE_JS
            .lines()
            .filter(|l| l.trim_start().starts_with("import ") || l.contains("import("))
            .count();
        assert_eq!(imports, 0, "dependency-free");
    }
}
