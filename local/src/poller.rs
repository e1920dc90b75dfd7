//! A local twin of Lambda's Kinesis event source mapping: it reads each shard in
//! order, hands batches to the consumer as real `KinesisEvent` payloads, and on
//! failure does what Lambda does: with a partial batch response, retries from the
//! lowest failed sequence number; on a function error, splits the batch in two
//! (bisection) if enabled, else retries it whole; after the retry limit, sends the
//! batch's metadata to the on-failure destination and moves on.

use anyhow::{Context as _, Result};
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use aws_sdk_kinesis::types::{Record, ShardIteratorType};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::future::Future;

/// The mapping's settings, as the template declares them.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub stream: String,
    pub stream_arn: String,
    pub batch_size: i32,
    pub bisect_on_error: bool,
    /// -1: forever (Lambda's default).
    pub max_retries: i64,
    /// Queue URL of the on-failure destination.
    pub on_failure_queue: Option<String>,
}

impl Mapping {
    /// From a function's `streams` entry in the provisioning output.
    pub fn from_stack(
        entry: &Value,
        queue_url_of: impl Fn(&str) -> Option<String>,
    ) -> Result<Mapping> {
        let text = |k: &str| entry.get(k).and_then(Value::as_str).map(str::to_string);
        let on_failure = entry
            .pointer("/destination_config/OnFailure/Destination")
            .and_then(Value::as_str)
            .and_then(queue_url_of);
        Ok(Mapping {
            stream: text("stream").context("stream name of the mapping")?,
            stream_arn: text("stream_arn").unwrap_or_default(),
            batch_size: entry
                .get("batch_size")
                .and_then(Value::as_i64)
                .unwrap_or(100) as i32,
            bisect_on_error: entry
                .get("bisect_batch_on_function_error")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            max_retries: entry
                .get("maximum_retry_attempts")
                .and_then(Value::as_i64)
                .unwrap_or(-1),
            on_failure_queue: on_failure,
        })
    }
}

/// What the poller did, for tests and progress output.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollStats {
    pub invocations: usize,
    pub function_errors: usize,
    pub partial_failures: usize,
    pub bisections: usize,
    pub discarded_batches: usize,
    pub records: usize,
}

pub struct Poller {
    kinesis: aws_sdk_kinesis::Client,
    sqs: aws_sdk_sqs::Client,
    pub mapping: Mapping,
    /// Per shard: the last sequence number fully handed over.
    positions: HashMap<String, String>,
    pub stats: PollStats,
}

/// The payload Lambda sends for these records.
pub fn kinesis_event(mapping: &Mapping, shard: &str, records: &[Record]) -> Result<KinesisEvent> {
    let records: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.partition_key(),
                    "sequenceNumber": r.sequence_number(),
                    "data": BASE64.encode(r.data().as_ref()),
                    "approximateArrivalTimestamp": r.approximate_arrival_timestamp().map(|t| t.as_secs_f64()).unwrap_or(0.0),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{shard}:{}", r.sequence_number()),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/local",
                "awsRegion": "us-east-1",
                "eventSourceARN": mapping.stream_arn,
            })
        })
        .collect();
    Ok(serde_json::from_value(json!({ "Records": records }))?)
}

impl Poller {
    pub fn new(aws: &aws_config::SdkConfig, mapping: Mapping) -> Self {
        Poller {
            kinesis: aws_sdk_kinesis::Client::new(aws),
            sqs: aws_sdk_sqs::Client::new(aws),
            mapping,
            positions: HashMap::new(),
            stats: PollStats::default(),
        }
    }

    /// Reads every shard until it is caught up, invoking `consumer` batch by batch.
    pub async fn drain<F, Fut, E>(&mut self, mut consumer: F) -> Result<PollStats>
    where
        F: FnMut(KinesisEvent) -> Fut,
        Fut: Future<Output = Result<KinesisEventResponse, E>>,
        E: std::fmt::Display,
    {
        let shards = self
            .kinesis
            .list_shards()
            .stream_name(&self.mapping.stream)
            .send()
            .await?;
        let shard_ids: Vec<String> = shards
            .shards()
            .iter()
            .map(|s| s.shard_id().to_string())
            .collect();
        for shard in shard_ids {
            loop {
                let records = self.read(&shard).await?;
                if records.is_empty() {
                    break;
                }
                self.deliver(&shard, records, &mut consumer).await?;
            }
        }
        Ok(self.stats.clone())
    }

