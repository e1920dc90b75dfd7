use beacon_aws::config::aws_config;
use beacon_aws::config::init_tracing;
use beacon_domain::config::Env;
use lambda_runtime::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let aws = aws_config().await;
    let app = report_function::ReportApp::from_env(&Env::process(), &aws)?;
    run(service_fn(|event| report_function::handle(&app, event))).await
}
