//! A request for another region's plan (or OpenID provider code): answered with a redirect to
//! its home region (the domain decides where a plan or code lives, `region.rs`; this only makes
//! the HTTP of it), before any read, so this region never touches it.

use lambda_http::Request;
use serde_json::json;

use super::config::FunctionConfig;
use super::dispatch::Answer;
use super::labels::Label;
use super::reply::{Document, Reply};
use super::request::path;
use crate::region::Home;

/// `Ok` when the plan `plan_id` is served here; otherwise the answer: 307 to the same path and
/// query at its home region's base URL (the method and body are kept), or 404 when this
/// deployment does not know that region.
pub fn at_home(config: &FunctionConfig, req: &Request, plan_id: &str) -> Result<(), Box<Answer>> {
    match config.settings.regions.home_of(plan_id) {
        Home::Here => Ok(()),
        Home::Elsewhere {
            base_url: Some(base),
            code,
        } => Err(Box::new(to_region(req, base, code))),
        Home::Elsewhere { base_url: None, .. } => Err(Box::new((
            super::errors::simple_error(
                404,
                "not_found",
                "The plan does not exist or has expired.",
            ),
            Label::NotFound,
        ))),
    }
}

/// The answer for a request that another region serves (a plan's routes; the token endpoint for
/// an authorization code that region issued, `oidc::token::TokenError::OtherRegion`): 307 to the
/// same path and query at `base_url`, the region `code`'s (the method and body are kept).
pub fn to_region(req: &Request, base_url: &str, code: &str) -> Answer {
    let message = format!("This sign-in is served by region {code}.");
    redirect(same_path_at(req, base_url), &message)
}

/// The request's path and query at `base_url`.
fn same_path_at(req: &Request, base_url: &str) -> String {
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    format!("{base_url}{}{query}", path(req))
}

/// `Ok` in the primary region (or one region); elsewhere a 307 to the same path at the
/// primary's base URL: the Shared Signals outbox is settled and delivered by the primary only
/// (docs/ARCHITECTURE.md, "Regions").
pub fn at_primary(config: &FunctionConfig, req: &Request) -> Result<(), Box<Answer>> {
    let Some(base) = config.settings.regions.primary_base_url() else {
        return Ok(());
    };
    Err(Box::new(redirect(
        same_path_at(req, base),
        "This is served by the primary region.",
    )))
}

fn redirect(location: String, message: &str) -> Answer {
    let body = json!({"error": "other_region", "message": message, "location": location});
    (
        Reply::document(
            307,
            Document {
                content_type: "application/json",
                text: body.to_string(),
                headers: vec![("location", location)],
            },
        ),
        Label::OtherRegion,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(own: &str) -> FunctionConfig {
        let get = |k: &str| match k {
            "REGION_CODE" => Some(own.to_string()),
            "REGION_BASE_URLS" => Some("use1=http://a.test,euw1=http://b.test".into()),
            "PRIMARY_REGION" => Some("use1".into()),
            _ => None,
        };
        FunctionConfig::from_lookup(get).unwrap_or_else(|e| panic!("{e}"))
    }

    fn request(uri: &str) -> Request {
        lambda_http::http::Request::builder()
            .uri(uri)
            .body(lambda_http::Body::Empty)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn another_regions_plan_is_redirected_with_its_path_and_query() {
        let b = config("euw1");
        let req = request("http://b.test/v1/plans/use1_abc/executor?query=1");
        let Err(answer) = at_home(&b, &req, "use1_abc") else {
            panic!("use1's plan must not be served by euw1");
        };
        let (reply, label) = *answer;
        assert_eq!((reply.status, label), (307, Label::OtherRegion));
        let doc = reply.document.unwrap_or_else(|| panic!("a document"));
        assert_eq!(
            doc.headers,
            vec![(
                "location",
                "http://a.test/v1/plans/use1_abc/executor?query=1".to_string()
            )]
        );
        assert!(at_home(&b, &req, "euw1_abc").is_ok());
        let Err(unknown) = at_home(&b, &req, "apse2_abc") else {
            panic!("an unknown region's plan is not served");
        };
        assert_eq!(unknown.0.status, 404);
    }

    #[test]
    fn a_token_request_for_another_regions_code_goes_to_the_same_path_there() {
        let req = request("http://b.test/oidc/token");
        let (reply, label) = to_region(&req, "http://a.test", "use1");
        assert_eq!((reply.status, label), (307, Label::OtherRegion));
        let doc = reply.document.unwrap_or_else(|| panic!("a document"));
        assert_eq!(
            doc.headers,
            vec![("location", "http://a.test/oidc/token".to_string())]
        );
    }

    #[test]
    fn signals_routes_outside_the_primary_go_to_the_primary() {
        let req = request("http://b.test/ssf/poll/s1");
        assert!(at_primary(&config("use1"), &req).is_ok());
        let Err(answer) = at_primary(&config("euw1"), &req) else {
            panic!("euw1 is not the primary");
        };
        let doc = answer.0.document.unwrap_or_else(|| panic!("a document"));
        assert_eq!(
            doc.headers,
            vec![("location", "http://a.test/ssf/poll/s1".to_string())]
        );
    }
}
