//! API Gateway's `$default` route: every request no route serves gets the contract's JSON 404,
//! or 405 when the path exists with other methods. Holds no permission at all.

use endpoint_core::edge::{init_tracing, path, serve, unrouted};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    serve("fallback", |req| async move { unrouted(path(&req)) }).await
}
