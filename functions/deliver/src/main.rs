use endpoint_core::edge::{self, init_tracing, Base};
use lambda_http::lambda_runtime::{run, service_fn, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let base = Base::from_env()?;
    let aws = edge::aws_config().await;
    let (store, signer) = (edge::dynamo_sealing(&aws, &base), edge::kms(&aws));
    let pusher = fn_deliver::HttpPusher::new(base.config.push_egress);
    let app = fn_deliver::App {
        base,
        store,
        signer,
        pusher,
    };
    let app = &app;
    run(service_fn(move |_: LambdaEvent<Value>| async move {
        match app.run().await {
            Ok(r) => Ok::<_, std::convert::Infallible>(
                json!({"streams": r.streams, "delivered": r.delivered, "failed": r.failed}),
            ),
            // A failed run is retried by the next one: report it, never crash.
            Err(e) => {
                tracing::error!(event = "push_run_failed", error = %e, "push delivery failed");
                Ok(json!({"error": e.to_string()}))
            }
        }
    }))
    .await
}
