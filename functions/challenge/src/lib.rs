//! `GET /v1/plans/{plan}/executor`: challenge issuance, the DTH path, skips and final outcomes.

use endpoint_core::function::{self, failed, Base};
use endpoint_core::http::{outcome_body, Reply};
use endpoint_core::ports::{ChallengeSigner, DeviceStore, PlanStore};
use endpoint_core::protocol::DTH_HEADER;
use endpoint_core::routes;
use endpoint_core::stage;
use lambda_http::Request;

pub struct App<S, K> {
    pub base: Base,
    pub store: S,
    pub signer: K,
}

impl<S: PlanStore + DeviceStore, K: ChallengeSigner> App<S, K> {
    pub async fn handle(&self, req: Request) -> (Reply, &'static str) {
        let (_, v) = match function::route(&req, &[routes::EXECUTOR_GET]) {
            Ok(route) => route,
            Err(reply) => return *reply,
        };
        let dth = function::header(&req, DTH_HEADER);
        match stage::executor_get(
            &self.store,
            &self.store,
            &self.signer,
            &self.base.env(),
            v[0],
            dth,
        )
        .await
        {
            Ok(outcome) => (Reply::ok(outcome_body(&outcome)), outcome.label()),
            Err(e) => failed(&e),
        }
    }
}
