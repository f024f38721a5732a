//! The one error table: every core error's status, the contract's `{"error","message"}` code,
//! and the log label, in one place.

use serde_json::json;

use super::labels::Label;
use super::reply::{Reply, RETRY_AFTER_SECS};
use crate::error::CoreError;

/// The only message a 503 answers: no internal state (which dependency, which key) leaks.
pub const UNAVAILABLE_MESSAGE: &str = "The service is unavailable right now; try again shortly.";

/// How a core error leaves a function: status, the contract's `error` code, and log label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorClass {
    pub status: u16,
    pub code: &'static str,
    pub label: Label,
}

/// The one table of core errors: every reply and every log line takes its status, code and
/// label from here.
pub fn error_class(error: &CoreError) -> ErrorClass {
    let (status, code, label) = match error {
        CoreError::BadRequest(_) => (400, "bad_request", Label::BadRequest),
        CoreError::Forbidden(_) => (403, "forbidden", Label::Forbidden),
        CoreError::Unauthorized(_) => (401, "unauthorized", Label::Unauthorized),
        CoreError::NotFound(_) => (404, "not_found", Label::NotFound),
        CoreError::PayloadTooLarge(_) => (413, "payload_too_large", Label::PayloadTooLarge),
        CoreError::Conflict(_) => (409, "conflict", Label::Conflict),
        CoreError::Throttled(_) => (429, "throttled", Label::Throttled),
        CoreError::RateLimited(_) => (429, "throttled", Label::RateLimited),
        CoreError::Unavailable(_) => (503, "unavailable", Label::Unavailable),
        // Lost every retry against concurrent writers: to the client, unavailable.
        CoreError::LostRace => (503, "unavailable", Label::LostRace),
    };
    ErrorClass {
        status,
        code,
        label,
    }
}

/// A core error as the contract's reply.
pub fn error_reply(error: &CoreError) -> Reply {
    let class = error_class(error);
    let message = match error {
        CoreError::NotFound(what) => format!("The {what} does not exist or has expired."),
        // What is down stays in the log line (`edge::failed`), never in a public body.
        CoreError::Unavailable(_) | CoreError::LostRace => UNAVAILABLE_MESSAGE.to_string(),
        other => other.to_string(),
    };
    Reply {
        status: class.status,
        body: json!({"error": class.code, "message": message}),
        retry_after: match error {
            CoreError::RateLimited(seconds) => Some(*seconds),
            _ => (class.status == 429).then_some(RETRY_AFTER_SECS),
        },
        document: None,
    }
}

/// An error reply for routing failures the core never sees.
pub fn simple_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(status, json!({"error": code, "message": message}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_mapping_matches_the_contract() {
        let cases = [
            (CoreError::BadRequest("x".into()), 400, "bad_request"),
            (CoreError::Forbidden("x".into()), 403, "forbidden"),
            (CoreError::NotFound("plan".into()), 404, "not_found"),
            (CoreError::PayloadTooLarge(1), 413, "payload_too_large"),
            (CoreError::Conflict("x".into()), 409, "conflict"),
            (CoreError::Throttled("x".into()), 429, "throttled"),
            (CoreError::RateLimited(7), 429, "throttled"),
            (CoreError::Unavailable("x".into()), 503, "unavailable"),
            (CoreError::LostRace, 503, "unavailable"),
        ];
        for (e, status, code) in cases {
            let r = error_reply(&e);
            assert_eq!(
                (r.status, r.body["error"].as_str()),
                (status, Some(code)),
                "{e:?}"
            );
            assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()));
            assert_eq!(r.retry_after.is_some(), status == 429);
        }
        assert_eq!(error_reply(&CoreError::RateLimited(7)).retry_after, Some(7));
    }
}
