use endpoint_core::edge::{self, init_tracing, serve, Base};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_tracing();
    let base = Base::from_env()?;
    let aws = edge::aws_config().await;
    let store = edge::dynamo(&aws, &base);
    let signer = edge::challenge_keys(&aws, &base, &store, false);
    // /health asks KMS about the challenge key through the signer's own client.
    let key_status = signer.kms.clone();
    let region = aws.region().map_or("", |r| r.as_ref()).to_string();
    let app = fn_jwks::App::new(base, store, signer, key_status, &region);
    serve("jwks", |req| app.handle(req)).await
}
