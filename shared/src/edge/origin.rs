//! Behind the optional edge (`EdgeProtection=cloudfront`): an HTTP API has no resource policy,
//! so CloudFront proves a request came through it (and its WAF rate limits) with a secret
//! header, `X-Origin-Verify`, which every function checks on the public routes. The
//! relying-party routes are also admitted without it: IAM authorizes them.
//!
//! Two kinds of request are not edge requests and never need the header:
//! - an internal call, the response function's direct Lambda invoke of the challenge function
//!   (a new challenge after an invalid response): its event carries [`INTERNAL_ROUTE_KEY`] as
//!   its route key and no API id. API Gateway writes `requestContext` itself, always with the
//!   API's id and one of the API's own route keys (`GET /v1/...` or `$default`: a method and a
//!   path, which `INTERNAL` is not), so nothing a client sends can make an event look internal;
//!   only a principal allowed `lambda:InvokeFunction` on the function can send one.
//! - without an edge (no secret configured) every request is admitted, as before.
//!
//! Two secrets are accepted (`ORIGIN_SECRET` and, during a rotation, `ORIGIN_SECRET_PREVIOUS`),
//! each compared in constant time, so that CloudFront's switch to a new secret, which reaches
//! its edge locations over minutes, refuses nothing. A request admitted by its secret is marked
//! [`ThroughEdge`]: only then is CloudFront's viewer-address header believed
//! (`request::caller`).

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use super::dispatch::Answer;
use super::errors::simple_error;
use super::labels::Label;
use super::request::{header, path, ThroughEdge};
use super::routes::{CREATE_PLAN, READ_PLAN};
use crate::protocol::ct_eq;
use crate::secret::Secret;

/// The header CloudFront adds to every request it forwards.
pub const ORIGIN_HEADER: &str = "x-origin-verify";

/// The route key of an internal call's event: never one of an API Gateway route (those are
/// `METHOD /path` or `$default`).
pub const INTERNAL_ROUTE_KEY: &str = "INTERNAL challenge";

/// The check of [`ORIGIN_HEADER`]: nothing to check without a secret (no edge).
pub struct OriginGuard {
    secrets: Vec<Secret>,
}

impl OriginGuard {
    /// The current secret and, during a rotation, the previous one (empty values are none).
    pub fn new(current: Option<String>, previous: Option<String>) -> Self {
        OriginGuard {
            secrets: [current, previous]
                .into_iter()
                .flatten()
                .filter(|s| !s.is_empty())
                .map(Secret::new)
                .collect(),
        }
    }

    /// From `ORIGIN_SECRET` and `ORIGIN_SECRET_PREVIOUS` (set by template.yaml behind the edge).
    pub fn from_env() -> Self {
        Self::new(
            std::env::var("ORIGIN_SECRET").ok(),
            std::env::var("ORIGIN_SECRET_PREVIOUS").ok(),
        )
    }

    /// Whether the given header value is one of the secrets: every secret is compared, in
    /// constant time, whichever matches.
    fn knows(&self, given: &str) -> bool {
        self.secrets.iter().fold(false, |known, secret| {
            ct_eq(given.as_bytes(), secret.expose().as_bytes()) | known
        })
    }

    /// Whether the function may serve `req`: always without an edge, for internal calls and for
    /// the IAM-authorized relying-party routes; otherwise only with one of the edge's secrets.
    /// A request that carries a valid secret is marked [`ThroughEdge`].
    pub fn admit(&self, req: &mut Request) -> bool {
        if self.secrets.is_empty() {
            return true;
        }
        if header(req, ORIGIN_HEADER).is_some_and(|given| self.knows(given)) {
            req.extensions_mut().insert(ThroughEdge);
            return true;
        }
        if is_internal(req) {
            return true;
        }
        let p = path(req);
        CREATE_PLAN.matches(p).is_some() || READ_PLAN.matches(p).is_some()
    }
}

/// Whether `req` is an internal call's event (see the module's documentation): the internal
/// route key, and no API id (API Gateway always writes one).
pub fn is_internal(req: &Request) -> bool {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            ctx.route_key.as_deref() == Some(INTERNAL_ROUTE_KEY)
                && ctx.apiid.as_deref().is_none_or(str::is_empty)
        }
        _ => false,
    }
}

/// The answer to a public request that did not come through the edge.
pub fn not_through_the_edge() -> Answer {
    (
        simple_error(
            403,
            "forbidden",
            "This service answers through its public address only.",
        ),
        Label::Forbidden,
    )
}

#[cfg(test)]
mod tests {
    use super::{is_internal, OriginGuard, INTERNAL_ROUTE_KEY, ORIGIN_HEADER};
    use crate::edge::request::ThroughEdge;
    use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;

