use endpoint_core::edge::{self, init_tracing, serve, Base};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let base = Base::from_env()?;
    let aws = edge::aws_config().await;
    let (store, signer) = (edge::dynamo(&aws, &base), edge::kms(&aws));
    let fetcher = fn_oidc::fetch::HttpJwks::new(base.config.push_egress);
    let app = fn_oidc::App::new(base, store, signer, fetcher);
    serve("oidc", |req| app.handle(req)).await
}
