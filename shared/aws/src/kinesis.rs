//! Amazon Kinesis: the event sink ([`beacon_domain::tracking::sink::EventSink`]) writing
//! with PutRecords, and the stream as a Lambda consumer receives it (records in,
//! partial batch responses out).

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use beacon_domain::config::{ConfigError, Env};
use beacon_domain::event::stream::StreamRecord;
use beacon_domain::event::Event;
use beacon_domain::metrics;
use beacon_domain::tracking::sink::{encode_record, partition_key, EventSink, Retry, Unstored};
use beacon_domain::tracking::Tracker;
use beacon_domain::verdict::networks::Networks;

/// PutRecords takes at most 500 records and 5 MB per call (Kinesis limits).
const MAX_RECORDS_PER_CALL: usize = 500;
const MAX_BYTES_PER_CALL: usize = 5 * 1024 * 1024;

/// The Kinesis adapter.
#[derive(Debug, Clone)]
pub struct KinesisSink {
    client: aws_sdk_kinesis::Client,
    stream_name: String,
    retry: Retry,
}

impl KinesisSink {
    pub fn new(client: aws_sdk_kinesis::Client, stream_name: impl Into<String>) -> Self {
        KinesisSink {
            client,
            stream_name: stream_name.into(),
            retry: Retry::default(),
        }
    }

    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    pub fn stream_name(&self) -> &str {
        &self.stream_name
    }

    async fn put_call(&self, batch: Vec<(usize, PutRecordsRequestEntry)>) -> Vec<Unstored> {
        let mut pending = batch;
        let mut errors: Vec<String> = vec![String::new(); pending.len()];
        for attempt in 0..self.retry.attempts {
            if attempt > 0 {
                tokio::time::sleep(self.retry.delay(attempt - 1)).await;
            }
            let entries = pending.iter().map(|(_, e)| e.clone()).collect();
            match self
                .client
                .put_records()
                .stream_name(&self.stream_name)
                .set_records(Some(entries))
                .send()
                .await
            {
                Ok(out) => {
                    let results = out.records();
                    let mut still = Vec::new();
                    let mut still_errors = Vec::new();
                    for ((index, entry), result) in pending.into_iter().zip(results) {
                        if let Some(code) = result.error_code() {
                            still_errors.push(format!(
                                "{code}: {}",
                                result.error_message().unwrap_or("no message")
                            ));
                            still.push((index, entry));
                        }
                    }
                    if !still.is_empty() {
                        metrics::count("KinesisEntriesRetried", still.len() as u64, &[]);
                    }
                    pending = still;
                    errors = still_errors;
                }
                Err(err) => {
                    let text = aws_sdk_kinesis::error::DisplayErrorContext(&err).to_string();
                    tracing::warn!(attempt, error = %text, "PutRecords call failed");
                    errors = vec![text; pending.len()];
                }
            }
            if pending.is_empty() {
                return Vec::new();
            }
        }
        pending
            .into_iter()
            .zip(errors)
            .map(|((index, _), error)| Unstored { index, error })
            .collect()
    }
}

impl EventSink for KinesisSink {
    async fn put(&self, events: &[Event]) -> Vec<Unstored> {
        let mut unstored = Vec::new();
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        for (index, event) in events.iter().enumerate() {
            let data = encode_record(event);
            let key = partition_key(event);
            let size = data.len() + key.len();
            if batch.len() == MAX_RECORDS_PER_CALL || batch_bytes + size > MAX_BYTES_PER_CALL {
                unstored.extend(self.put_call(std::mem::take(&mut batch)).await);
                batch_bytes = 0;
            }
            let entry = PutRecordsRequestEntry::builder()
                .data(Blob::new(data))
                .partition_key(key)
                .build()
                .expect("data and partition key are set");
            batch.push((index, entry));
            batch_bytes += size;
        }
        if !batch.is_empty() {
            unstored.extend(self.put_call(batch).await);
        }
        if !unstored.is_empty() {
            metrics::count("EventsNotStored", unstored.len() as u64, &[]);
            tracing::error!(
                stream = %self.stream_name,
                count = unstored.len(),
                first_error = %unstored[0].error,
                "events could not be written to Kinesis"
            );
        }
        unstored
    }
}

/// The open pixel's and click redirect's [`Tracker`]: reads `BEACON_STREAM_NAME`, the
/// tracking keys and `BEACON_IP_POLICY`; the range lists are the shipped ones, parsed
/// here (at init, not on the first request).
pub async fn tracker(
    env: &Env,
    aws: &aws_config::SdkConfig,
) -> Result<Tracker<KinesisSink>, ConfigError> {
    let stream = env.required("BEACON_STREAM_NAME")?;
    Ok(Tracker {
        keyring: crate::config::keyring(env, aws).await?,
        sink: KinesisSink::new(aws_sdk_kinesis::Client::new(aws), stream),
        ip_policy: env.ip_policy()?,
        networks: Networks::shipped(),
    })
}

/// The records of a Kinesis event, as every stream consumer reads them.
pub fn stream_records(event: &KinesisEvent) -> Vec<StreamRecord> {
    event
        .records
        .iter()
        .map(|r| StreamRecord {
            shard: shard_of(r.event_source_arn.as_deref(), r.event_id.as_deref()),
            sequence: r.kinesis.sequence_number.clone(),
            data: r.kinesis.data.0.clone(),
        })
        .collect()
}

/// A partial batch response asking Lambda to redeliver from `sequence` on: every
/// record before it was handled.
pub fn resume_from(sequence: &str) -> KinesisEventResponse {
    let mut failure = KinesisBatchItemFailure::default();
    failure.item_identifier = Some(sequence.to_string());
    let mut response = KinesisEventResponse::default();
    response.batch_item_failures.push(failure);
    response
}

/// `stream/shard` from a record's event source ARN and event id (`shardId-...:seq`).
fn shard_of(arn: Option<&str>, event_id: Option<&str>) -> String {
    let stream = arn
        .and_then(|a| a.rsplit_once("stream/"))
        .map_or("stream", |(_, s)| s);
    let shard = event_id
        .and_then(|id| id.split(':').next())
        .unwrap_or("shard");
    format!("{stream}/{shard}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_come_from_the_record() {
        let s = shard_of(
            Some("arn:aws:kinesis:us-east-1:123456789012:stream/beacon-events"),
            Some("shardId-000000000003:4954"),
        );
        assert_eq!(s, "beacon-events/shardId-000000000003");
    }
}
