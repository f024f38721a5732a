//! The HTTP edge: everything between API Gateway and the domain, one file per job. The domain
//! (`stage`, `agent`, `admin`) knows none of it; the functions (`functions/`) are thin handlers
//! over it: find the route, parse the request, call one core operation, answer.
//!
//! | file | job |
//! |---|---|
//! | `routes.rs` | the route table: every route once, each function's exhaustive enum of its routes |
//! | `route_artefacts.rs` | tests: `template.yaml`'s and `Cargo.toml`'s lists of routes, generated from the table (`make routes`) |
//! | `reply.rs` | what a handler answers: JSON or a document, the body bound |
//! | `errors.rs` | the one error table: status, contract code, log label |
//! | `json.rs` | the contract's JSON bodies in and out |
//! | `ssf.rs` | the Shared Signals routes' JSON in and out |
//! | `labels.rs` | what a request's log line says happened, and its metric class |
//! | `config.rs` | configuration from the environment (feature `lambda`) |
//! | `clients.rs` | the AWS clients, built once per cold start (features `lambda` + AWS) |
//! | `request.rs` | path, headers and bounded bodies of a request (feature `lambda`) |
//! | `dispatch.rs` | the route a request asks for, or the contract's 404/405 (feature `lambda`) |
//! | `home.rs` | another region's plan: a redirect to its home region (feature `lambda`) |
//! | `origin.rs` | behind the optional edge, public routes only through CloudFront (feature `lambda`) |
//! | `logging.rs` | JSON logs, and the per-request line that is also the metrics (feature `lambda`) |
//! | `serve.rs` | the serve loop and the HTTP response of a reply (feature `lambda`) |
//! | `resolver.rs` | the system's name resolver, for the push endpoint check (feature `lambda`) |
//! | `fetch.rs` | GETs a tenant's JWKS, only where the egress policy admits (feature `fetch`) |

pub mod errors;
pub mod json;
pub mod labels;
pub mod reply;
pub mod routes;
pub mod ssf;

#[cfg(test)]
mod route_artefacts;

#[cfg(feature = "lambda")]
pub mod clients;
#[cfg(feature = "lambda")]
pub mod config;
#[cfg(feature = "lambda")]
pub mod dispatch;
#[cfg(feature = "fetch")]
pub mod fetch;
#[cfg(feature = "lambda")]
pub mod home;
#[cfg(feature = "lambda")]
pub mod logging;
#[cfg(feature = "lambda")]
pub mod origin;
#[cfg(feature = "lambda")]
pub mod request;
#[cfg(feature = "lambda")]
pub mod resolver;
#[cfg(feature = "lambda")]
pub mod serve;

pub use errors::{error_class, error_reply, simple_error, ErrorClass, UNAVAILABLE_MESSAGE};
pub use json::{
    enrolled_body, health_reply, interactive_auth_body, outcome_body, parse_executor_request,
    parse_object, parse_outcome, parse_plan_request, plan_body, plan_created_body, to_body,
};
pub use labels::Label;
pub use reply::{Document, Reply, MAX_BODY, RETRY_AFTER_SECS};

#[cfg(all(feature = "lambda", feature = "aws"))]
pub use clients::aws_config;
#[cfg(all(feature = "lambda", feature = "dynamodb"))]
pub use clients::dynamo;
#[cfg(all(feature = "lambda", feature = "sealing"))]
pub use clients::dynamo_sealing;
#[cfg(all(feature = "lambda", feature = "kms"))]
pub use clients::kms;
#[cfg(all(feature = "lambda", feature = "kms", feature = "dynamodb"))]
pub use clients::{challenge_keys, FunctionKeys};
#[cfg(feature = "lambda")]
pub use config::{Base, FunctionConfig};
#[cfg(feature = "lambda")]
pub use dispatch::{failed, method_not_allowed, no_route, route, unrouted, Answer};
#[cfg(feature = "lambda")]
pub use home::{at_home, at_primary, to_region};
#[cfg(feature = "lambda")]
pub use logging::init_tracing;
#[cfg(feature = "lambda")]
pub use request::{body, body_within, caller, header, host, path, public_base_url, query};
#[cfg(feature = "lambda")]
pub use resolver::SystemResolver;
#[cfg(feature = "lambda")]
pub use serve::{respond, serve};
