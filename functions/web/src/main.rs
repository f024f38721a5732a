use endpoint_core::adapters::{aws::load_config, dynamodb::DynamoStore};
use endpoint_core::function::{init_tracing, serve, Base};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let base = Base::from_env()?;
    let store = DynamoStore::from_config(&load_config().await, &base.config.table);
    let app = fn_web::App::new(base, store);
    serve("web", |req| app.handle(req)).await
}
