use beacon_aws::config::{aws_config, init_tracing};
use beacon_domain::config::Env;
use lambda_http::{run, service_fn, Error};

// Mapping a provider's JSON allocates per field; mimalloc makes that measurably cheaper
// (benches/benches/ses_mapping.rs uses the same).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let aws = aws_config().await;
    let app = ingest_webhooks_function::WebhooksApp::from_env(&Env::process(), &aws).await?;
    run(service_fn(|req| {
        ingest_webhooks_function::handle(&app, req)
    }))
    .await
}
