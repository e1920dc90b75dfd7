//! Reading the Kinesis stream back, shard by shard from the oldest record: what the
//! demo and the tests use to see what reached the stream.

use anyhow::{Context as _, Result};
use aws_sdk_kinesis::types::ShardIteratorType;
use beacon_domain::Event;

/// Every event on `stream`, in per-shard order.
pub async fn read_all(client: &aws_sdk_kinesis::Client, stream: &str) -> Result<Vec<Event>> {
    let shards = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .with_context(|| format!("listing shards of {stream}"))?;
    let mut events = Vec::new();
    for shard in shards.shards() {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await?
            .shard_iterator;
        while let Some(it) = iterator {
            let out = client
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await?;
            for record in out.records() {
                let event: Event =
                    serde_json::from_slice(record.data().as_ref()).with_context(|| {
                        format!("record {} is not an event", record.sequence_number())
                    })?;
                events.push(event);
            }
            let caught_up =
                out.records().is_empty() && out.millis_behind_latest().unwrap_or(0) == 0;
            iterator = if caught_up {
                None
            } else {
                out.next_shard_iterator
            };
        }
    }
    Ok(events)
}
