use endpoint_core::adapters::{aws::load_config, dynamodb::DynamoStore, kms::KmsSigner};
use endpoint_core::function::{init_tracing, serve, Base};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let base = Base::from_env()?;
    let aws = load_config().await;
    let (store, signer) = (
        DynamoStore::from_config(&aws, &base.config.table),
        KmsSigner::from_config(&aws),
    );
    let app = fn_jwks::App {
        base,
        store,
        signer,
    };
    serve("jwks", |req| app.handle(req)).await
}
