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

/// Marks a request that carried a valid origin secret (`origin::OriginGuard`): it came
/// through CloudFront, so CloudFront's own headers on it are CloudFront's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThroughEdge;

/// The header in which CloudFront tells the origin the viewer's address: `ip:port`, the port
/// after the last colon (an IPv6 address has colons of its own, and no brackets).
pub const VIEWER_ADDRESS_HEADER: &str = "cloudfront-viewer-address";

/// The IP address of a `CloudFront-Viewer-Address` value, in its canonical text form; `None`
/// unless it is an IP address and a port.
pub fn viewer_ip(value: &str) -> Option<String> {
    let (ip, port) = value.trim().rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let ip = ip
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip);
    ip.parse::<std::net::IpAddr>().ok().map(|a| a.to_string())
}

/// The client's address: behind the edge, from CloudFront's viewer-address header, believed
/// only on a request that proved it came through CloudFront ([`ThroughEdge`]); otherwise the
/// connection's source address as API Gateway saw it.
fn client_ip(req: &Request, source_ip: Option<&String>) -> Option<String> {
    if req.extensions().get::<ThroughEdge>().is_some() {
        if let Some(ip) = header(req, VIEWER_ADDRESS_HEADER).and_then(viewer_ip) {
            return Some(ip);
        }
    }
    source_ip.cloned()
}

/// A header's value if present and valid UTF-8.
pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Who made the request, from API Gateway's request context: the IAM principal's ARN (routes
/// with IAM authorization, deployed), the client's address ([`client_ip`]) and the user agent.
/// Locally (no IAM) the principal is absent.
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
            source_ip: client_ip(req, ctx.http.source_ip.as_ref()),
            // The client's header (API Gateway copies it into the context; the local emulator
            // puts its own name there).
            user_agent: header(req, "user-agent")
                .map(str::to_string)
                .or_else(|| ctx.http.user_agent.clone()),
        },
        _ => Caller {
            principal: None,
            source_ip: client_ip(req, None),
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

    #[test]
    fn the_viewer_address_is_the_part_before_the_last_colon_ipv6_too() {
        assert_eq!(
            viewer_ip("198.51.100.7:46532").as_deref(),
            Some("198.51.100.7")
        );
        assert_eq!(
            viewer_ip("2001:0db8:85a3:0000:0000:8a2e:0370:7334:46532").as_deref(),
            Some("2001:db8:85a3::8a2e:370:7334")
        );
        assert_eq!(
            viewer_ip("[2001:db8::1]:443").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(viewer_ip("::1:8080").as_deref(), Some("::1"));
        for bad in [
            "",
            "198.51.100.7",
            "198.51.100.7:",
            "198.51.100.7:99999",
            "evil:80",
            "1.2.3.4:80:x",
            "a b:1",
        ] {
            assert_eq!(viewer_ip(bad), None, "{bad:?}");
        }
    }

    fn edge_request(viewer: Option<&str>, through_edge: bool) -> Request {
        let mut ctx = ApiGatewayV2httpRequestContext::default();
        ctx.http.source_ip = Some("130.176.0.1".into()); // a CloudFront node
        let mut b = lambda_http::http::Request::builder();
        if let Some(v) = viewer {
            b = b.header("CloudFront-Viewer-Address", v);
        }
        let mut req = b
            .body(Body::Empty)
            .expect("a request builds")
            .with_request_context(RequestContext::ApiGatewayV2(ctx));
        if through_edge {
            req.extensions_mut().insert(ThroughEdge);
        }
        req
    }

    #[test]
    fn the_viewer_address_is_believed_only_through_the_edge() {
        // Through the edge: the viewer's address, not CloudFront's.
        let c = caller(&edge_request(Some("203.0.113.5:51234"), true));
        assert_eq!(c.source_ip.as_deref(), Some("203.0.113.5"));
        let c = caller(&edge_request(Some("2001:db8::7:51234"), true));
        assert_eq!(c.source_ip.as_deref(), Some("2001:db8::7"));
        // Without proof of the edge, the header is anyone's: the source address stays.
        let c = caller(&edge_request(Some("203.0.113.5:51234"), false));
        assert_eq!(c.source_ip.as_deref(), Some("130.176.0.1"));
        // Through the edge without the header, or with garbage in it: the source address.
        let c = caller(&edge_request(None, true));
        assert_eq!(c.source_ip.as_deref(), Some("130.176.0.1"));
        let c = caller(&edge_request(Some("not an address"), true));
        assert_eq!(c.source_ip.as_deref(), Some("130.176.0.1"));
    }
}
