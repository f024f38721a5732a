//! Where a plan may send the browser when the stage passes, checked with a WHATWG URL parser
//! (the `url` crate: the same parsing browsers apply, so what is checked is what is followed).
//!
//! A stage either has registered origins (`stage create --redirect-origin`, `stage
//! set-redirect-origins`): a redirect is then an absolute URL on one of them, or a path, which
//! is resolved against the first; or it has none: a path (resolved by the page that runs the
//! stage) or a loopback URL for development. A stage stored before origins existed keeps the
//! older rule (a path, an `https:` URL, `http:` only for loopback hosts) until origins are
//! registered for it. Userinfo (`user@host`), other schemes, whitespace, control characters
//! and backslashes are refused everywhere.

use std::net::{Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::error::CoreError;
use crate::model::Stage;

/// Longest accepted plan redirect (and registered origin).
pub const MAX_REDIRECT_LEN: usize = 2048;
/// Most origins one stage may register.
pub const MAX_ORIGINS: usize = 20;

/// What a stage allows a plan to redirect to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectRule<'a> {
    /// A stage stored before origins existed: a path, an `https:` URL, `http:` on loopback.
    Legacy,
    /// A stage with its registered origins (none: a path or a loopback URL only).
    Origins(&'a [String]),
}

impl<'a> RedirectRule<'a> {
    /// What the plans of `stage` may redirect to.
    pub fn of(stage: &'a Stage) -> Self {
        match &stage.redirect_origins {
            None => RedirectRule::Legacy,
            Some(origins) => RedirectRule::Origins(origins),
        }
    }
}

/// The redirect a plan stores: `redirect` checked against `rule`, and with registered origins a
/// path resolved against the first one. An absolute URL is stored as the parser serializes it
/// (an IDN host in its ASCII form).
pub fn plan_redirect(redirect: &str, rule: RedirectRule<'_>) -> Result<String, CoreError> {
    let refused = || CoreError::BadRequest(refusal(rule));
    if !plain_text(redirect) {
        return Err(refused());
    }
    if redirect.starts_with('/') {
        if redirect.starts_with("//") || !stays_on_origin(redirect) {
            return Err(refused());
        }
        return match rule {
            RedirectRule::Origins([first, ..]) => Url::parse(first)
                .and_then(|base| base.join(redirect))
                .map(String::from)
                .map_err(|_| refused()),
            _ => Ok(redirect.to_string()),
        };
    }
    let url = web_url(redirect).ok_or_else(refused)?;
    let allowed = match rule {
        RedirectRule::Origins(origins) if !origins.is_empty() => {
            let origin = url.origin().ascii_serialization();
            origins.contains(&origin)
        }
        RedirectRule::Origins(_) => is_loopback(&url),
        RedirectRule::Legacy => url.scheme() == "https" || is_loopback(&url),
    };
    if allowed {
        Ok(url.into())
    } else {
        Err(refused())
    }
}

/// A registered origin in its canonical form (`https://rp.example`, `http://localhost:8080`):
/// scheme, host and port only; `https:`, or `http:` for a loopback host.
pub fn parse_origin(origin: &str) -> Result<String, CoreError> {
    let refused = || {
        CoreError::BadRequest(format!(
            "{origin:?} is not an origin: scheme, host and optional port, like https://app.example.com (http: only for localhost, 127.0.0.1 or [::1])"
        ))
    };
    if !plain_text(origin) {
        return Err(refused());
    }
    let url = web_url(origin).ok_or_else(refused)?;
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    let secure = url.scheme() == "https" || is_loopback(&url);
    if !bare || !secure || origin.ends_with('#') || origin.ends_with('?') {
        return Err(refused());
    }
    Ok(url.origin().ascii_serialization())
}

/// Canonical, unique origins for a stage (at most [`MAX_ORIGINS`]).
pub fn parse_origins(origins: &[String]) -> Result<Vec<String>, CoreError> {
    if origins.len() > MAX_ORIGINS {
        return Err(CoreError::BadRequest(format!(
            "a stage registers at most {MAX_ORIGINS} origins"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(origins.len());
    for o in origins {
        let o = parse_origin(o)?;
        if !out.contains(&o) {
            out.push(o);
        }
    }
    Ok(out)
}

/// The refusal's sentence for `rule`.
fn refusal(rule: RedirectRule<'_>) -> String {
    let what = match rule {
        RedirectRule::Legacy => {
            "a path starting with / or an https: URL (http: only for localhost, 127.0.0.1 or [::1])"
                .to_string()
        }
        RedirectRule::Origins([]) => "a path starting with / or a URL on localhost, 127.0.0.1 or [::1] (register the site's origin with endpoint-admin stage set-redirect-origins to redirect to it)".to_string(),
        RedirectRule::Origins(origins) => format!(
            "a path starting with / or a URL on one of the stage's origins ({})",
            origins.join(", ")
        ),
    };
    format!(
        "redirect must be {what}, without user information, at most {MAX_REDIRECT_LEN} characters"
    )
}

/// Non-empty, bounded, and free of what parsers silently drop or reinterpret (whitespace,
/// control characters) and of backslashes (which WHATWG parsing turns into slashes).
fn plain_text(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_REDIRECT_LEN
        && !s
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
}

/// An absolute `http:`/`https:` URL with a host and no userinfo.
fn web_url(s: &str) -> Option<Url> {
    let url = Url::parse(s).ok()?;
    let web = matches!(url.scheme(), "http" | "https");
    let userinfo = !url.username().is_empty() || url.password().is_some() || s.contains('@');
    (web && !userinfo && url.host().is_some()).then_some(url)
}

/// Whether a path, resolved against any origin, stays on it (no scheme-relative tricks).
fn stays_on_origin(path: &str) -> bool {
    const BASE: &str = "https://origin.invalid/";
    Url::parse(BASE)
        .and_then(|base| base.join(path))
        .is_ok_and(|u| u.origin().ascii_serialization() == "https://origin.invalid")
}

/// Whether the URL's host is a loopback name or address (`localhost`, `127.0.0.1`, `[::1]`).
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip == Ipv4Addr::LOCALHOST,
        Some(Host::Ipv6(ip)) => ip == Ipv6Addr::LOCALHOST,
        None => false,
    }
}
