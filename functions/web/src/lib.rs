//! The browser's routes (public): `GET /v1/plans/{plan}/page`, the hosted stage page, and
//! `GET /v1/stage.js`, the dependency-free ES module that page runs and that relying parties
//! can import into their own login pages (`runStage({api, plan, onStatus})`).
//!
//! The page carries no inline script (its data travels in attributes) and a strict
//! Content-Security-Policy: scripts and connections only to this origin, its one inline style
//! allowed by hash, no framing, no base or form targets. No referrer (the plan id in the URL
//! is a capability) and no caching. An unknown or expired plan gets a readable HTML page.

use std::sync::LazyLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use endpoint_core::edge::routes::{self, WebRoute};
use endpoint_core::edge::{self, Base};
use endpoint_core::edge::{Answer, Label};
use endpoint_core::edge::{Document, Reply};
use endpoint_core::model::{Plan, StageHelp};
use endpoint_core::ports::PlanStore;
use endpoint_core::{stage, CoreError};
use lambda_http::Request;
use sha2::{Digest, Sha256};

pub mod i18n;

use i18n::text;

/// The stage module's source (its catalogues not yet filled in).
pub const STAGE_JS: &str = include_str!("../assets/stage.js");
/// Where the module's source takes the catalogues.
pub const CATALOGUES_SLOT: &str = "/* endpoint-stage:catalogues */ {}";
/// The page's only style, inline and allowed by its hash.
pub const PAGE_CSS: &str = include_str!("../assets/page.css");
/// Where the page loads the module from.
pub const MODULE_PATH: &str = routes::STAGE_MODULE.template;

/// The module as served in each language of [`i18n::LANGUAGES`]: its source with that
/// language's catalogue and English inlined (built once per cold start).
static STAGE_MODULES: LazyLock<Vec<String>> = LazyLock::new(|| {
    i18n::LANGUAGES
        .iter()
        .map(|lang| STAGE_JS.replacen(CATALOGUES_SLOT, &i18n::as_json(lang), 1))
        .collect()
});

/// The module for a request that asks for `lang`.
pub fn stage_module(lang: &str) -> &'static str {
    let i = i18n::LANGUAGES.iter().position(|l| *l == lang).unwrap_or(0);
    &STAGE_MODULES[i]
}

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

fn html(lang: &str, title: &str, main: &str, script: bool) -> String {
    let module = if script {
        format!("<script type=\"module\" src=\"{MODULE_PATH}\"></script>\n")
    } else {
        String::new()
    };
    format!(
        "<!doctype html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"referrer\" content=\"no-referrer\">\n<title>{}</title>\n<style>{PAGE_CSS}</style>\n{module}</head>\n<body>\n{main}</body>\n</html>\n",
        escape(title)
    )
}

/// The operator's help, hidden until a denial shows it (their words, as written).
fn help_section(lang: &str, help: Option<&StageHelp>) -> String {
    let Some(help) = help.filter(|h| !h.is_empty()) else {
        return String::new();
    };
    let mut inner = String::new();
    if let Some(t) = &help.text {
        inner.push_str(&format!("<p class=\"help-text\">{}</p>\n", escape(t)));
    }
    if let Some(u) = &help.url {
        inner.push_str(&format!(
            "<p><a href=\"{}\" rel=\"noreferrer\">{}</a></p>\n",
            escape(u),
            escape(text(lang, "help_link"))
        ));
    }
    format!(
        "<section data-stage-help hidden aria-labelledby=\"stage-help\">\n<h2 id=\"stage-help\">{}</h2>\n{inner}</section>\n",
        escape(text(lang, "help_heading"))
    )
}

/// Where "Back to sign-in" leads for `plan` (`data-back`, `data-back-kind`): a relying party's
/// plan goes back to its redirect with `device_check=<reason>` (added by `stage.js`); a plan of
/// the OpenID provider (kind `oidc`) to its resume route as it is, which answers the client's
/// `redirect_uri` with `error=access_denied` and the `state` (which the page never sees).
fn back_attributes(plan: &Plan) -> String {
    let kind = if plan.oidc.is_some() { "oidc" } else { "plan" };
    format!(
        "data-back=\"{}\" data-back-kind=\"{kind}\"",
        escape(&plan.redirect)
    )
}

