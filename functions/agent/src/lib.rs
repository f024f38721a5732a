//! The agent API under `/api/v3/endpoints/agents/connectors/` (`enroll/`, `agent_config/`,
//! `check_in/`, `auth_ia/`), `GET /api/v3/core/brands/current/` and the directory sync's
//! `GET /api/v3/core/users/` and `core/groups/` (an empty page), with the reference's paths,
//! headers, JSON and status codes. One small handler per route.

use endpoint_core::agent;
use endpoint_core::edge::routes::AgentRoute;
use endpoint_core::edge::Reply;
use endpoint_core::edge::{self, failed, Base};
use endpoint_core::edge::{Answer, Label};
use endpoint_core::facts::MAX_FACTS_BODY;
use endpoint_core::ports::{ChallengeSigner, Store};
use endpoint_core::CoreError;
use lambda_http::Request;
use serde_json::Value;

pub struct App<S, K> {
    pub base: Base,
    pub store: S,
    pub signer: K,
}

type Handled = Result<Answer, CoreError>;

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

impl<S, K> App<S, K>
where
    S: Store,
    K: ChallengeSigner,
{
    pub async fn handle(&self, req: Request) -> Answer {
        let route = match edge::route::<AgentRoute>(&req) {
            Ok((route, _)) => route,
            Err(reply) => return *reply,
        };
        let result = match route {
            AgentRoute::CurrentBrand => Ok(self.brand(&req)),
            AgentRoute::DirectoryUsers | AgentRoute::DirectoryGroups => self.directory(&req).await,
            AgentRoute::Enroll => self.enroll(&req).await,
            AgentRoute::AgentConfig => self.agent_config(&req).await,
            AgentRoute::CheckIn => self.check_in(&req).await,
            AgentRoute::AuthIa => self.auth_ia(&req).await,
        };
        result.unwrap_or_else(|e| failed(&e))
    }

    fn brand(&self, req: &Request) -> Answer {
        let domain = edge::host(req).map(domain_of).unwrap_or("");
        let brand = agent::current_brand(&self.base.config.brand_title, domain);
        (Reply::ok(edge::to_body(&brand)), Label::Brand)
    }

    async fn directory(&self, req: &Request) -> Handled {
        let auth = edge::header(req, "authorization");
        let page = agent::directory_page(&self.store, &self.base.clock, auth).await?;
        Ok((Reply::ok(edge::to_body(&page)), Label::Directory))
    }

    async fn enroll(&self, req: &Request) -> Handled {
        let s = &self.store;
        // Over 64 KiB is 413 before anything else; the body's fields are checked after the
        // credentials, as on the reference.
        let request = edge::parse_object(edge::body(req)?);
        let auth = edge::header(req, "authorization");
        let caller = edge::caller(req);
        let enrolled = agent::enroll(s, &self.base.env(&caller), auth, request).await?;
        Ok((Reply::ok(edge::enrolled_body(&enrolled)), Label::Enrolled))
    }

    async fn agent_config(&self, req: &Request) -> Handled {
        let s = &self.store;
        let auth = edge::header(req, "authorization");
        let config = agent::agent_config(s, &self.signer, &self.base.clock, auth).await?;
        Ok((Reply::ok(edge::to_body(&config)), Label::Config))
    }

    async fn check_in(&self, req: &Request) -> Handled {
        let s = &self.store;
        // Device facts are large (every process, package, user): 2 MiB, not 64 KiB.
        let body = edge::body_within(req, MAX_FACTS_BODY)?;
        let auth = edge::header(req, "authorization");
        let caller = edge::caller(req);
        agent::check_in(s, &self.base.env(&caller), auth, body).await?;
        let reply = Reply::json(204, Value::Null);
        Ok((reply, Label::CheckedIn))
    }

    async fn auth_ia(&self, req: &Request) -> Handled {
        let s = &self.store;
        let url = edge::public_base_url(&self.base.config, req).ok_or_else(|| {
            CoreError::BadRequest("The request has no usable Host header.".into())
        })?;
        let auth = edge::header(req, "authorization");
        let caller = edge::caller(req);
        let created = agent::auth_ia(s, &self.base.env(&caller), auth).await?;
        Ok((
            Reply::ok(edge::interactive_auth_body(&created, &url)),
            Label::InteractiveAuth,
        ))
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
