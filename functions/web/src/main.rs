use endpoint_core::edge::{self, init_tracing, serve, Base};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let base = Base::from_env()?;
    let aws = edge::aws_config().await;
    let store = edge::dynamo(&aws, &base);
    let app = fn_web::App::new(base, store);
    serve("web", |req| app.handle(req)).await
}
