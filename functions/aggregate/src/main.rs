use beacon_aws::config::aws_config;
use beacon_aws::config::init_tracing;
use beacon_domain::config::Env;
use lambda_runtime::{run, service_fn, Error};

// The fold allocates a little per record; mimalloc makes that measurably cheaper than
// the system allocator (see benches/benches/aggregate.rs, which uses the same).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let aws = aws_config().await;
    let app = aggregate_function::AggregateApp::from_env(&Env::process(), &aws)?;
    run(service_fn(|event| aggregate_function::handle(&app, event))).await
}
