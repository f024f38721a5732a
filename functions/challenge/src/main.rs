use endpoint_core::function::{dynamo_and_kms, init_tracing, serve, Base};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let base = Base::from_env()?;
    let (store, signer) = dynamo_and_kms(&base).await;
    let app = fn_challenge::App {
        base,
        store,
        signer,
    };
    serve("challenge", |req| app.handle(req)).await
}
