//! Which route a request asks for, by the route table, and the contract's answers when none of
//! a function's routes serves it; a core error as a reply and a log label.

use lambda_http::Request;

use super::errors::{error_class, error_reply, simple_error};
use super::labels::Label;
use super::reply::Reply;
use super::request::path;
use super::routes::{self, FunctionRoute};
use crate::error::CoreError;

/// A reply and its log label: what a handler answers.
pub type Answer = (Reply, Label);

/// The function's route (`R`: its enum of [`routes`]) that this request asks for, with the
/// path's parameters; otherwise the contract's 405 (a path of the function's, another method)
/// or, by the whole table, 404 or 405.
pub fn route<R: FunctionRoute>(req: &Request) -> Result<(R, Vec<&str>), Box<Answer>> {
    let path = path(req);
    if let Some(matched) = R::matching(req.method().as_str(), path) {
        return Ok(matched);
    }
    Err(Box::new(if R::serves_path(path) {
        method_not_allowed()
    } else {
        unrouted(path)
    }))
}

/// 405 if some route serves `path` with other methods, else 404.
pub fn unrouted(path: &str) -> Answer {
    if routes::is_routed(path) {
        method_not_allowed()
    } else {
        no_route()
    }
}

/// The contract's 405 for a method a route does not serve.
pub fn method_not_allowed() -> Answer {
    (
        simple_error(
            405,
            "method_not_allowed",
            "This route does not serve that method.",
        ),
        Label::MethodNotAllowed,
    )
}

/// The contract's 404 for a path no route serves.
pub fn no_route() -> Answer {
    (
        simple_error(404, "not_found", "No route serves this path."),
        Label::NoRoute,
    )
}

/// A core error as a reply and a log label, both from the one table ([`error_class`]). For a
/// 5xx, the detail the public message leaves out is logged here (core error messages never
/// carry a secret).
pub fn failed(e: &CoreError) -> Answer {
    let class = error_class(e);
    if class.status >= 500 {
        tracing::warn!(label = class.label.as_str(), detail = %e, "request failed");
    }
    (error_reply(e), class.label)
}
