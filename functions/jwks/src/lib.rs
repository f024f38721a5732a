//! `GET /v1/connectors/{connector}/jwks.json`: the connector's challenge keys as a JWKS; and
//! `GET /.well-known/jwks.json`: the stack's device assertion key and its signals key (the key
//! of its security event tokens: the SSF configuration's `jwks_uri`).

use endpoint_core::assertion::assertion_jwks;
use endpoint_core::edge::routes::JwksRoute;
use endpoint_core::edge::{self, failed, Base};
use endpoint_core::edge::{to_body, Reply};
use endpoint_core::edge::{Answer, Label};
use endpoint_core::error::CoreError;
use endpoint_core::ports::{ChallengeSigner, Directory};
use endpoint_core::protocol::jwk::Jwks;
use endpoint_core::stage;
use lambda_http::Request;

pub struct App<S, K> {
    pub base: Base,
    pub store: S,
    pub signer: K,
}

impl<S: Directory, K: ChallengeSigner> App<S, K> {
    /// The assertion key and the signals key, each as configured (404 without either).
    async fn stack_jwks(&self) -> Result<Jwks, CoreError> {
        let config = &self.base.config;
        let keys = [
            config.assertion_key.as_deref(),
            config.signals_key.as_deref(),
        ];
        let mut jwks = Jwks { keys: Vec::new() };
        for key in keys.into_iter().flatten() {
            jwks.keys
                .extend(assertion_jwks(&self.signer, key).await?.keys);
        }
        if jwks.keys.is_empty() {
            return Err(CoreError::NotFound("assertion key".into()));
        }
        Ok(jwks)
    }

    pub async fn handle(&self, req: Request) -> Answer {
        let (route, v) = match edge::route::<JwksRoute>(&req) {
            Ok(route) => route,
            Err(reply) => return *reply,
        };
        let jwks = match route {
            JwksRoute::AssertionJwks => self.stack_jwks().await,
            JwksRoute::Jwks => {
                stage::connector_jwks(&self.store, &self.signer, &self.base.clock, v[0]).await
            }
        };
        match jwks {
            Ok(jwks) => (Reply::ok(to_body(&jwks)), Label::Jwks),
            Err(e) => failed(&e),
        }
    }
}
