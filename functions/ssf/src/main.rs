use endpoint_core::edge::{self, init_tracing, serve, Base};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let base = Base::from_env()?;
    let aws = edge::aws_config().await;
    let (store, signer) = (edge::dynamo_sealing(&aws, &base), edge::kms(&aws));
    let app = fn_ssf::App {
        base,
        store,
        signer,
    };
    serve("ssf", |req| app.handle(req)).await
}
