//! The stream consumers of the stack (functions with Kinesis events), each behind its
//! local event source mapping ([`Poller`]), built from the same code and configuration
//! as the Lambda binaries.

use crate::poller::{Mapping, PollStats, Poller};
use crate::stack::Stack;
use aggregate::Aggregator;
use anyhow::{bail, Context as _, Result};
use beacon_shared::config::Env;
use beacon_shared::deadletter::SqsDeadLetters;
use beacon_shared::rollup_store::DynamoRollupStore;
use lambda_runtime::LambdaEvent;
use serde_json::Value;

pub struct StreamConsumer {
    pub name: String,
    pub poller: Poller,
    aggregator: Aggregator<DynamoRollupStore, SqsDeadLetters>,
}

impl StreamConsumer {
    /// Reads everything new on the stream and hands it to the function.
    pub async fn drain(&mut self) -> Result<PollStats> {
        let app = &self.aggregator;
        self.poller
            .drain(|event| async move {
                aggregate::handle(app, LambdaEvent::new(event, Default::default())).await
            })
            .await
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
            let aggregator = match function.binary.as_str() {
                "aggregate" => Aggregator::from_env(&Env::from_map(function.env.clone()), aws)
                    .context("initializing aggregate")?,
                other => bail!("no local stream consumer for `{other}`"),
            };
            consumers.push(StreamConsumer {
                name: name.clone(),
                poller: Poller::new(aws, mapping),
                aggregator,
            });
        }
    }
    Ok(consumers)
}
