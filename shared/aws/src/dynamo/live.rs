//! The live view in the rollups table ([`beacon_domain::dashboard::live::LiveStore`]):
//! one item per tenant and minute (`beacon_domain::rollup::live_partition`), with a
//! Number `c_<type>` per event type and a String `f<slot>` (JSON) per feed slot, gone
//! after an hour by TTL.

use crate::dynamo::Item;
use aws_sdk_dynamodb::types::AttributeValue;
use beacon_domain::dashboard::live::{Batch, FeedEntry, LiveStore, LiveStoreError, Minute};
use beacon_domain::rollup::{live_partition, live_sort_key, TTL_ATTRIBUTE};
use futures_util::{stream, StreamExt, TryStreamExt};

/// Seconds a minute item is kept.
const KEEP_SECONDS: i64 = 3600;
/// Tenants written at once.
const CONCURRENCY: usize = 16;

#[derive(Debug, Clone)]
pub struct DynamoLive {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoLive {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoLive {
            client,
            table: table.into(),
        }
    }
}

fn unavailable<E: std::error::Error + 'static, R: std::fmt::Debug>(
    e: aws_sdk_dynamodb::error::SdkError<E, R>,
) -> LiveStoreError {
    LiveStoreError(format!(
        "live view: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(&e)
    ))
}

fn minute_of(item: &Item) -> Option<i64> {
    item.get("sk")?
        .as_s()
        .ok()?
        .strip_prefix("m#")?
        .parse()
        .ok()
}

fn to_minute(item: &Item) -> Option<Minute> {
    let mut m = Minute {
        minute: minute_of(item)?,
        ..Minute::default()
    };
    for (name, value) in item {
        if let Some(kind) = name.strip_prefix("c_") {
            if let Some(n) = value.as_n().ok().and_then(|n| n.parse().ok()) {
                m.counts.insert(kind.to_string(), n);
            }
        } else if name.starts_with('f') && name[1..].bytes().all(|b| b.is_ascii_digit()) {
            // A slot that does not parse is skipped: the view is a sample anyway.
            if let Some(entries) = value
                .as_s()
                .ok()
                .and_then(|s| serde_json::from_str::<Vec<FeedEntry>>(s).ok())
            {
                m.feed.extend(entries);
            }
        }
    }
    Some(m)
}

impl LiveStore for DynamoLive {
    async fn record(&self, batch: &Batch, minute: i64, slot: u32) -> Result<(), LiveStoreError> {
        let expires = (minute * 60 + KEEP_SECONDS).to_string();
        let updates: Vec<_> = batch
            .tenants
            .iter()
            .map(|(tenant, t)| {
                let mut update = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", AttributeValue::S(live_partition(tenant)))
                    .key("sk", AttributeValue::S(live_sort_key(minute)))
                    .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                    .expression_attribute_values(":ttl", AttributeValue::N(expires.clone()));
                let mut adds = Vec::new();
                for (i, (kind, n)) in t.counts.iter().enumerate() {
                    adds.push(format!("#c{i} :c{i}"));
                    update = update
                        .expression_attribute_names(format!("#c{i}"), format!("c_{kind}"))
                        .expression_attribute_values(
                            format!(":c{i}"),
                            AttributeValue::N(n.to_string()),
                        );
                }
                let mut set = vec!["#ttl = :ttl".to_string()];
                if !t.feed.is_empty() {
                    set.push("#f = :f".into());
                    update = update
                        .expression_attribute_names("#f", format!("f{slot}"))
                        .expression_attribute_values(
                            ":f",
                            AttributeValue::S(
                                serde_json::to_string(&t.feed).expect("entries serialize"),
                            ),
                        );
                }
                let mut expression = format!("SET {}", set.join(", "));
                if !adds.is_empty() {
                    expression.push_str(&format!(" ADD {}", adds.join(", ")));
                }
                update.update_expression(expression)
            })
            .collect();
        stream::iter(updates)
            .map(|update| update.send())
            .buffer_unordered(CONCURRENCY)
            .map_err(unavailable)
            .try_for_each(|_| async { Ok(()) })
            .await
    }

    async fn minutes(
        &self,
        tenant: &str,
        first_minute: i64,
        last_minute: i64,
    ) -> Result<Vec<Minute>, LiveStoreError> {
        // By key, not by Query: the minutes are known, and a read of a few keys costs
        // the same however much else the table holds.
        let pk = live_partition(tenant);
        let keys: Vec<Item> = (first_minute..=last_minute)
            .map(|m| {
                Item::from([
                    ("pk".to_string(), AttributeValue::S(pk.clone())),
                    ("sk".to_string(), AttributeValue::S(live_sort_key(m))),
                ])
            })
            .collect();
        let mut out = Vec::new();
        for chunk in keys.chunks(100) {
            let request = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .build()
                .expect("keys are set");
            let items = crate::dynamo::batch_get_request(&self.client, &self.table, request)
                .await
                .map_err(unavailable)?;
            out.extend(items.iter().filter_map(to_minute));
        }
        out.sort_by_key(|m| m.minute);
        Ok(out)
    }
}
