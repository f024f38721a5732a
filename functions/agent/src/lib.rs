//! The agent API under `/api/v3/endpoints/agents/connectors/`: `enroll/`, `agent_config/`,
//! `check_in/`, `auth_ia/`, with the reference's paths, headers, JSON and status codes.

use endpoint_core::agent;
use endpoint_core::function::{self, failed, Base};
use endpoint_core::http::Reply;
use endpoint_core::ports::{ChallengeSigner, DeviceStore, Directory, EnrollmentStore, PlanStore};
use lambda_http::Request;
use serde_json::Value;

pub const PREFIX: &str = "/api/v3/endpoints/agents/connectors/";

pub struct App<S, K> {
    pub base: Base,
    pub store: S,
    pub signer: K,
}

impl<S, K> App<S, K>
where
    S: PlanStore + Directory + DeviceStore + EnrollmentStore,
    K: ChallengeSigner,
{
    pub async fn handle(&self, req: Request) -> (Reply, &'static str) {
        let path = function::path(&req);
        let Some(call) = path.strip_prefix(PREFIX) else {
            return function::unrouted(path);
        };
        let expected = match call {
            "enroll/" | "check_in/" | "auth_ia/" => "POST",
            "agent_config/" => "GET",
            _ => return function::no_route(),
        };
        if req.method().as_str() != expected {
            return function::method_not_allowed();
        }
        let auth = function::header(&req, "authorization");
        let (s, clock, rng) = (&self.store, &self.base.clock, &self.base.rng);
        let result: Result<(Reply, &'static str), _> = async {
            Ok(match call {
                "enroll/" => {
                    let body = function::body(&req)?;
                    (
                        Reply::ok(agent::enroll(s, s, s, clock, rng, auth, body).await?),
                        "enrolled",
                    )
                }
                "agent_config/" => (
                    Reply::ok(agent::agent_config(s, s, &self.signer, clock, auth).await?),
                    "config",
                ),
                "check_in/" => {
                    agent::check_in(s, s, clock, auth, req_body(&req)).await?;
                    (
                        Reply {
                            status: 204,
                            body: Value::Null,
                            retry_after: None,
                        },
                        "checked_in",
                    )
                }
                _ => {
                    let url =
                        function::public_base_url(&self.base.config, &req).ok_or_else(|| {
                            endpoint_core::CoreError::BadRequest(
                                "The request has no usable Host header.".into(),
                            )
                        })?;
                    (
                        Reply::ok(agent::auth_ia(s, s, s, &self.base.env(), &url, auth).await?),
                        "auth_ia",
                    )
                }
            })
        }
        .await;
        result.unwrap_or_else(|e| failed(&e))
    }
}

/// The raw body: `check_in/` applies its own (same) bound and answers 413 itself.
fn req_body(req: &Request) -> &[u8] {
    match req.body() {
        lambda_http::Body::Text(t) => t.as_bytes(),
        lambda_http::Body::Binary(b) => b,
        _ => &[],
    }
}
