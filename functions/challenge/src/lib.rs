//! `GET /v1/plans/{plan}/executor`: challenge issuance, the DTH path, skips and final outcomes.

use endpoint_core::function::{self, failed, match_path, Base};
use endpoint_core::http::{outcome_body, Reply};
use endpoint_core::ports::{ChallengeSigner, DeviceStore, PlanStore};
use endpoint_core::protocol::DTH_HEADER;
use endpoint_core::stage;
use lambda_http::Request;

pub struct App<S, K> {
    pub base: Base,
    pub store: S,
    pub signer: K,
}

impl<S: PlanStore + DeviceStore, K: ChallengeSigner> App<S, K> {
    pub async fn handle(&self, req: Request) -> (Reply, &'static str) {
        let path = function::path(&req);
        let Some(v) = match_path(path, "/v1/plans/{}/executor") else {
            return function::unrouted(path);
        };
        if req.method().as_str() != "GET" {
            return function::method_not_allowed();
        }
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
