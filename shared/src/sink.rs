//! The event sink: where accepted events go. In AWS that is the Kinesis stream, written
//! with PutRecords; only the entries Kinesis refused are retried, with bounded backoff,
//! and whatever is still refused is reported back per event so the caller can tell its
//! client (collect answers 503) or count the loss (pixel and redirect never fail).

use crate::event::Event;
use crate::metrics;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::time::Duration;

/// PutRecords takes at most 500 records and 5 MB per call (Kinesis limits).
const MAX_RECORDS_PER_CALL: usize = 500;
const MAX_BYTES_PER_CALL: usize = 5 * 1024 * 1024;
const MAX_PARTITION_KEY: usize = 256;

/// An event the sink could not store, by its index in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unstored {
    pub index: usize,
    pub error: String,
}

/// Where events go once they are accepted.
pub trait EventSink: Send + Sync {
    /// Stores `events`; returns those that could not be stored (empty: all stored).
    fn put(&self, events: &[Event]) -> impl Future<Output = Vec<Unstored>> + Send;
}

/// The bytes of one stream record: the event as JSON, which every consumer reads.
pub fn encode_record(event: &Event) -> Vec<u8> {
    serde_json::to_vec(event).expect("an Event always serializes")
}

/// Events of one message share a shard, so its opens and clicks stay in order.
pub fn partition_key(event: &Event) -> String {
    let scope = event
        .message_id
        .as_deref()
        .or(event.recipient_id.as_deref())
        .unwrap_or(&event.event_id);
    let key = format!("{}/{}", event.tenant_id, scope);
    if key.len() <= MAX_PARTITION_KEY {
        key
    } else {
        hex::encode(Sha256::digest(key.as_bytes()))
    }
}

/// How hard to try before reporting events as not stored.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Calls in all, the first included.
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        // Worst case about 350 ms of waiting: a pixel or redirect must stay fast.
        Retry {
            attempts: 4,
            first_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(200),
        }
    }
}

impl Retry {
    fn delay(&self, retry: u32) -> Duration {
        let exp = self.first_delay.saturating_mul(1 << retry.min(10));
        let capped = exp.min(self.max_delay);
        // Full jitter keeps retrying Lambdas from hitting the shard in step.
        capped.mul_f64(0.5 + rand::random::<f64>() * 0.5)
    }
}

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

/// A sink that keeps the encoded records in memory: for in-process tests and benchmarks
/// (the encoding is the Kinesis sink's, so its cost is measured too), and able to refuse
/// writes, to test what producers do when the stream is down.
#[derive(Debug, Default)]
pub struct MemorySink {
    pub records: std::sync::Mutex<Vec<Vec<u8>>>,
    pub refuse: std::sync::atomic::AtomicBool,
}

impl MemorySink {
    /// A sink that refuses every write.
    pub fn refusing() -> Self {
        let sink = MemorySink::default();
        sink.refuse
            .store(true, std::sync::atomic::Ordering::Relaxed);
        sink
    }

    /// The stored events, decoded.
    pub fn events(&self) -> Vec<Event> {
        self.records
            .lock()
            .expect("sink lock")
            .iter()
            .map(|r| serde_json::from_slice(r).expect("records are events"))
            .collect()
    }
}

impl EventSink for MemorySink {
    async fn put(&self, events: &[Event]) -> Vec<Unstored> {
        if self.refuse.load(std::sync::atomic::Ordering::Relaxed) {
            return (0..events.len())
                .map(|index| Unstored {
                    index,
                    error: "stream refused the write".into(),
                })
                .collect();
        }
        let mut records = self.records.lock().expect("sink lock");
        records.extend(events.iter().map(encode_record));
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    #[test]
    fn partition_key_groups_a_message_and_stays_short() {
        let now = chrono::Utc::now();
        let mut e = Event::new("e1".into(), "acme".into(), EventType::Opened, now, now);
        assert_eq!(partition_key(&e), "acme/e1");
        e.message_id = Some("m1".into());
        assert_eq!(partition_key(&e), "acme/m1");
        e.message_id = Some("m".repeat(300));
        assert_eq!(partition_key(&e).len(), 64);
    }

    #[test]
    fn retry_delays_are_bounded() {
        let r = Retry::default();
        for i in 0..20 {
            assert!(r.delay(i) <= r.max_delay);
        }
    }
}
