use beacon_aws::config::aws_config;
use beacon_aws::config::init_tracing;
use beacon_domain::config::Env;
use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let aws = aws_config().await;
    let tracker = beacon_aws::kinesis::tracker(&Env::process(), &aws).await?;
    run(service_fn(|req| {
        click_redirect_function::handle(&tracker, req)
    }))
    .await
}
