//! The serve loop: every request through the handler, one log line (and the metrics) per
//! request, the HTTP response of the reply.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};

use super::dispatch::Answer;
use super::logging::{request_record, unix_ms, write_line, RequestLine};
use super::origin::{not_through_the_edge, OriginGuard};
use super::reply::Reply;
use super::request::path;
use super::routes;

/// The HTTP response of a reply: JSON (or the reply's document), never cached unless the
/// document says otherwise.
pub fn respond(reply: Reply) -> Response<Body> {
    let body = match (&reply.document, reply.status) {
        (Some(doc), _) => Body::Text(doc.text.clone()),
        (None, 204) => Body::Empty,
        (None, _) => Body::Text(reply.body.to_string()),
    };
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let headers = response.headers_mut();
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    match &reply.document {
        Some(doc) => {
            headers.insert("content-type", HeaderValue::from_static(doc.content_type));
            for (name, value) in &doc.headers {
                // Our own constant header values: always valid; one that were not is left out
                // rather than sent wrong.
                if let Ok(v) = HeaderValue::from_str(value) {
                    headers.insert(*name, v);
                }
            }
        }
        None if reply.status != 204 => {
            headers.insert("content-type", HeaderValue::from_static("application/json"));
        }
        None => {}
    }
    if let Some(seconds) = reply.retry_after {
        headers.insert("retry-after", HeaderValue::from(seconds));
    }
    response
}

/// Time spent in AWS calls since the last call (zero for functions without AWS clients).
fn aws_time() -> std::time::Duration {
    #[cfg(feature = "aws")]
    {
        crate::adapters::aws::take_aws_time()
    }
    #[cfg(not(feature = "aws"))]
    {
        std::time::Duration::ZERO
    }
}

/// Runs the function: every request goes through `handler`, and one JSON line
/// ([`request_record`], also the request's metrics) records the request id, function, method,
/// route template, status, outcome and latency. No path parameter, header, body or response is
/// logged (they carry plan ids, tokens, challenges and responses).
///
/// Generic only at this door: the handler's future is boxed (one allocation per request) and
/// the loop below, with the Lambda runtime it instantiates, is compiled once in this crate
/// rather than once in every function's binary (docs/PERFORMANCE.md, "Build").
pub async fn serve<F, Fut>(function: &'static str, handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(Request) -> Fut + Send + Sync,
    Fut: Future<Output = Answer> + Send,
{
    let boxed = |req: Request| -> Handled<'_> { Box::pin(handler(req)) };
    serve_boxed(function, &boxed).await
}

/// A handler's answer, boxed: what [`serve_boxed`] awaits.
type Handled<'h> = Pin<Box<dyn Future<Output = Answer> + Send + 'h>>;

async fn serve_boxed<'h>(
    function: &'static str,
    handler: &'h (dyn Fn(Request) -> Handled<'h> + Send + Sync),
) -> Result<(), lambda_http::Error> {
    let namespace = std::env::var("METRICS_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "endpoint-stage".into());
    let namespace = &namespace;
    let guard = &OriginGuard::from_env();
    lambda_http::run(lambda_http::service_fn(
        move |mut req: Request| async move {
            let started = Instant::now();
            let request_id = req
                .lambda_context_ref()
                .map(|c| c.request_id.clone())
                .unwrap_or_default();
            let method = req.method().as_str().to_string();
            // The route template, never the path itself (it carries plan and connector ids).
            let route = routes::template_of(path(&req));
            let _ = aws_time();
            let (reply, outcome) = if guard.admit(&mut req) {
                handler(req).await
            } else {
                not_through_the_edge()
            };
            let aws_ms = aws_time().as_secs_f64() * 1000.0;
            let record = request_record(&RequestLine {
                request_id: &request_id,
                function,
                method: &method,
                route,
                status: reply.status,
                label: outcome,
                latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                aws_ms,
                namespace,
                unix_ms: unix_ms(),
            });
            write_line(&record);
            Ok::<_, std::convert::Infallible>(respond(reply))
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::errors::error_reply;
    use crate::error::CoreError;

    #[test]
    fn replies_are_json_and_429_has_retry_after() {
        let r = respond(error_reply(&CoreError::Throttled("busy".into())));
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "1");
        assert_eq!(r.headers()["content-type"], "application/json");
    }
}