    fn request(path: &str, header: Option<&str>) -> lambda_http::Request {
        let mut b = lambda_http::http::Request::builder().uri(format!("https://api.example{path}"));
        if let Some(v) = header {
            b = b.header(ORIGIN_HEADER, v);
        }
        b.body(lambda_http::Body::Empty).expect("a request")
    }

    fn with_context(
        req: lambda_http::Request,
        route_key: &str,
        api_id: Option<&str>,
    ) -> lambda_http::Request {
        let mut ctx = ApiGatewayV2httpRequestContext::default();
        ctx.route_key = Some(route_key.into());
        ctx.apiid = api_id.map(str::to_string);
        req.with_request_context(RequestContext::ApiGatewayV2(ctx))
    }

    fn admits(guard: &OriginGuard, mut req: lambda_http::Request) -> bool {
        guard.admit(&mut req)
    }

    #[test]
    fn behind_the_edge_public_routes_need_the_secret_and_relying_party_routes_do_not() {
        let guard = OriginGuard::new(Some("s3cret-from-cloudfront".into()), None);
        let executor = "/v1/plans/abc/executor";
        assert!(admits(
            &guard,
            request(executor, Some("s3cret-from-cloudfront"))
        ));
        assert!(!admits(&guard, request(executor, None)));
        assert!(!admits(
            &guard,
            request(executor, Some("s3cret-from-cloudfronT"))
        ));
        assert!(!admits(
            &guard,
            request("/api/v3/endpoints/agents/connectors/enroll/", Some(""))
        ));
        assert!(admits(&guard, request("/v1/plans", None)), "IAM-authorized");
        assert!(
            admits(&guard, request("/v1/plans/abc", None)),
            "IAM-authorized"
        );
        // No edge: everything, as before.
        let open = OriginGuard::new(None, None);
        assert!(admits(&open, request(executor, None)));
        assert!(admits(
            &OriginGuard::new(Some(String::new()), Some(String::new())),
            request(executor, None)
        ));
    }

    #[test]
    fn during_a_rotation_the_current_and_the_previous_secret_are_both_accepted() {
        let guard = OriginGuard::new(
            Some("new-secret-value".into()),
            Some("old-secret-value".into()),
        );
        let executor = "/v1/plans/abc/executor";
        assert!(admits(&guard, request(executor, Some("new-secret-value"))));
        assert!(admits(&guard, request(executor, Some("old-secret-value"))));
        assert!(!admits(
            &guard,
            request(executor, Some("older-secret-value"))
        ));
        assert!(!admits(&guard, request(executor, None)));
        // The previous one alone (a rotation's second step not yet deployed) still guards.
        let previous_only = OriginGuard::new(None, Some("old-secret-value".into()));
        assert!(admits(
            &previous_only,
            request(executor, Some("old-secret-value"))
        ));
        assert!(!admits(&previous_only, request(executor, None)));
    }

    #[test]
    fn only_a_request_with_a_valid_secret_is_marked_as_through_the_edge() {
        let guard = OriginGuard::new(Some("s3cret-from-cloudfront".into()), None);
        let mut through = request("/v1/plans/abc/executor", Some("s3cret-from-cloudfront"));
        assert!(guard.admit(&mut through));
        assert!(through.extensions().get::<ThroughEdge>().is_some());
        // Admitted for another reason (IAM route, no edge): not marked.
        let mut rp = request("/v1/plans", None);
        assert!(guard.admit(&mut rp));
        assert!(rp.extensions().get::<ThroughEdge>().is_none());
        let mut open = request("/v1/plans/abc/executor", Some("anything"));
        assert!(OriginGuard::new(None, None).admit(&mut open));
        assert!(open.extensions().get::<ThroughEdge>().is_none());
    }

    #[test]
    fn internal_calls_need_no_secret_and_api_gateway_events_cannot_pose_as_one() {
        let guard = OriginGuard::new(Some("s3cret-from-cloudfront".into()), None);
        let executor = "/v1/plans/abc/executor";
        let internal = with_context(request(executor, None), INTERNAL_ROUTE_KEY, None);
        assert!(is_internal(&internal));
        assert!(admits(&guard, internal));
        // What API Gateway sends: its API id and one of its own route keys, whatever the client
        // put in headers, path or body.
        let from_api = with_context(
            request(executor, None),
            "GET /v1/plans/{plan}/executor",
            Some("a1b2c3d4e5"),
        );
        assert!(!is_internal(&from_api));
        assert!(!admits(&guard, from_api));
        // The internal key with an API id is not internal either.
        let mixed = with_context(
            request(executor, None),
            INTERNAL_ROUTE_KEY,
            Some("a1b2c3d4e5"),
        );
        assert!(!is_internal(&mixed));
        assert!(!admits(&guard, mixed));
        // No request context at all: not internal.
        assert!(!is_internal(&request(executor, None)));
    }
}
