//! Where a plan may send the browser when the stage passes.

use crate::error::CoreError;

/// Longest accepted plan redirect.
pub const MAX_REDIRECT_LEN: usize = 2048;

/// A plan's redirect, where the hosted page sends the browser when the stage passes: a path
/// on the relying party's site (`/...`, never `//host` or `/\\`), or an `https:` URL; `http:`
/// only for a loopback host (`localhost`, `127.0.0.1`, `[::1]`). No other scheme
/// (`javascript:`, `data:`, ...), no credentials in the URL, no whitespace or backslash.
pub fn check_redirect(redirect: &str) -> Result<(), CoreError> {
    let refused = || {
        CoreError::BadRequest(format!(
            "redirect must be a path starting with / or an https: URL (http: only for localhost, 127.0.0.1 or [::1]), at most {MAX_REDIRECT_LEN} characters"
        ))
    };
    if redirect.is_empty()
        || redirect.len() > MAX_REDIRECT_LEN
        || redirect
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return Err(refused());
    }
    if let Some(path) = redirect.strip_prefix('/') {
        return if path.starts_with('/') {
            Err(refused())
        } else {
            Ok(())
        };
    }
    let scheme_end = redirect.find("://").ok_or_else(refused)?;
    let loopback_only = match redirect[..scheme_end].to_ascii_lowercase().as_str() {
        "https" => false,
        "http" => true,
        _ => return Err(refused()),
    };
    let rest = &redirect[scheme_end + 3..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = if authority.starts_with('[') {
        authority
            .find(']')
            .map(|end| &authority[..=end])
            .ok_or_else(refused)?
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            Some(_) => return Err(refused()),
            None => authority,
        }
    };
    let host_chars_ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-[]:".contains(&b));
    if host.is_empty() || !host_chars_ok {
        return Err(refused());
    }
    let loopback = matches!(
        host.to_ascii_lowercase().as_str(),
        "localhost" | "127.0.0.1" | "[::1]"
    );
    if loopback_only && !loopback {
        return Err(refused());
    }
    Ok(())
}
