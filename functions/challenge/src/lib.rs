//! `GET /v1/plans/{plan}/executor`: challenge issuance, the DTH path, skips and final outcomes.

use endpoint_core::edge::routes::ChallengeRoute;
use endpoint_core::edge::{self, failed, Base};
use endpoint_core::edge::{outcome_body, Reply};
use endpoint_core::edge::{Answer, Label};
use endpoint_core::ports::{ChallengeSigner, Store};
use endpoint_core::protocol::DTH_HEADER;
use endpoint_core::stage;
use lambda_http::Request;

pub struct App<S, K> {
    pub base: Base,
    pub store: S,
    pub signer: K,
}

impl<S: Store, K: ChallengeSigner> App<S, K> {
    pub async fn handle(&self, req: Request) -> Answer {
        // The one route of the function: a second one would make this pattern refutable.
        let (ChallengeRoute::GetExecutor, v) = match edge::route::<ChallengeRoute>(&req) {
            Ok(route) => route,
            Err(reply) => return *reply,
        };
        if let Err(answer) = edge::at_home(&self.base.config, &req, v[0]) {
            return *answer;
        }
        let dth = edge::header(&req, DTH_HEADER);
        match stage::executor_get(
            &self.store,
            &self.signer,
            &self.base.env(&edge::caller(&req)),
            v[0],
            dth,
        )
        .await
        {
            Ok(outcome) => (Reply::ok(outcome_body(&outcome)), Label::of(&outcome)),
            Err(e) => failed(&e),
        }
    }
}