    async fn read(&self, shard: &str) -> Result<Vec<Record>> {
        let request = self
            .kinesis
            .get_shard_iterator()
            .stream_name(&self.mapping.stream)
            .shard_id(shard);
        let request = match self.positions.get(shard) {
            Some(seq) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let iterator = request
            .send()
            .await?
            .shard_iterator
            .context("no shard iterator")?;
        let out = self
            .kinesis
            .get_records()
            .shard_iterator(iterator)
            .limit(self.mapping.batch_size)
            .send()
            .await?;
        Ok(out.records().to_vec())
    }

    async fn deliver<F, Fut, E>(
        &mut self,
        shard: &str,
        records: Vec<Record>,
        consumer: &mut F,
    ) -> Result<()>
    where
        F: FnMut(KinesisEvent) -> Fut,
        Fut: Future<Output = Result<KinesisEventResponse, E>>,
        E: std::fmt::Display,
    {
        let mut pending: VecDeque<Vec<Record>> = VecDeque::from([records]);
        let mut retries = 0i64;
        while let Some(batch) = pending.pop_front() {
            self.stats.invocations += 1;
            let event = kinesis_event(&self.mapping, shard, &batch)?;
            let failed_from = match consumer(event).await {
                Ok(response) => {
                    let lowest = response
                        .batch_item_failures
                        .iter()
                        .filter_map(|f| f.item_identifier.clone())
                        .min_by(|a, b| {
                            beacon_domain::event::stream::padded(a)
                                .cmp(&beacon_domain::event::stream::padded(b))
                        });
                    match lowest
                        .and_then(|seq| batch.iter().position(|r| r.sequence_number() == seq))
                    {
                        None => {
                            self.advance(shard, &batch);
                            retries = 0;
                            continue;
                        }
                        Some(at) => {
                            self.stats.partial_failures += 1;
                            self.advance(shard, &batch[..at]);
                            Some(batch[at..].to_vec())
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, shard, records = batch.len(), "consumer failed");
                    self.stats.function_errors += 1;
                    if self.mapping.bisect_on_error && batch.len() > 1 {
                        self.stats.bisections += 1;
                        let second = batch[batch.len() / 2..].to_vec();
                        let first = batch[..batch.len() / 2].to_vec();
                        pending.push_front(second);
                        pending.push_front(first);
                        retries += 1;
                        continue;
                    }
                    Some(batch)
                }
            };
            if let Some(rest) = failed_from {
                retries += 1;
                if self.mapping.max_retries >= 0 && retries > self.mapping.max_retries {
                    self.discard(shard, &rest).await?;
                    retries = 0;
                } else {
                    pending.push_front(rest);
                }
            }
        }
        Ok(())
    }

    fn advance(&mut self, shard: &str, done: &[Record]) {
        if let Some(last) = done.last() {
            self.stats.records += done.len();
            self.positions
                .insert(shard.to_string(), last.sequence_number().to_string());
        }
    }

    /// Lambda's on-failure record: where the discarded batch was, not its data.
    async fn discard(&mut self, shard: &str, batch: &[Record]) -> Result<()> {
        self.stats.discarded_batches += 1;
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return Ok(());
        };
        if let Some(queue) = &self.mapping.on_failure_queue {
            let body = json!({
                "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": self.mapping.max_retries + 1},
                "KinesisBatchInfo": {
                    "shardId": shard,
                    "startSequenceNumber": first.sequence_number(),
                    "endSequenceNumber": last.sequence_number(),
                    "batchSize": batch.len(),
                    "streamArn": self.mapping.stream_arn,
                },
            });
            self.sqs
                .send_message()
                .queue_url(queue)
                .message_body(body.to_string())
                .send()
                .await?;
        }
        self.advance(shard, batch);
        Ok(())
    }
}