/// The hosted stage page of `plan`, in `lang` (one of [`i18n::LANGUAGES`]).
pub fn stage_page(plan: &Plan, lang: &str) -> String {
    let main = format!(
        "<main data-endpoint-stage data-plan=\"{plan_id}\" data-api=\"\" {back}>\n<h1>{title}</h1>\n<div data-stage-status role=\"status\" aria-live=\"polite\" aria-atomic=\"true\">\n<p data-stage-title>{checking}</p>\n<p data-stage-explain hidden></p>\n</div>\n<ul data-stage-errors hidden></ul>\n{help}<div class=\"actions\">\n<button type=\"button\" data-stage-retry hidden>{retry}</button>\n<a data-stage-back hidden>{back_label}</a>\n</div>\n<p class=\"hint\">{intro}</p>\n<noscript><p>{noscript}</p></noscript>\n</main>\n",
        plan_id = escape(&plan.id),
        back = back_attributes(plan),
        title = escape(text(lang, "title")),
        checking = escape(text(lang, "status_loading")),
        help = help_section(lang, plan.config.help.as_ref()),
        retry = escape(text(lang, "try_again")),
        back_label = escape(text(lang, "back")),
        intro = escape(text(lang, "intro")),
        noscript = escape(text(lang, "noscript")),
    );
    html(lang, text(lang, "title"), &main, true)
}

/// A readable HTML error page (no script); `retry`: with a "Try again" link that reloads it.
pub fn error_page(lang: &str, heading: &str, body: &str, retry: bool) -> String {
    let again = if retry {
        format!(
            "<div class=\"actions\">\n<a href=\"\" data-stage-retry>{}</a>\n</div>\n",
            escape(text(lang, "try_again"))
        )
    } else {
        String::new()
    };
    let main = format!(
        "<main data-state=\"error\">\n<h1>{}</h1>\n<p role=\"alert\">{}</p>\n{again}</main>\n",
        escape(heading),
        escape(body)
    );
    html(lang, heading, &main, false)
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
        let (route, v) = match edge::route::<WebRoute>(&req) {
            Ok(route) => route,
            Err(reply) => return *reply,
        };
        let lang = i18n::negotiate(edge::header(&req, "accept-language"));
        match route {
            WebRoute::StageModule => (module_reply(lang), Label::Module),
            WebRoute::StagePage => {
                // Another region's plan: its page is at its home region.
                if let Err(answer) = edge::at_home(&self.base.config, &req, v[0]) {
                    return *answer;
                }
                self.page(v[0], lang).await
            }
        }
    }

    fn page_reply(&self, status: u16, lang: &str, text: String) -> Reply {
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
                    ("content-language", lang.into()),
                    ("vary", "Accept-Language".into()),
                ],
            },
        )
    }

    async fn page(&self, plan: &str, lang: &str) -> Answer {
        // The plan must exist and be unexpired; whatever its status, the page runs the stage
        // (a finished plan answers its final outcome again).
        match stage::read_plan(&self.store, &self.base.clock, plan).await {
            Ok(plan) => (
                self.page_reply(200, lang, stage_page(&plan, lang)),
                Label::Page,
            ),
            Err(CoreError::NotFound(_)) => (
                self.page_reply(
                    404,
                    lang,
                    error_page(
                        lang,
                        text(lang, "expired_title"),
                        text(lang, "expired_text"),
                        false,
                    ),
                ),
                Label::NotFound,
            ),
            Err(e) => {
                let (reply, label) = edge::failed(&e);
                let page = self.page_reply(
                    reply.status,
                    lang,
                    error_page(
                        lang,
                        text(lang, "unavailable_title"),
                        text(lang, "unavailable_text"),
                        true,
                    ),
                );
                (page, label)
            }
        }
    }
}

