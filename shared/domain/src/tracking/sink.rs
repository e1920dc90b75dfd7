//! The event sink: where accepted events go. In AWS that is the Kinesis stream
//! (`beacon_aws::kinesis`): only the entries Kinesis refused are retried, with bounded
//! backoff, and whatever is still refused is reported back per event so the caller can
//! tell its client (collect answers 503) or count the loss (pixel and redirect never fail).

use crate::event::Event;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::time::Duration;

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
    pub fn delay(&self, retry: u32) -> Duration {
        let exp = self.first_delay.saturating_mul(1 << retry.min(10));
        let capped = exp.min(self.max_delay);
        // Full jitter keeps retrying Lambdas from hitting the shard in step.
        capped.mul_f64(0.5 + rand::random::<f64>() * 0.5)
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
