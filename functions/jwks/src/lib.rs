//! `GET /v1/connectors/{connector}/jwks.json`: the connector's challenge keys as a JWKS;
//! `GET /.well-known/jwks.json`: the stack's device assertion key and its signals key (the key
//! of its security event tokens: the SSF configuration's `jwks_uri`); and `GET /health`: whether
//! this region can serve a login (its table and its challenge key, `endpoint_core::health`), for
//! Route 53's health checks. The keys' function serves it: it already reads the table and
//! describes challenge keys, and it serves no login, so checkers never take a login's
//! concurrency.

use endpoint_core::assertion::assertion_jwks;
use endpoint_core::edge::routes::JwksRoute;
use endpoint_core::edge::{self, failed, Base};
use endpoint_core::edge::{health_reply, to_body, Reply};
use endpoint_core::edge::{Answer, Label};
use endpoint_core::error::CoreError;
use endpoint_core::health::Health;
use endpoint_core::ports::{ChallengeSigner, DataKeyRecords, Directory, KeyStatus, TableProbe};
use endpoint_core::protocol::jwk::Jwks;
use endpoint_core::stage;
use lambda_http::Request;

pub struct App<S, K, H> {
    pub base: Base,
    pub store: S,
    pub signer: K,
    /// `/health`: what it checks (`CHALLENGE_KEY_ID`) and the instance's last report.
    pub health: Health,
    /// The key service `/health` asks (`DescribeKey`).
    pub key_status: H,
    /// The AWS region, as `/health` names it.
    pub region: String,
}

impl<S, K, H> App<S, K, H>
where
    S: Directory + DataKeyRecords + TableProbe,
    K: ChallengeSigner,
    H: KeyStatus,
{
    /// The function over its clients: `/health` checks the key `CHALLENGE_KEY_ID` names.
    pub fn new(base: Base, store: S, signer: K, key_status: H, region: &str) -> Self {
        let health = Health::new(base.config.challenge_key.clone());
        App {
            base,
            store,
            signer,
            health,
            key_status,
            region: region.to_string(),
        }
    }

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
            JwksRoute::Health => {
                let report = self
                    .health
                    .report(&self.store, &self.key_status, &self.store, &self.base.clock)
                    .await;
                let label = if report.healthy() {
                    Label::Healthy
                } else {
                    Label::Unavailable
                };
                return (health_reply(&report, &self.region), label);
            }
        };
        match jwks {
            Ok(jwks) => (Reply::ok(to_body(&jwks)), Label::Jwks),
            Err(e) => failed(&e),
        }
    }
}
