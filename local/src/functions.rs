//! The HTTP functions this gateway hosts, built from the same library code and the same
//! configuration as the Lambda binaries: one arm per binary in the template.

use crate::stack::Function;
use anyhow::{bail, Context as _, Result};
use beacon_aws::dynamo::apikeys::DynamoApiKeys;
use beacon_aws::dynamo::providers::DynamoProviders;
use beacon_aws::kinesis::KinesisSink;
use beacon_domain::apikey::CachedApiKeys;
use beacon_domain::config::Env;
use beacon_domain::tracking::Tracker;
use collect_function::CollectApp;
use ingest_webhooks_function::WebhooksApp;
use lambda_http::request::LambdaRequest;
use lambda_http::{service_fn, Adapter, Context, LambdaEvent, Service};
use serde_json::Value;
use stats_function::{DeployedStats, StatsApp};

pub enum HttpFunction {
    OpenPixel(Tracker<KinesisSink>),
    ClickRedirect(Tracker<KinesisSink>),
    Collect(CollectApp<KinesisSink, CachedApiKeys<DynamoApiKeys>>),
    Stats(Box<DeployedStats>),
    Webhooks(Box<WebhooksApp<KinesisSink, DynamoProviders>>),
}

impl HttpFunction {
    /// Initializes the function as its `main` would, with its own environment.
    pub async fn build(function: &Function, aws: &aws_config::SdkConfig) -> Result<Self> {
        let env = Env::from_map(function.env.clone());
        let name = function.binary.as_str();
        let built = match name {
            "open-pixel" => HttpFunction::OpenPixel(
                beacon_aws::kinesis::tracker(&env, aws)
                    .await
                    .context("initializing open-pixel")?,
            ),
            "click-redirect" => HttpFunction::ClickRedirect(
                beacon_aws::kinesis::tracker(&env, aws)
                    .await
                    .context("initializing click-redirect")?,
            ),
            "collect" => HttpFunction::Collect(
                CollectApp::from_env(&env, aws).context("initializing collect")?,
            ),
            "stats" => HttpFunction::Stats(Box::new(
                StatsApp::from_env(&env, aws)
                    .await
                    .context("initializing stats")?,
            )),
            "ingest-webhooks" => HttpFunction::Webhooks(Box::new(
                WebhooksApp::from_env(&env, aws)
                    .await
                    .context("initializing ingest-webhooks")?,
            )),
            other => bail!("the local gateway does not know the HTTP function `{other}`"),
        };
        Ok(built)
    }

    /// One invocation, through `lambda_http`'s own adapter: the API Gateway payload is
    /// turned into a request, handled, and turned back into the gateway's response
    /// payload exactly as in Lambda. The payload comes back as the JSON Lambda returns.
    pub async fn invoke(&self, payload: LambdaRequest) -> Result<Value> {
        let event = LambdaEvent::new(payload, Context::default());
        let response = match self {
            HttpFunction::OpenPixel(t) => {
                Adapter::from(service_fn(|req| open_pixel_function::handle(t, req)))
                    .call(event)
                    .await
            }
            HttpFunction::ClickRedirect(t) => {
                Adapter::from(service_fn(|req| click_redirect_function::handle(t, req)))
                    .call(event)
                    .await
            }
            HttpFunction::Collect(c) => {
                Adapter::from(service_fn(|req| collect_function::handle(c, req)))
                    .call(event)
                    .await
            }
            HttpFunction::Stats(s) => {
                Adapter::from(service_fn(|req| stats_function::handle(s.as_ref(), req)))
                    .call(event)
                    .await
            }
            HttpFunction::Webhooks(w) => {
                Adapter::from(service_fn(|req| {
                    ingest_webhooks_function::handle(w.as_ref(), req)
                }))
                .call(event)
                .await
            }
        };
        let response = response.map_err(|e| anyhow::anyhow!("function error: {e}"))?;
        Ok(serde_json::to_value(response)?)
    }
}
