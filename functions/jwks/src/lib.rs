//! `GET /v1/connectors/{connector}/jwks.json`: the connector's challenge keys as a JWKS.

use endpoint_core::function::{self, failed, match_path, Base};
use endpoint_core::http::{jwks_body, Reply};
use endpoint_core::ports::{ChallengeSigner, Directory};
use endpoint_core::stage;
use lambda_http::Request;

pub struct App<S, K> {
    pub base: Base,
    pub store: S,
    pub signer: K,
}

impl<S: Directory, K: ChallengeSigner> App<S, K> {
    pub async fn handle(&self, req: Request) -> (Reply, &'static str) {
        let path = function::path(&req);
        let Some(v) = match_path(path, "/v1/connectors/{}/jwks.json") else {
            return function::unrouted(path);
        };
        if req.method().as_str() != "GET" {
            return function::method_not_allowed();
        }
        match stage::connector_jwks(&self.store, &self.signer, &self.base.clock, v[0]).await {
            Ok(jwks) => (Reply::ok(jwks_body(&jwks)), "jwks"),
            Err(e) => failed(&e),
        }
    }
}
