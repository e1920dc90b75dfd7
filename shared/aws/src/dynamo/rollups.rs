//! The DynamoDB adapter of [`RollupStore`]: one table (`pk`, `sk`) holding rollup
//! items, unique sets, dedupe sets, directory entries and shard checkpoints.

use crate::dynamo::audience::DynamoAudience;
use crate::dynamo::trails::{counted_trail, staged_by};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use beacon_domain::audience::engagement::Changes;
use beacon_domain::audience::suppression::Suppression;
use beacon_domain::rollup::aggregate::{
    DedupeKey, DedupeSets, RollupStore, RollupStoreError, Run, DEDUPE_PAGE_IDS,
};
use beacon_domain::rollup::{
    recipient_index_key, UniqueKey, RECIPIENT_INDEX_KEY, RECIPIENT_INDEX_SORT, TTL_ATTRIBUTE,
    UNIQUE_ADD_CHUNK, UNIQUE_PAGE_MEMBERS,
};
use beacon_domain::verdict::trail::{Trail, TrailKey};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Clone)]
pub struct DynamoRollupStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    audience: DynamoAudience,
    /// The first unique-set page known to have room, per bucket (pk, page 0's sort key).
    open_pages: std::sync::Arc<std::sync::Mutex<HashMap<(String, String), u32>>>,
}

impl DynamoRollupStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        let table = table.into();
        DynamoRollupStore {
            audience: DynamoAudience::new(client.clone(), table.clone()),
            client,
            table,
            open_pages: Default::default(),
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

fn failed<E, R>(what: &str, e: aws_sdk_dynamodb::error::SdkError<E, R>) -> RollupStoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    crate::dynamo::store_error(what, e)
}

