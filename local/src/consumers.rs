//! The stream consumers of the stack (functions with Kinesis events), each behind its
//! local event source mapping ([`Poller`]), built from the same code and configuration
//! as the Lambda binaries.

use crate::poller::{Mapping, PollStats, Poller};
use crate::stack::Stack;
use aggregate_function::AggregateApp;
use anyhow::{bail, Context as _, Result};
use beacon_aws::dynamo::live::DynamoLive;
use beacon_aws::dynamo::rollups::DynamoRollupStore;
use beacon_aws::sqs::SqsDeadLetters;
use beacon_domain::config::Env;
use beacon_lake::store::S3Lake;
use etl_function::EtlApp;
use lambda_runtime::LambdaEvent;
use serde_json::Value;

/// The function behind a mapping, as its binary builds it.
enum Handler {
    Aggregate(AggregateApp<DynamoRollupStore, SqsDeadLetters, DynamoLive>),
    Etl(EtlApp<S3Lake, SqsDeadLetters>),
}

pub struct StreamConsumer {
    pub name: String,
    /// The function's binary (`aggregate`, `etl`).
    pub binary: String,
    pub poller: Poller,
    handler: Handler,
}

impl StreamConsumer {
    /// Reads everything new on the stream and hands it to the function.
    pub async fn drain(&mut self) -> Result<PollStats> {
        match &self.handler {
            Handler::Aggregate(app) => {
                self.poller
                    .drain(|event| async move {
                        aggregate_function::handle(app, LambdaEvent::new(event, Default::default()))
                            .await
                    })
                    .await
            }
            Handler::Etl(app) => {
                self.poller
                    .drain(|event| async move {
                        etl_function::handle(app, LambdaEvent::new(event, Default::default())).await
                    })
                    .await
            }
        }
    }
}

/// One consumer per Kinesis-triggered function of the stack.
pub fn build(stack: &Stack, aws: &aws_config::SdkConfig) -> Result<Vec<StreamConsumer>> {
    let queue_url_of = |arn: &str| {
        stack
            .resources
            .values()
            .find(|r| r.get("arn").and_then(Value::as_str) == Some(arn))
            .and_then(|r| r.get("url").and_then(Value::as_str))
            .map(str::to_string)
    };
    let mut consumers = Vec::new();
    for (name, function) in &stack.functions {
        for entry in &function.streams {
            let mapping = Mapping::from_stack(entry, queue_url_of)
                .with_context(|| format!("stream event of {name}"))?;
            let env = Env::from_map(function.env.clone());
            let handler = match function.binary.as_str() {
                "aggregate" => Handler::Aggregate(
                    AggregateApp::from_env(&env, aws).context("initializing aggregate")?,
                ),
                "etl" => Handler::Etl(EtlApp::from_env(&env, aws).context("initializing etl")?),
                other => bail!("no local stream consumer for `{other}`"),
            };
            consumers.push(StreamConsumer {
                name: name.clone(),
                binary: function.binary.clone(),
                poller: Poller::new(aws, mapping),
                handler,
            });
        }
    }
    Ok(consumers)
}

/// Keeps draining every consumer's stream, as Lambda's event source mappings do, until
/// the task is aborted: what `serve` runs, and the demo while it keeps serving.
pub fn poll_forever(mut consumers: Vec<StreamConsumer>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            for c in consumers.iter_mut() {
                if let Err(e) = c.drain().await {
                    eprintln!("stream consumer {}: {e:#}", c.name);
                }
            }
            // The template's batching window.
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    })
}
