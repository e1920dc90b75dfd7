//! The DynamoDB adapter of [`RollupStore`]: one table (`pk`, `sk`) holding rollup
//! items, unique sets, dedupe sets, directory entries and shard checkpoints.

use crate::aggregate::{DedupeKey, RollupStore, Run, StoreError};
use crate::rollup::UniqueKey;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, TransactWriteItem, Update};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap, HashSet};

#[derive(Debug, Clone)]
pub struct DynamoRollupStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoRollupStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoRollupStore {
            client,
            table: table.into(),
        }
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key(pk: String, sk: String) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

fn failed<E: std::error::Error + 'static>(what: &str, e: E) -> StoreError {
    StoreError::Failed(format!("{what}: {}", DisplayErrorContext(&e)))
}

/// `ADD` for counters and `SET ... if_not_exists` for strings, in one update action.
fn update(
    table: &str,
    pk: String,
    sk: String,
    adds: &[(String, AttributeValue)],
    sets: &[(String, AttributeValue)],
) -> Update {
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    let mut add_parts = Vec::new();
    let mut set_parts = Vec::new();
    for (i, (name, value)) in adds.iter().enumerate() {
        names.insert(format!("#a{i}"), name.clone());
        values.insert(format!(":a{i}"), value.clone());
        add_parts.push(format!("#a{i} :a{i}"));
    }
    for (i, (name, value)) in sets.iter().enumerate() {
        names.insert(format!("#s{i}"), name.clone());
        values.insert(format!(":s{i}"), value.clone());
        set_parts.push(format!("#s{i} = if_not_exists(#s{i}, :s{i})"));
    }
    let mut expression = String::new();
    if !add_parts.is_empty() {
        expression.push_str(&format!("ADD {}", add_parts.join(", ")));
    }
    if !set_parts.is_empty() {
        expression.push_str(&format!(" SET {}", set_parts.join(", ")));
    }
    Update::builder()
        .table_name(table)
        .set_key(Some(key(pk, sk)))
        .update_expression(expression.trim())
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .build()
        .expect("table, key and expression are set")
}

impl RollupStore for DynamoRollupStore {
    async fn checkpoint(&self, shard: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("K#{shard}"), "checkpoint".into())))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failed("reading the checkpoint", e))?;
        Ok(out
            .item
            .and_then(|i| i.get("seq").and_then(|v| v.as_s().ok()).cloned()))
    }

    async fn dedupe_members(&self, keys: &[DedupeKey]) -> Result<HashSet<String>, StoreError> {
        let mut members = HashSet::new();
        for chunk in keys.chunks(100) {
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(
                        chunk
                            .iter()
                            .map(|k| key(k.partition_key(), k.sort_key()))
                            .collect(),
                    ))
                    .projection_expression("ids")
                    .consistent_read(true)
                    .build()
                    .expect("keys are set"),
            );
            // BatchGetItem may leave keys unprocessed under load: ask again for those.
            while let Some(keys) = request.take() {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await
                    .map_err(|e| failed("reading dedupe sets", e))?;
                for item in out
                    .responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default()
                {
                    if let Some(AttributeValue::Ss(ids)) = item.get("ids") {
                        members.extend(ids.iter().cloned());
                    }
                }
                request = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table));
            }
        }
        Ok(members)
    }

    async fn add_uniques(
        &self,
        uniques: &[(UniqueKey, BTreeSet<String>)],
    ) -> Result<(), StoreError> {
        for (k, members) in uniques {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(k.partition_key(), k.sort_key())))
                .update_expression("ADD m :m")
                .expression_attribute_values(
                    ":m",
                    AttributeValue::Ss(members.iter().cloned().collect()),
                )
                .send()
                .await
                .map_err(|e| failed("adding to a unique set", e))?;
        }
        Ok(())
    }

    async fn apply(&self, run: &Run) -> Result<(), StoreError> {
        let mut items =
            Vec::with_capacity(run.rollups.len() + run.dedupe.len() + run.directory.len() + 1);
        for (k, counters) in &run.rollups {
            let adds: Vec<(String, AttributeValue)> = counters
                .numeric_fields()
                .into_iter()
                .map(|(f, v)| (f, n(v)))
                .collect();
            let sets: Vec<(String, AttributeValue)> = counters
                .link_urls()
                .into_iter()
                .map(|(f, v)| (f, s(v)))
                .collect();
            if adds.is_empty() && sets.is_empty() {
                continue;
            }
            let action = update(
                &self.table,
                k.partition_key(),
                k.period.clone(),
                &adds,
                &sets,
            );
            items.push(TransactWriteItem::builder().update(action).build());
        }
        for (k, ids) in &run.dedupe {
            let action = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(k.partition_key(), k.sort_key())))
                .update_expression("ADD ids :ids SET #ttl = :ttl")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":ids", AttributeValue::Ss(ids.clone()))
                .expression_attribute_values(":ttl", n(run.dedupe_expires))
                .build()
                .expect("dedupe update is complete");
            items.push(TransactWriteItem::builder().update(action).build());
        }
        for (pk, sk) in &run.directory {
            let action = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(pk.clone(), sk.clone())))
                .update_expression("SET last_seen = :t")
                .expression_attribute_values(":t", s(run.last_seen.clone()))
                .build()
                .expect("directory update is complete");
            items.push(TransactWriteItem::builder().update(action).build());
        }
        let checkpoint = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(format!("K#{}", run.shard), "checkpoint".into())))
            .update_expression("SET seq = :through");
        let checkpoint = match &run.after {
            None => checkpoint.condition_expression("attribute_not_exists(seq)"),
            Some(after) => checkpoint
                .condition_expression("seq = :after")
                .expression_attribute_values(":after", s(after.clone())),
        }
        .expression_attribute_values(":through", s(run.through.clone()))
        .build()
        .expect("checkpoint update is complete");
        items.push(TransactWriteItem::builder().update(checkpoint).build());

        // Same run, same token: a retried call within 10 minutes is a no-op.
        let token = crate::sink::hex(
            &Sha256::digest(format!("{}|{:?}|{}", run.shard, run.after, run.through).as_bytes())
                [..16],
        );
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(token)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) => {
                // Cancellation reasons are unreliable across implementations: ask the
                // checkpoint itself whether someone else moved it.
                let now = self.checkpoint(&run.shard).await?;
                if now == Some(run.through.clone()) {
                    Ok(()) // our own earlier attempt landed
                } else if now != run.after {
                    Err(StoreError::CheckpointMoved(run.shard.clone()))
                } else {
                    Err(failed("applying a run", e))
                }
            }
        }
    }
}
