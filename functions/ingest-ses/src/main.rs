use beacon_aws::config::{aws_config, init_tracing};
use beacon_domain::config::Env;
use lambda_runtime::{run, service_fn, Error};

// Mapping a provider's JSON allocates per field; mimalloc makes that measurably cheaper
// (benches/benches/ses_mapping.rs uses the same).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let aws = aws_config().await;
    let app = ingest_ses_function::IngestSesApp::from_env(&Env::process(), &aws).await?;
    run(service_fn(|event| ingest_ses_function::handle(&app, event))).await
}
