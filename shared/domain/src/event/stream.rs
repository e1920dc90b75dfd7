//! The stream as its consumers (the aggregate and the lake's ETL) see it: records with
//! their shard and sequence number, sequence numbers padded so string order is numeric
//! order, the decoding both consumers share (so a record is poison to one exactly when
//! it is to the other), and dead letters for poison records. Reading a Kinesis event and
//! answering with a partial batch response is `beacon_aws::kinesis`.

use crate::event::{Event, EventView};
use std::future::Future;
use thiserror::Error;

/// One stream record, as the Kinesis event source delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    /// Stream and shard, e.g. `beacon-events/shardId-000000000000`.
    pub shard: String,
    pub sequence: String,
    pub data: Vec<u8>,
}

/// Zero-pads a sequence number so string order is numeric order.
pub fn padded(sequence: &str) -> String {
    format!("{sequence:0>64}")
}

/// A record that will never apply, with why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    pub shard: String,
    pub sequence: String,
    pub reason: String,
    /// The record's bytes, base64 (standard), so nothing is lost.
    pub data_base64: String,
}

/// Why a record is poison: it will never apply, however often it is read.
#[derive(Debug, Error)]
pub enum Poison {
    #[error("not an event: {0}")]
    NotAnEvent(#[from] serde_json::Error),
    #[error("event_id and tenant_id must not be empty")]
    MissingIds,
    /// Readable, but its writes are refused as sent (over a store limit), so it never
    /// applies either.
    #[error("the rollup store refuses its writes: {0}")]
    Refused(String),
}

crate::message_error!(
    /// Why dead letters could not be handed over (the batch is then delivered again).
    DeadLetterError
);

/// Reads a record: a JSON event whose required fields hold. Anything else is poison.
pub fn decode(data: &[u8]) -> Result<Event, Poison> {
    let event: Event = serde_json::from_slice(data)?;
    required(&event.event_id, &event.tenant_id)?;
    Ok(event)
}

/// [`decode`] for the fold: the same rules, without copying the record's strings.
pub fn decode_view(data: &[u8]) -> Result<EventView<'_>, Poison> {
    let event = EventView::parse(data)?;
    required(&event.event_id, &event.tenant_id)?;
    Ok(event)
}

fn required(event_id: &str, tenant_id: &str) -> Result<(), Poison> {
    if event_id.is_empty() || tenant_id.is_empty() {
        return Err(Poison::MissingIds);
    }
    Ok(())
}

/// Where poison records go.
pub trait DeadLetterSink: Send + Sync {
    fn send(
        &self,
        letters: &[DeadLetter],
    ) -> impl Future<Output = Result<(), DeadLetterError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the two decoders once read differently: `properties` skipped by the view
    /// without the checks the full parse makes of it (numbers in range, strings valid
    /// Unicode, nesting within serde_json's limit), and the array form of a record,
    /// read in each struct's own field order. The first four are poison to both now, and
    /// the array form reads the same in both.
    #[test]
    fn both_decoders_agree_on_what_only_a_full_parse_checks() {
        let head = r#"{"event_id":"e","tenant_id":"t","type":"conversion","event_time":"2026-11-23T10:00:00.000Z","received_at":"2026-11-23T10:00:00.000Z","properties":"#;
        let deep = format!("{}{}", "[".repeat(130), "]".repeat(130));
        let refused: Vec<Vec<u8>> = vec![
            format!(r#"{head}{{"n":1e400}}}}"#).into_bytes(),
            format!(r#"{head}{{"s":"\ud800"}}}}"#).into_bytes(),
            format!(r#"{head}{{"d":{deep}}}}}"#).into_bytes(),
            // Found by the event_decoders fuzz target (minimized): not UTF-8.
            [head.as_bytes(), b"{\"\":\"\x8d\"}}"].concat(),
        ];
        for data in &refused {
            let text = String::from_utf8_lossy(data);
            assert!(decode(data).is_err(), "decode {text}");
            assert!(decode_view(data).is_err(), "decode_view {text}");
        }
        let array = br#"["e","t","conversion","2026-11-23T10:00:00.000Z","2026-11-23T10:00:00.000Z",null,"m"]"#;
        match (decode(array), decode_view(array)) {
            (Ok(event), Ok(view)) => {
                assert_eq!(event.message_id.as_deref(), Some("m"));
                assert_eq!(EventView::from(&event), view);
            }
            (event, view) => panic!("decode {event:?}, decode_view {view:?}"),
        }
    }
}
