//! Reading a request: its path, headers and body, with the contract's bounds.

use lambda_http::{Body, Request, RequestExt};

use super::config::FunctionConfig;
use super::reply::MAX_BODY;
use crate::audit::Caller;
use crate::error::CoreError;

/// The request path as the client sent it.
pub fn path(req: &Request) -> &str {
    let raw = req.raw_http_path();
    if raw.is_empty() {
        req.uri().path()
    } else {
        raw
    }
}

/// The request's `Host` header if it is a plausible host name (with an optional port).
pub fn host(req: &Request) -> Option<&str> {
    header(req, "host").filter(|h| {
        !h.is_empty()
            && h.len() <= 255
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    })
}

/// The API's public base URL: the configured one, else `https://<Host>` of the request.
pub fn public_base_url(config: &FunctionConfig, req: &Request) -> Option<String> {
    config
        .public_base_url
        .clone()
        .or_else(|| host(req).map(|h| format!("https://{h}")))
}

/// The body's bytes, refused over 64 KiB (every route but `check_in/`).
pub fn body(req: &Request) -> Result<&[u8], CoreError> {
    body_within(req, MAX_BODY)
}

/// The body's bytes, refused over `limit`.
pub fn body_within(req: &Request, limit: usize) -> Result<&[u8], CoreError> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => &[],
        Body::Text(s) => s.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    };
    if bytes.len() > limit {
        return Err(CoreError::PayloadTooLarge(limit));
    }
    Ok(bytes)
}

/// A query string parameter's first value (from API Gateway's parsed parameters, or the URI).
pub fn query(req: &Request, name: &str) -> Option<String> {
    use lambda_http::RequestExt;
    if let Some(v) = req
        .query_string_parameters_ref()
        .and_then(|q| q.first(name))
    {
        return Some(v.to_string());
    }
    let q = req.uri().query()?;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A header's value if present and valid UTF-8.
pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Who made the request, from API Gateway's request context: the IAM principal's ARN (routes
/// with IAM authorization, deployed), the source IP and the user agent. Locally (no IAM) the
/// principal is absent.
pub fn caller(req: &Request) -> Caller {
    use lambda_http::request::RequestContext;
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => Caller {
            principal: ctx
                .authorizer
                .as_ref()
                .and_then(|a| a.iam.as_ref())
                .and_then(|iam| iam.user_arn.clone())
                .filter(|arn| !arn.is_empty()),
            source_ip: ctx.http.source_ip.clone(),
            // The client's header (API Gateway copies it into the context; the local emulator
            // puts its own name there).
            user_agent: header(req, "user-agent")
                .map(str::to_string)
                .or_else(|| ctx.http.user_agent.clone()),
        },
        _ => Caller {
            principal: None,
            source_ip: None,
            user_agent: header(req, "user-agent").map(str::to_string),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::aws_lambda_events::apigw::{
        ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerIamDescription,
        ApiGatewayV2httpRequestContext,
    };
    use lambda_http::request::RequestContext;

    #[test]
    fn the_caller_comes_from_the_request_context() {
        let mut iam = ApiGatewayRequestAuthorizerIamDescription::default();
        iam.user_arn = Some("arn:aws:sts::111122223333:assumed-role/rp/s1".into());
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.iam = Some(iam);
        let mut ctx = ApiGatewayV2httpRequestContext::default();
        ctx.authorizer = Some(authorizer);
        ctx.http.source_ip = Some("192.0.2.9".into());
        ctx.http.user_agent = Some("from-context".into());
        let req = lambda_http::http::Request::builder()
            .header("user-agent", "ak-agent/1.0")
            .body(Body::Empty)
            .expect("a request builds")
            .with_request_context(RequestContext::ApiGatewayV2(ctx));
        let c = caller(&req);
        assert_eq!(
            c.principal.as_deref(),
            Some("arn:aws:sts::111122223333:assumed-role/rp/s1")
        );
        assert_eq!(c.source_ip.as_deref(), Some("192.0.2.9"));
        assert_eq!(c.user_agent.as_deref(), Some("ak-agent/1.0"));
        // Without IAM (public routes, local runs): no principal.
        let plain = lambda_http::http::Request::builder()
            .body(Body::Empty)
            .expect("a request builds");
        assert_eq!(caller(&plain).principal, None);
    }
}
