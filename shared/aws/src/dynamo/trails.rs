//! A message's trail as the rollups table stores it: `body` (JSON), and while a run that
//! changed it has not committed, `prev_body` with the run's shard and last sequence
//! number (`staged_shard`, `staged_through`): the aggregate's writer stages trails
//! before its transaction ([`beacon_domain::rollup::aggregate`]), and every reader
//! judges a staged trail by its shard's checkpoint. One home for that reading, for the
//! aggregate's store and the stats API's recipient lookup.

use aws_sdk_dynamodb::types::AttributeValue;
use beacon_domain::rollup::aggregate::staged_counts;
use beacon_domain::verdict::trail::Trail;
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

/// The run that staged a trail item, if any: its shard and padded last sequence number.
pub fn staged_by(item: &Item) -> Option<(&str, &str)> {
    let text = |name| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    };
    Some((text("staged_shard")?, text("staged_through")?))
}

/// A trail from its stored item: `body`, or `prev_body` when the run that staged `body`
/// has not committed (`counts` false); `v` (version) and `d` (delivery ms) as stored.
pub fn trail_from_item(item: &Item, counts: bool) -> Result<Trail, String> {
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
    };
    let body = if counts { "body" } else { "prev_body" };
    let mut trail: Trail = match item.get(body).and_then(|v| v.as_s().ok()) {
        Some(body) => serde_json::from_str(body).map_err(|e| format!("reading a trail: {e}"))?,
        None => Trail::default(),
    };
    trail.version = number("v").unwrap_or(0).max(0) as u64;
    trail.delivered_ms = number("d");
    Ok(trail)
}

/// The trail an item holds as its runs count it, given the checkpoints (by shard) of
/// the shards that staged any of the items being read.
pub fn counted_trail(
    item: &Item,
    checkpoints: &HashMap<String, Option<String>>,
) -> Result<Trail, String> {
    let counts = staged_by(item).is_none_or(|(shard, through)| {
        staged_counts(through, checkpoints.get(shard).and_then(Option::as_deref))
    });
    trail_from_item(item, counts)
}