fn module_reply(lang: &str) -> Reply {
    Reply::document(
        200,
        Document {
            content_type: "text/javascript; charset=utf-8",
            text: stage_module(lang).to_string(),
            headers: vec![
                ("x-content-type-options", "nosniff".into()),
                ("cache-control", "public, max-age=300".into()),
                ("content-language", lang.into()),
                ("vary", "Accept-Language".into()),
            ],
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(redirect: &str, help: Option<StageHelp>) -> Plan {
        let config = endpoint_core::model::StageSnapshot {
            mode: endpoint_core::model::StageMode::Required,
            connector: "c".into(),
            enabled: true,
            challenge_key: Some("k".into()),
            challenge_idle_timeout: 3,
            challenge_trigger_check_in: false,
            policy: None,
            help,
        };
        Plan::pending("abc\"<x>", "s", config, redirect, 0, 100)
    }

    #[test]
    fn the_page_has_no_inline_script_and_escapes_its_data() {
        let page = stage_page(&plan("/next?a=1&b=\"2\"", None), "en");
        assert!(page.contains("data-plan=\"abc&quot;&lt;x&gt;\""));
        assert!(!page.contains("abc\"<x>"));
        assert!(
            page.contains("data-back=\"/next?a=1&amp;b=&quot;2&quot;\" data-back-kind=\"plan\"")
        );
        assert_eq!(page.matches("<script").count(), 1);
        assert!(page.contains("<script type=\"module\" src=\"/v1/stage.js\"></script>"));
        assert!(page.contains("role=\"status\" aria-live=\"polite\" aria-atomic=\"true\""));
        assert!(page.contains("<html lang=\"en\">"));
        // No help set: no help section.
        assert!(!page.contains("<section data-stage-help"));
        let error = error_page("en", "T", "<b>", false);
        assert!(!error.contains("<script") && error.contains("&lt;b&gt;"));
        assert!(!error.contains("data-stage-retry"));
        assert!(error_page("en", "T", "x", true)
            .contains("<a href=\"\" data-stage-retry>Try again</a>"));
    }

    #[test]
    fn the_page_speaks_the_negotiated_language_and_shows_the_help_as_written() {
        let help = StageHelp {
            text: Some("Call <IT> & ask".into()),
            url: Some("https://help.example.com/?a=1&b=2".into()),
        };
        let page = stage_page(&plan("/", Some(help)), "de");
        assert!(page.contains("<html lang=\"de\">"));
        assert!(page.contains("<title>Geräteprüfung</title>"));
        assert!(page.contains(">Zurück zur Anmeldung</a>"));
        assert!(page.contains(">Erneut versuchen</button>"));
        assert!(page.contains("<section data-stage-help hidden aria-labelledby=\"stage-help\">"));
        assert!(page.contains("<p class=\"help-text\">Call &lt;IT&gt; &amp; ask</p>"));
        assert!(page.contains("href=\"https://help.example.com/?a=1&amp;b=2\""));
        assert!(page.contains(">Hilfe erhalten</a>"));
        let page = stage_page(&plan("/", None), "zh-Hans");
        assert!(page.contains("<html lang=\"zh-Hans\">") && page.contains("设备检查"));
    }

    #[test]
    fn the_served_module_carries_its_language_and_english() {
        assert_eq!(STAGE_JS.matches(CATALOGUES_SLOT).count(), 1);
        for lang in i18n::LANGUAGES {
            let module = stage_module(lang);
            assert!(!module.contains(CATALOGUES_SLOT));
            assert!(module.contains(&format!("\"{lang}\":{{")), "{lang}");
            assert!(module.contains("\"en\":{"), "{lang}");
            assert!(module.len() < 32 * 1024, "{lang}: {} bytes", module.len());
        }
        assert!(stage_module("ja").contains("\"try_again\":\"再試行\""));
        assert!(!stage_module("ja").contains("\"de\":{"));
        assert_eq!(stage_module("xx"), stage_module("en"));
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
