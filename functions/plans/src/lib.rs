//! `POST /v1/plans` and `GET /v1/plans/{plan}` (relying-party routes, IAM-authorized); a passed
//! plan's read carries its device assertion, signed once with the stack's assertion key.

use endpoint_core::assertion::{plan_assertion, AssertionView};
use endpoint_core::edge::routes::PlansRoute;
use endpoint_core::edge::{self, failed, Base};
use endpoint_core::edge::{parse_plan_request, plan_body, plan_created_body, Reply};
use endpoint_core::edge::{Answer, Label};
use endpoint_core::error::CoreError;
use endpoint_core::model::Plan;
use endpoint_core::ports::{ChallengeSigner, Clock, Store};
use endpoint_core::stage;
use lambda_http::Request;

pub struct App<S, K> {
    pub base: Base,
    pub store: S,
    pub signer: K,
}

impl<S: Store, K: ChallengeSigner> App<S, K> {
    pub async fn handle(&self, req: Request) -> Answer {
        let (route, v) = match edge::route::<PlansRoute>(&req) {
            Ok(route) => route,
            Err(reply) => return *reply,
        };
        let base = edge::public_base_url(&self.base.config, &req);
        match route {
            PlansRoute::CreatePlan => self.create(&req, base.as_deref()).await,
            PlansRoute::ReadPlan => self.read(&req, v[0], base.as_deref()).await,
        }
    }

    async fn create(&self, req: &Request, base: Option<&str>) -> Answer {
        let created = async {
            let (stage, options) = parse_plan_request(edge::body(req)?)?;
            let caller = edge::caller(req);
            let env = self.base.env(&caller);
            stage::create_plan_with(&self.store, &env, &stage, &options, None).await
        };
        // The page is at this region's own base URL: the plan's home.
        let page_base = self.base.config.settings.regions.own_base_url().or(base);
        match created.await {
            Ok(c) => (
                Reply::created(plan_created_body(&c, page_base)),
                Label::Created,
            ),
            Err(e) => failed(&e),
        }
    }

    async fn read(&self, req: &Request, plan: &str, base: Option<&str>) -> Answer {
        if let Err(answer) = edge::at_home(&self.base.config, req, plan) {
            return *answer;
        }
        let caller = edge::caller(req);
        let read = async {
            let plan = stage::read_own_plan(&self.store, &self.base.env(&caller), plan).await?;
            let assertion = self.assertion(&plan, base.unwrap_or("")).await?;
            Ok::<_, CoreError>((plan, assertion))
        };
        match read.await {
            Ok((plan, assertion)) => (Reply::ok(plan_body(&plan, &assertion)), Label::Read),
            Err(e) => failed(&e),
        }
    }

    /// A passed plan's device assertion, if the stack has an assertion key: the one kept with
    /// the plan, or at its first read one KMS `Sign` and one conditional write that keeps it.
    async fn assertion(&self, plan: &Plan, issuer: &str) -> Result<AssertionView, CoreError> {
        let Some(key) = self.base.config.assertion_key.as_deref() else {
            return Ok(AssertionView::Absent);
        };
        let now = self.base.clock.now();
        plan_assertion(
            &self.store,
            &self.signer,
            key,
            issuer,
            plan,
            now,
            &self.base.rng,
        )
        .await
    }
}
