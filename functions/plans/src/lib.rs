//! `POST /v1/plans` and `GET /v1/plans/{plan}` (relying-party routes, IAM-authorized).

use endpoint_core::edge::routes;
use endpoint_core::edge::{self, failed, Base};
use endpoint_core::edge::{parse_plan_request, plan_body, plan_created_body, Reply};
use endpoint_core::edge::{Answer, Label};
use endpoint_core::ports::Store;
use endpoint_core::stage;
use lambda_http::Request;

pub struct App<S> {
    pub base: Base,
    pub store: S,
}

impl<S: Store> App<S> {
    pub async fn handle(&self, req: Request) -> Answer {
        let (route, v) = match edge::route(&req, &[routes::CREATE_PLAN, routes::READ_PLAN]) {
            Ok(route) => route,
            Err(reply) => return *reply,
        };
        if route == routes::CREATE_PLAN {
            let created = async {
                let (stage, redirect) = parse_plan_request(edge::body(&req)?)?;
                stage::create_plan(
                    &self.store,
                    &self.base.env(&edge::caller(&req)),
                    &stage,
                    redirect.as_deref(),
                    None,
                )
                .await
            };
            let base = edge::public_base_url(&self.base.config, &req);
            return match created.await {
                Ok(c) => (
                    Reply::created(plan_created_body(&c, base.as_deref())),
                    Label::Created,
                ),
                Err(e) => failed(&e),
            };
        }
        let caller = edge::caller(&req);
        match stage::read_own_plan(&self.store, &self.base.env(&caller), v[0]).await {
            Ok(plan) => (Reply::ok(plan_body(&plan)), Label::Read),
            Err(e) => failed(&e),
        }
    }
}
