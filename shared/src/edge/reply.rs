//! What a handler answers: a status with a JSON body (and `Retry-After` for 429s), or a
//! document (HTML, JavaScript) with its own headers.

use serde_json::Value;

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;
/// Seconds a throttled client is asked to wait.
pub const RETRY_AFTER_SECS: u32 = 1;

/// A reply: status, JSON body, and `Retry-After` seconds for 429s; or, for the browser's
/// routes, a document (HTML, JavaScript) with its own headers.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<u32>,
    pub document: Option<Document>,
}

/// A non-JSON body with its content type and extra headers (the hosted page, the module).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    pub content_type: &'static str,
    pub text: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Self::json(200, body)
    }
    pub fn created(body: Value) -> Self {
        Self::json(201, body)
    }
    pub fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            body,
            retry_after: None,
            document: None,
        }
    }
    pub fn document(status: u16, document: Document) -> Self {
        Reply {
            status,
            body: Value::Null,
            retry_after: None,
            document: Some(document),
        }
    }
}
