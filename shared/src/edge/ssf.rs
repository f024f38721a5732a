//! The Shared Signals routes' JSON, in and out (SSF 1.0, RFC 8936).

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::json::parse_object;
use super::routes::{ASSERTION_JWKS, SSF_STATUS_READ, SSF_STREAM_READ, SSF_VERIFY};
use crate::error::CoreError;
use crate::model::{Stream, StreamStatus};
use crate::ssf::{
    events_delivered, poll_endpoint, PollAnswer, PollRequest, StreamRequest, EVENTS_SUPPORTED,
};

/// `GET /.well-known/ssf-configuration`.
pub fn configuration_body(issuer: &str) -> Value {
    json!({
        "spec_version": "1_0",
        "issuer": issuer,
        "jwks_uri": format!("{issuer}{}", ASSERTION_JWKS.template),
        "delivery_methods_supported": ["urn:ietf:rfc:8935", "urn:ietf:rfc:8936"],
        "configuration_endpoint": format!("{issuer}{}", SSF_STREAM_READ.template),
        "status_endpoint": format!("{issuer}{}", SSF_STATUS_READ.template),
        "verification_endpoint": format!("{issuer}{}", SSF_VERIFY.template),
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6750"}],
        "default_subjects": "ALL",
    })
}

#[derive(Deserialize)]
struct Delivery {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    endpoint_url: Option<String>,
    #[serde(default)]
    authorization_header: Option<String>,
}

#[derive(Deserialize)]
struct StreamBody {
    #[serde(default)]
    stream_id: Option<String>,
    #[serde(default)]
    delivery: Option<Delivery>,
    #[serde(default)]
    events_requested: Option<Vec<String>>,
    #[serde(default)]
    description: Option<String>,
}

/// A stream's create or update body: its id (updates) and what it asks.
pub fn parse_stream_request(body: &[u8]) -> Result<(Option<String>, StreamRequest), CoreError> {
    let b: StreamBody = parse_object(body)?;
    let (method, endpoint_url, authorization_header) = match b.delivery {
        Some(d) => (d.method, d.endpoint_url, d.authorization_header),
        None => (None, None, None),
    };
    Ok((
        b.stream_id,
        StreamRequest {
            method,
            endpoint_url,
            authorization_header,
            events_requested: b.events_requested,
            description: b.description,
        },
    ))
}

#[derive(Deserialize)]
struct StatusBody {
    stream_id: String,
    status: String,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /ssf/status`: the stream, its new status and the reason.
pub fn parse_status_request(body: &[u8]) -> Result<(String, String, Option<String>), CoreError> {
    let b: StatusBody = parse_object(body)?;
    Ok((b.stream_id, b.status, b.reason))
}

#[derive(Deserialize)]
struct VerifyBody {
    stream_id: String,
    #[serde(default)]
    state: Option<String>,
}

/// `POST /ssf/verify`: the stream and the state to echo.
pub fn parse_verify_request(body: &[u8]) -> Result<(String, Option<String>), CoreError> {
    let b: VerifyBody = parse_object(body)?;
    Ok((b.stream_id, b.state))
}

#[derive(Deserialize)]
struct PollBody {
    #[serde(default)]
    ack: Vec<String>,
    #[serde(default, rename = "maxEvents")]
    max_events: Option<usize>,
    #[serde(default, rename = "returnImmediately")]
    _return_immediately: Option<bool>,
}

/// A poll (RFC 8936): acknowledgements and the most SETs wanted. An empty body polls.
pub fn parse_poll_request(body: &[u8]) -> Result<PollRequest, CoreError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(PollRequest::default());
    }
    let b: PollBody = parse_object(body)?;
    if b.ack.len() > 1000 {
        return Err(CoreError::BadRequest(
            "at most 1000 acknowledgements per poll".into(),
        ));
    }
    Ok(PollRequest {
        ack: b.ack,
        max_events: b.max_events,
    })
}

fn status_str(s: StreamStatus) -> &'static str {
    match s {
        StreamStatus::Enabled => "enabled",
        StreamStatus::Paused => "paused",
        StreamStatus::Disabled => "disabled",
    }
}

/// A stream's configuration as its receiver reads it (never its authorization header).
pub fn stream_body(stream: &Stream, issuer: &str, audience: &str) -> Value {
    let endpoint = match &stream.endpoint_url {
        Some(url) => url.clone(),
        None => poll_endpoint(issuer, &stream.id),
    };
    let mut body = json!({
        "stream_id": stream.id,
        "iss": issuer,
        "aud": audience,
        "delivery": {"method": stream.method.urn(), "endpoint_url": endpoint},
        "events_supported": EVENTS_SUPPORTED,
        "events_requested": stream.events_requested,
        "events_delivered": events_delivered(stream),
    });
    if let Some(d) = &stream.description {
        body["description"] = Value::String(d.clone());
    }
    body
}

/// A stream's status.
pub fn status_body(stream: &Stream) -> Value {
    let mut body = json!({"stream_id": stream.id, "status": status_str(stream.status)});
    if let Some(r) = &stream.status_reason {
        body["reason"] = Value::String(r.clone());
    }
    body
}

/// A poll's answer.
pub fn poll_body(answer: &PollAnswer) -> Value {
    let sets: Map<String, Value> = answer
        .sets
        .iter()
        .map(|(jti, set)| (jti.clone(), Value::String(set.clone())))
        .collect();
    json!({"sets": sets, "moreAvailable": answer.more_available})
}