/// A task of a batch of concurrent writes that did not finish (panicked or cancelled).
fn lost(what: &str, e: tokio::task::JoinError) -> RollupStoreError {
    RollupStoreError::Failed(format!("{what}: {e}"))
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

impl DynamoRollupStore {
    /// Adds members to their sets' first page with room ([`UniqueKey::page_sort_key`]):
    /// each update is conditional on the page leaving room for its members, and a full
    /// page sends them to the next. The first open page of each bucket is remembered, so
    /// a big set costs one refused update per page filled, not per write.
    async fn add_to_pages(
        &self,
        uniques: &[(UniqueKey, BTreeSet<String>)],
    ) -> Result<(), RollupStoreError> {
        for (k, members) in uniques {
            let members: Vec<String> = members.iter().cloned().collect();
            let bucket = (k.partition_key(), k.sort_key());
            for chunk in members.chunks(UNIQUE_ADD_CHUNK) {
                let mut page = self
                    .open_pages
                    .lock()
                    .unwrap()
                    .get(&bucket)
                    .copied()
                    .unwrap_or(0);
                loop {
                    let room = (UNIQUE_PAGE_MEMBERS - chunk.len()) as i64;
                    let sent = self
                        .client
                        .update_item()
                        .table_name(&self.table)
                        .set_key(Some(key(k.partition_key(), k.page_sort_key(page))))
                        .update_expression("ADD m :m")
                        .condition_expression("attribute_not_exists(m) OR size(m) <= :room")
                        .expression_attribute_values(":m", AttributeValue::Ss(chunk.to_vec()))
                        .expression_attribute_values(":room", n(room))
                        .send()
                        .await;
                    match sent {
                        Ok(_) => break,
                        Err(e)
                            if e.as_service_error()
                                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                        {
                            page += 1;
                        }
                        Err(e) => return Err(failed("adding to a unique set", e)),
                    }
                }
                self.open_pages.lock().unwrap().insert(bucket.clone(), page);
            }
        }
        Ok(())
    }

    /// Removes members from every page of their sets: page 0 always, the others while
    /// they exist (they are contiguous).
    async fn remove_from_pages(
        &self,
        uniques: &[(UniqueKey, BTreeSet<String>)],
    ) -> Result<(), RollupStoreError> {
        for (k, members) in uniques {
            let members: Vec<String> = members.iter().cloned().collect();
            for chunk in members.chunks(UNIQUE_ADD_CHUNK) {
                for page in 0.. {
                    let update = self
                        .client
                        .update_item()
                        .table_name(&self.table)
                        .set_key(Some(key(k.partition_key(), k.page_sort_key(page))))
                        .update_expression("DELETE m :m")
                        .expression_attribute_values(":m", AttributeValue::Ss(chunk.to_vec()));
                    let update = if page == 0 {
                        update
                    } else {
                        update.condition_expression("attribute_exists(pk)")
                    };
                    match update.send().await {
                        Ok(_) => {}
                        Err(e)
                            if e.as_service_error()
                                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                        {
                            break;
                        }
                        Err(e) => return Err(failed("removing from a unique set", e)),
                    }
                }
            }
        }
        Ok(())
    }

    /// Consistent BatchGetItem of up to 100 keys, asking again for unprocessed ones.
    async fn batch_get(
        &self,
        keys: Vec<HashMap<String, AttributeValue>>,
        what: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, RollupStoreError> {
        crate::dynamo::batch_get(&self.client, &self.table, keys, true)
            .await
            .map_err(|e| failed(what, e))
    }
}

impl DynamoRollupStore {
    /// Trails from their items, each staged one judged by its shard's checkpoint.
    async fn resolve(
        &self,
        items: Vec<(TrailKey, HashMap<String, AttributeValue>)>,
    ) -> Result<HashMap<TrailKey, Trail>, RollupStoreError> {
        let mut checkpoints: HashMap<String, Option<String>> = HashMap::new();
        for (_, item) in &items {
            if let Some((shard, _)) = staged_by(item) {
                if !checkpoints.contains_key(shard) {
                    let checkpoint = self.checkpoint(shard).await?;
                    checkpoints.insert(shard.to_string(), checkpoint);
                }
            }
        }
        items
            .into_iter()
            .map(|(k, item)| {
                let trail = counted_trail(&item, &checkpoints).map_err(RollupStoreError::Failed)?;
                Ok((k, trail))
            })
            .collect()
    }
}

fn trail_json(trail: &Trail) -> Result<String, RollupStoreError> {
    serde_json::to_string(trail)
        .map_err(|e| RollupStoreError::Failed(format!("encoding a trail: {e}")))
}

impl RollupStore for DynamoRollupStore {
    async fn checkpoint(&self, shard: &str) -> Result<Option<String>, RollupStoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some({
                let (pk, sk) = beacon_domain::rollup::checkpoint_key(shard);
                key(pk, sk)
            }))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failed("reading the checkpoint", e))?;
        Ok(out
            .item
            .and_then(|i| i.get("seq").and_then(|v| v.as_s().ok()).cloned()))
    }

    async fn dedupe_members(&self, keys: &[DedupeKey]) -> Result<DedupeSets, RollupStoreError> {
        let mut out = DedupeSets::default();
        // Page 0 of every bucket, then the next page of each bucket marked `more`.
        let mut round: Vec<(DedupeKey, u32)> = keys.iter().map(|k| (k.clone(), 0)).collect();
        while !round.is_empty() {
            let mut next = Vec::new();
            for chunk in round.chunks(100) {
                let wanted = chunk
                    .iter()
                    .map(|(k, page)| key(k.partition_key(), k.page_sort_key(*page)))
                    .collect();
                let mut found: HashMap<(String, String), HashMap<String, AttributeValue>> =
                    HashMap::new();
                for item in self.batch_get(wanted, "reading dedupe sets").await? {
                    let text = |name| item.get(name).and_then(|v| v.as_s().ok()).cloned();
                    if let (Some(pk), Some(sk)) = (text("pk"), text("sk")) {
                        found.insert((pk, sk), item);
                    }
                }
                for (k, page) in chunk {
                    let item = found.get(&(k.partition_key(), k.page_sort_key(*page)));
                    let ids = match item.and_then(|i| i.get("ids")) {
                        Some(AttributeValue::Ss(ids)) => ids.as_slice(),
                        _ => &[],
                    };
                    out.ids
                        .extend(ids.iter().map(|id| (k.day.clone(), id.clone())));
                    let more = item
                        .and_then(|i| i.get("more"))
                        .is_some_and(|v| v.as_bool().is_ok_and(|b| *b));
                    if more {
                        next.push((k.clone(), page + 1));
                    } else {
                        out.last.insert(k.clone(), (*page, ids.len()));
                    }
                }
            }
            round = next;
        }
        Ok(out)
    }

    async fn add_uniques(
        &self,
        uniques: &[(UniqueKey, BTreeSet<String>)],
    ) -> Result<(), RollupStoreError> {
        self.add_to_pages(uniques).await
    }

    async fn remove_uniques(
        &self,
        uniques: &[(UniqueKey, BTreeSet<String>)],
    ) -> Result<(), RollupStoreError> {
        self.remove_from_pages(uniques).await
    }

    async fn audience(
        &self,
        suppressions: &[Suppression],
        engagement: &Changes,
    ) -> Result<(), RollupStoreError> {
        self.audience
            .write(suppressions, engagement)
            .await
            .map_err(|e| RollupStoreError::Failed(e.to_string()))
    }

    async fn trails(
        &self,
        keys: &[TrailKey],
    ) -> Result<HashMap<TrailKey, Trail>, RollupStoreError> {
        let mut out = Vec::new();
        for chunk in keys.chunks(100) {
            let by_pk: HashMap<String, &TrailKey> =
                chunk.iter().map(|k| (k.partition_key(), k)).collect();
            let items = self
                .batch_get(
                    chunk
                        .iter()
                        .map(|k| key(k.partition_key(), TrailKey::SORT_KEY.into()))
                        .collect(),
                    "reading trails",
                )
                .await?;
            for item in items {
                let pk = item.get("pk").and_then(|v| v.as_s().ok());
                if let Some(k) = pk.and_then(|pk| by_pk.get(pk)) {
                    out.push(((*k).clone(), item));
                }
            }
        }
        self.resolve(out).await
    }

    async fn deliver(
        &self,
        deliveries: &[(TrailKey, i64)],
        expires: i64,
    ) -> Result<HashMap<TrailKey, Trail>, RollupStoreError> {
        // One update per message, a few at a time: DynamoDB has no batch update. The
        // earliest time wins; when a stored one is earlier, the trail is read instead.
        let mut out = Vec::new();
        for chunk in deliveries.chunks(16) {
            let mut calls = tokio::task::JoinSet::new();
            for (k, at) in chunk {
                let update = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key(k.partition_key(), TrailKey::SORT_KEY.into())))
                    .update_expression("SET d = :d, #ttl = :ttl")
                    .condition_expression("attribute_not_exists(d) OR d > :d")
                    .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                    .expression_attribute_values(":d", n(*at))
                    .expression_attribute_values(":ttl", n(expires))
                    .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
                let read = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .set_key(Some(key(k.partition_key(), TrailKey::SORT_KEY.into())))
                    .consistent_read(true);
                let k = k.clone();
                calls.spawn(async move {
                    let item = match update.send().await {
                        Ok(out) => Ok(out.attributes),
                        Err(e)
                            if e.as_service_error()
                                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                        {
                            read.send()
                                .await
                                .map(|out| out.item)
                                .map_err(|e| failed("reading a trail", e))
                        }
                        Err(e) => Err(failed("storing a delivery time", e)),
                    };
                    (k, item)
                });
            }
            while let Some(done) = calls.join_next().await {
                let (k, item) = done.map_err(|e| lost("storing a delivery time", e))?;
                out.push((k, item?.unwrap_or_default()));
            }
        }
        self.resolve(out).await
    }

    async fn stage(&self, run: &Run) -> Result<(), RollupStoreError> {
        let staged: Vec<_> = run.trails.iter().zip(&run.trails_before).collect();
        for chunk in staged.chunks(16) {
            let mut calls = tokio::task::JoinSet::new();
            for ((k, trail), before) in chunk {
                let update = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key(k.partition_key(), TrailKey::SORT_KEY.into())))
                    .update_expression(
                        "SET body = :body, #pb = :prev, #ss = :shard, #st = :through, \
                         v = :next, #ttl = :ttl",
                    )
                    .expression_attribute_names("#pb", "prev_body")
                    .expression_attribute_names("#ss", "staged_shard")
                    .expression_attribute_names("#st", "staged_through")
                    .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                    .expression_attribute_values(":body", s(trail_json(trail)?))
                    .expression_attribute_values(":prev", s(trail_json(before)?))
                    .expression_attribute_values(":shard", s(run.shard.clone()))
                    .expression_attribute_values(":through", s(run.through.clone()))
                    .expression_attribute_values(":next", n(trail.version as i64 + 1))
                    .expression_attribute_values(":ttl", n(run.trail_expires));
                // Its place in the recipient index, set once: later updates of the
                // trail then leave the index alone (no write of it).
                let update = match (trail.recipient(), trail.first_hit_ms()) {
                    (Some(recipient), Some(first)) => update
                        .update_expression(
                            "SET body = :body, #pb = :prev, #ss = :shard, #st = :through, \
                             v = :next, #ttl = :ttl, #rcp = if_not_exists(#rcp, :rcp), \
                             #rcpat = if_not_exists(#rcpat, :rcpat)",
                        )
                        .expression_attribute_names("#rcp", RECIPIENT_INDEX_KEY)
                        .expression_attribute_names("#rcpat", RECIPIENT_INDEX_SORT)
                        .expression_attribute_values(
                            ":rcp",
                            s(recipient_index_key(&k.tenant, recipient)),
                        )
                        .expression_attribute_values(":rcpat", n(first)),
                    _ => update,
                };
                // Only over the version it was read at: the run's moves were worked out
                // from that trail.
                let update = crate::dynamo::only_at_version(update, "v", trail.version as i64);
                let pk = k.partition_key();
                calls.spawn(async move {
                    update.send().await.map_err(|e| {
                        if e.as_service_error()
                            .is_some_and(|e| e.is_conditional_check_failed_exception())
                        {
                            RollupStoreError::Failed(format!("trail {pk} changed meanwhile"))
                        } else {
                            failed("staging a trail", e)
                        }
                    })
                });
            }
            while let Some(done) = calls.join_next().await {
                done.map_err(|e| lost("staging a trail", e))??;
            }
        }
        Ok(())
    }

    async fn apply(&self, run: &Run) -> Result<(), RollupStoreError> {
        let mut items = Vec::with_capacity(
            run.rollups.len() + run.dedupe.len() + run.directory.len() + run.packs.len() + 1,
        );
        for u in run.rollup_updates() {
            let adds: Vec<(String, AttributeValue)> =
                u.adds.into_iter().map(|(f, v)| (f, n(v))).collect();
            let sets: Vec<(String, AttributeValue)> =
                u.sets.into_iter().map(|(f, v)| (f, s(v))).collect();
            let action = update(&self.table, u.pk, u.sk, &adds, &sets);
            items.push(TransactWriteItem::builder().update(action).build());
        }
        for w in &run.dedupe {
            let k = &w.key;
            // The page takes the ids only while it leaves room for them (a concurrent
            // run may have filled it since it was read: the transaction is then
            // cancelled, and the retry reads the pages again).
            let room = DEDUPE_PAGE_IDS.saturating_sub(w.ids.len()) as i64;
            let action = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(k.partition_key(), k.page_sort_key(w.page))))
                .update_expression("ADD ids :ids SET #ttl = :ttl")
                .condition_expression("attribute_not_exists(ids) OR size(ids) <= :room")
                .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                .expression_attribute_values(":ids", AttributeValue::Ss(w.ids.clone()))
                .expression_attribute_values(":ttl", n(run.dedupe_expires))
                .expression_attribute_values(":room", n(room))
                .build()
                .expect("dedupe update is complete");
            items.push(TransactWriteItem::builder().update(action).build());
            if w.opens_page {
                let full = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(k.partition_key(), k.page_sort_key(w.page - 1))))
                    .update_expression("SET more = :more")
                    .expression_attribute_values(":more", AttributeValue::Bool(true))
                    .build()
                    .expect("dedupe mark is complete");
                items.push(TransactWriteItem::builder().update(full).build());
            }
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
        for (pk, sk) in &run.packs {
            let action = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(pk.clone(), sk.clone())))
                .update_expression("ADD gen :one")
                .expression_attribute_values(":one", n(1))
                .build()
                .expect("pack update is complete");
            items.push(TransactWriteItem::builder().update(action).build());
        }
        let checkpoint = Update::builder()
            .table_name(&self.table)
            .set_key(Some({
                let (pk, sk) = beacon_domain::rollup::checkpoint_key(&run.shard);
                key(pk, sk)
            }))
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
        let token = hex::encode(
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
                let refused = crate::dynamo::is_permanent(&e)
                    || e.as_service_error().is_some_and(|e| match e {
                        TransactWriteItemsError::TransactionCanceledException(c) => c
                            .cancellation_reasons()
                            .iter()
                            .any(|r| crate::dynamo::permanent_code(r.code())),
                        _ => false,
                    });
                // Cancellation reasons are unreliable across implementations: ask the
                // checkpoint itself whether someone else moved it.
                let now = self.checkpoint(&run.shard).await?;
                if now == Some(run.through.clone()) {
                    Ok(()) // our own earlier attempt landed
                } else if now != run.after {
                    Err(RollupStoreError::CheckpointMoved(run.shard.clone()))
                } else if refused {
                    Err(RollupStoreError::Permanent(format!(
                        "applying a run: {}",
                        DisplayErrorContext(&e)
                    )))
                } else {
                    Err(failed("applying a run", e))
                }
            }
        }
    }
}
