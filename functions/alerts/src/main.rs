use beacon_shared::config::{aws_config, init_tracing, Env};
use lambda_runtime::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let aws = aws_config().await;
    let app = alerts::AlertsApp::from_env(&Env::process(), &aws)?;
    run(service_fn(|event| alerts::handle(&app, event))).await
}
