//! `GET /v1/connectors/{connector}/jwks.json`: the connector's challenge keys as a JWKS.

use endpoint_core::edge::routes;
use endpoint_core::edge::{self, failed, Base};
use endpoint_core::edge::{to_body, Reply};
use endpoint_core::edge::{Answer, Label};
use endpoint_core::ports::{ChallengeSigner, Directory};
use endpoint_core::stage;
use lambda_http::Request;

pub struct App<S, K> {
    pub base: Base,
    pub store: S,
    pub signer: K,
}

impl<S: Directory, K: ChallengeSigner> App<S, K> {
    pub async fn handle(&self, req: Request) -> Answer {
        let (_, v) = match edge::route(&req, &[routes::JWKS]) {
            Ok(route) => route,
            Err(reply) => return *reply,
        };
        match stage::connector_jwks(&self.store, &self.signer, &self.base.clock, v[0]).await {
            Ok(jwks) => (Reply::ok(to_body(&jwks)), Label::Jwks),
            Err(e) => failed(&e),
        }
    }
}
