use endpoint_core::edge::{self, init_tracing, serve, Base};
use fn_response::{App, InvokeMinter};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let base = Base::from_env()?;
    let aws = edge::aws_config().await;
    let store = edge::dynamo_sealing(&aws, &base);
    let minter = InvokeMinter::from_config(&aws, &base);
    let app = App {
        base,
        store,
        minter,
    };
    serve("response", |req| app.handle(req)).await
}
