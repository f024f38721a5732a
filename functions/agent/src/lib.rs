//! The agent API under `/api/v3/endpoints/agents/connectors/` (`enroll/`, `agent_config/`,
//! `check_in/`, `auth_ia/`) and `GET /api/v3/core/brands/current/`, with the reference's paths,
//! headers, JSON and status codes. One small handler per route.

use endpoint_core::agent;
use endpoint_core::facts::MAX_FACTS_BODY;
use endpoint_core::function::{self, failed, Base};
use endpoint_core::http::Reply;
use endpoint_core::ports::{ChallengeSigner, DeviceStore, Directory, EnrollmentStore, PlanStore};
use endpoint_core::routes;
use endpoint_core::CoreError;
use lambda_http::Request;
use serde_json::Value;

pub struct App<S, K> {
    pub base: Base,
    pub store: S,
    pub signer: K,
}

type Handled = Result<(Reply, &'static str), CoreError>;

/// A `Host` header's domain, without its port (authentik matches brands by domain).
pub fn domain_of(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<Value, CoreError> {
    // Our own plain structs of strings, numbers and lists: serializing them cannot fail.
    serde_json::to_value(value)
        .map_err(|_| CoreError::Unavailable("The answer could not be encoded.".into()))
}

impl<S, K> App<S, K>
where
    S: PlanStore + Directory + DeviceStore + EnrollmentStore,
    K: ChallengeSigner,
{
    pub async fn handle(&self, req: Request) -> (Reply, &'static str) {
        let served = [
            routes::ENROLL,
            routes::AGENT_CONFIG,
            routes::CHECK_IN,
            routes::AUTH_IA,
            routes::CURRENT_BRAND,
        ];
        let route = match function::route(&req, &served) {
            Ok((route, _)) => route,
            Err(reply) => return *reply,
        };
        let result = match route {
            r if r == routes::CURRENT_BRAND => Ok(self.brand(&req)),
            r if r == routes::ENROLL => self.enroll(&req).await,
            r if r == routes::AGENT_CONFIG => self.agent_config(&req).await,
            r if r == routes::CHECK_IN => self.check_in(&req).await,
            _ => self.auth_ia(&req).await,
        };
        result.unwrap_or_else(|e| failed(&e))
    }

    fn brand(&self, req: &Request) -> (Reply, &'static str) {
        let domain = function::host(req).map(domain_of).unwrap_or("");
        let brand = agent::current_brand(&self.base.config.brand_title, domain);
        match json(&brand) {
            Ok(body) => (Reply::ok(body), "brand"),
            Err(e) => failed(&e),
        }
    }

    async fn enroll(&self, req: &Request) -> Handled {
        let s = &self.store;
        let body = function::body(req)?;
        let auth = function::header(req, "authorization");
        let answer = agent::enroll(s, s, s, &self.base.clock, &self.base.rng, auth, body).await?;
        Ok((Reply::ok(answer), "enrolled"))
    }

    async fn agent_config(&self, req: &Request) -> Handled {
        let s = &self.store;
        let auth = function::header(req, "authorization");
        let config = agent::agent_config(s, s, &self.signer, &self.base.clock, auth).await?;
        Ok((Reply::ok(json(&config)?), "config"))
    }

    async fn check_in(&self, req: &Request) -> Handled {
        let s = &self.store;
        // Device facts are large (every process, package, user): 2 MiB, not 64 KiB.
        let body = function::body_within(req, MAX_FACTS_BODY)?;
        let auth = function::header(req, "authorization");
        agent::check_in(s, s, &self.base.clock, auth, body).await?;
        let reply = Reply::json(204, Value::Null);
        Ok((reply, "checked_in"))
    }

    async fn auth_ia(&self, req: &Request) -> Handled {
        let s = &self.store;
        let url = function::public_base_url(&self.base.config, req).ok_or_else(|| {
            CoreError::BadRequest("The request has no usable Host header.".into())
        })?;
        let auth = function::header(req, "authorization");
        let answer = agent::auth_ia(s, s, s, &self.base.env(), &url, auth).await?;
        Ok((Reply::ok(answer), "auth_ia"))
    }
}

#[cfg(test)]
mod tests {
    use super::domain_of;

    #[test]
    fn domains_lose_their_port() {
        assert_eq!(domain_of("auth.example.com"), "auth.example.com");
        assert_eq!(domain_of("127.0.0.1:9000"), "127.0.0.1");
        assert_eq!(domain_of("[::1]:9000"), "[::1]");
        assert_eq!(domain_of("[::1]"), "[::1]");
    }
}
