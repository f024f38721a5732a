//! Behind the optional edge (`EdgeProtection=cloudfront`): an HTTP API has no resource policy,
//! so CloudFront proves a request came through it (and its WAF rate limits) with a secret
//! header, `X-Origin-Verify`, which every function checks on the public routes. The
//! relying-party routes stay direct: IAM authorizes them, and SigV4 signs the API's own host.

use lambda_http::Request;

use super::dispatch::Answer;
use super::errors::simple_error;
use super::labels::Label;
use super::request::{header, path};
use super::routes::{CREATE_PLAN, READ_PLAN};
use crate::protocol::ct_eq;
use crate::secret::Secret;

/// The header CloudFront adds to every request it forwards.
pub const ORIGIN_HEADER: &str = "x-origin-verify";

/// The check of [`ORIGIN_HEADER`]: nothing to check without a secret (no edge).
pub struct OriginGuard {
    secret: Option<Secret>,
}

impl OriginGuard {
    pub fn new(secret: Option<String>) -> Self {
        OriginGuard {
            secret: secret.filter(|s| !s.is_empty()).map(Secret::new),
        }
    }

    /// From `ORIGIN_SECRET` (set by template.yaml behind the edge).
    pub fn from_env() -> Self {
        Self::new(std::env::var("ORIGIN_SECRET").ok())
    }

    /// Whether the function may serve `req`: always without an edge, and for the IAM-authorized
    /// relying-party routes; otherwise only with the edge's secret (compared in constant time).
    pub fn admits(&self, req: &Request) -> bool {
        let Some(secret) = &self.secret else {
            return true;
        };
        let p = path(req);
        if CREATE_PLAN.matches(p).is_some() || READ_PLAN.matches(p).is_some() {
            return true;
        }
        header(req, ORIGIN_HEADER)
            .is_some_and(|given| ct_eq(given.as_bytes(), secret.expose().as_bytes()))
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
    use super::{OriginGuard, ORIGIN_HEADER};

    fn request(path: &str, header: Option<&str>) -> lambda_http::Request {
        let mut b = lambda_http::http::Request::builder().uri(format!("https://api.example{path}"));
        if let Some(v) = header {
            b = b.header(ORIGIN_HEADER, v);
        }
        b.body(lambda_http::Body::Empty).expect("a request")
    }

    #[test]
    fn behind_the_edge_public_routes_need_the_secret_and_relying_party_routes_do_not() {
        let guard = OriginGuard::new(Some("s3cret-from-cloudfront".into()));
        let executor = "/v1/plans/abc/executor";
        assert!(guard.admits(&request(executor, Some("s3cret-from-cloudfront"))));
        assert!(!guard.admits(&request(executor, None)));
        assert!(!guard.admits(&request(executor, Some("s3cret-from-cloudfronT"))));
        assert!(!guard.admits(&request(
            "/api/v3/endpoints/agents/connectors/enroll/",
            Some("")
        )));
        assert!(guard.admits(&request("/v1/plans", None)), "IAM-authorized");
        assert!(
            guard.admits(&request("/v1/plans/abc", None)),
            "IAM-authorized"
        );
        // No edge: everything, as before.
        let open = OriginGuard::new(None);
        assert!(open.admits(&request(executor, None)));
        assert!(OriginGuard::new(Some(String::new())).admits(&request(executor, None)));
    }
}
