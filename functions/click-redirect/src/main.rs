use beacon_shared::config::{aws_config, init_tracing, Env};
use beacon_shared::tracking::Tracker;
use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let aws = aws_config().await;
    let tracker = Tracker::from_env(&Env::process(), &aws).await?;
    run(service_fn(|req| click_redirect::handle(&tracker, req))).await
}
