use endpoint_core::adapters::{aws::load_config, dynamodb::DynamoStore};
use endpoint_core::function::{init_tracing, serve, Base};
use fn_response::{App, InvokeMinter};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let base = Base::from_env()?;
    let aws = load_config().await;
    let store = DynamoStore::from_config(&aws, &base.config.table);
    let minter = InvokeMinter {
        client: aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::config::Builder::from(&aws)
                .interceptor(endpoint_core::adapters::aws::CallTimer)
                .build(),
        ),
        function: base.config.challenge_function.clone(),
    };
    let app = App {
        base,
        store,
        minter,
    };
    serve("response", |req| app.handle(req)).await
}
