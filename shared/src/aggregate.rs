//! Applying stream batches to the rollups exactly once.
//!
//! Kinesis delivers every record at least once: Lambda retries, bisects, and producers
//! retry too, and clients may send one event id twice. The rollups must still end up
//! as if each event had been applied once. The argument:
//!
//! 1. **Per-shard checkpoint, advanced in the same transaction as the counts.** Records
//!    of a shard are applied in contiguous runs, in sequence order. Each run is one
//!    DynamoDB transaction holding every counter update of the run, the run's event-id
//!    fingerprints for the dedupe sets, and the shard checkpoint moved from the last
//!    applied sequence number (read before, checked by a condition) to the run's last.
//!    Either all of a run lands or none of it does; a crash between two runs leaves the
//!    checkpoint exactly at the end of the last applied run.
//! 2. **Redelivery is filtered by the checkpoint.** Every batch first reads the
//!    checkpoint and drops records at or below it, so a redelivered or retried record
//!    is never applied twice, whatever the batch boundaries (bisection) are this time.
//!    If another invocation moved the checkpoint meanwhile, the condition fails, and
//!    the batch starts over from the new checkpoint.
//! 3. **Client duplicates are filtered by event id.** Fingerprints of applied event ids
//!    are kept in sets per tenant and day of receipt (TTL after the dedupe window);
//!    before applying, the batch reads the sets of the current and past `window_days`
//!    days and drops ids already there (and repeats within the batch). The sets are
//!    written in the same transaction as the counts, so "applied" and "remembered"
//!    can't diverge. Duplicates of one event share a partition key (tenant/message),
//!    so they reach the same shard in order.
//! 4. **Unique sets are idempotent.** Adding a recipient fingerprint to a set twice
//!    changes nothing, so those writes need no transaction and can be repeated.
//! 5. **Poison records** (undecodable or invalid) go to the dead-letter destination
//!    with the reason before the run that covers them commits, and are then passed by
//!    the checkpoint like any other record: never retried forever.
//!
//! Sequence numbers can be 56 digits, more than DynamoDB's numbers hold: they are
//! compared as zero-padded strings.

use crate::event::{Event, EventView};
use crate::rollup::{Aggregate, Counters, RollupKey, Scope, UniqueKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use thiserror::Error;

/// DynamoDB transactions take at most 100 actions; one is the checkpoint.
pub const MAX_ITEMS_PER_RUN: usize = 99;
/// Links per campaign item per run: with the counters and latency buckets this keeps
/// an item's update expression under DynamoDB's 4 KB.
pub const MAX_LINKS_PER_ITEM: usize = 40;

/// One stream record, as the Kinesis event source delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    /// Stream and shard, e.g. `beacon-events/shardId-000000000000`.
    pub shard: String,
    pub sequence: String,
    pub data: Vec<u8>,
}

impl StreamRecord {
    /// The records of a Kinesis event, as every stream consumer reads them.
    pub fn from_kinesis(event: &aws_lambda_events::event::kinesis::KinesisEvent) -> Vec<Self> {
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
}

/// A partial batch response asking Lambda to redeliver from `sequence` on: every
/// record before it was handled.
pub fn resume_from(sequence: &str) -> aws_lambda_events::event::streams::KinesisEventResponse {
    let mut failure = aws_lambda_events::event::streams::KinesisBatchItemFailure::default();
    failure.item_identifier = Some(sequence.to_string());
    let mut response = aws_lambda_events::event::streams::KinesisEventResponse::default();
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

/// One dedupe-set item: fingerprints of event ids of a tenant received on one day.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DedupeKey {
    pub tenant: String,
    pub day: String,
    pub bucket: u32,
}

impl DedupeKey {
    pub fn partition_key(&self) -> String {
        format!("E#{}#{}", self.tenant, self.day)
    }
    pub fn sort_key(&self) -> String {
        format!("B#{:02}", self.bucket)
    }
}

/// A contiguous run of one shard's records, applied atomically.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub shard: String,
    /// The checkpoint this run expects (padded), `None` for a shard's first run.
    pub after: Option<String>,
    /// The checkpoint after this run (padded).
    pub through: String,
    pub rollups: Vec<(RollupKey, Counters)>,
    pub dedupe: Vec<(DedupeKey, Vec<String>)>,
    /// When the dedupe items may expire.
    pub dedupe_expires: i64,
    /// Directory entries (`C#{tenant}`, `c:{campaign}` or `ch:{channel}:{provider}`)
    /// so readers can list campaigns and channels without scanning.
    pub directory: Vec<(String, String)>,
    /// Latest event time of the run, for the directory's `last_seen`.
    pub last_seen: String,
}

/// The directory entries of a run's rollups.
pub fn directory_entries<'a>(
    keys: impl Iterator<Item = &'a RollupKey>,
) -> BTreeSet<(String, String)> {
    keys.filter_map(|k| match &k.scope {
        Scope::Tenant => None,
        Scope::Campaign(c) => Some((format!("C#{}", k.tenant), format!("c:{c}"))),
        Scope::Channel(ch, p) => Some((format!("C#{}", k.tenant), format!("ch:{ch}:{p}"))),
    })
    .collect()
}

#[derive(Debug, Error)]
pub enum StoreError {
    /// The checkpoint was not what the run expected: another invocation moved it.
    #[error("the checkpoint of {0} moved")]
    CheckpointMoved(String),
    #[error("rollup store: {0}")]
    Failed(String),
}

/// Where rollups, dedupe sets, unique sets and checkpoints live.
pub trait RollupStore: Send + Sync {
    /// The shard's checkpoint (padded), if any.
    fn checkpoint(
        &self,
        shard: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// The members of these dedupe items (missing items are empty).
    fn dedupe_members(
        &self,
        keys: &[DedupeKey],
    ) -> impl Future<Output = Result<HashSet<String>, StoreError>> + Send;
    /// Adds members to unique sets (idempotent).
    fn add_uniques(
        &self,
        uniques: &[(UniqueKey, BTreeSet<String>)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Applies a run atomically, if the checkpoint is still `run.after`.
    fn apply(&self, run: &Run) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where poison records go.
pub trait DeadLetterSink: Send + Sync {
    fn send(&self, letters: &[DeadLetter]) -> impl Future<Output = Result<(), String>> + Send;
}

/// Settings of the aggregation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Client duplicates are caught when they arrive within this many days after the
    /// original (at least one full day: the sets of `window_days` past days are read).
    pub window_days: i64,
    /// Items each day's dedupe set is spread over (each holds ~20,000 ids).
    pub dedupe_buckets: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            window_days: 1,
            dedupe_buckets: 32,
        }
    }
}

/// What became of a batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub applied: usize,
    pub duplicates: usize,
    pub already_applied: usize,
    pub dead_letters: usize,
    pub runs: usize,
    /// Write actions sent to the store (transaction actions plus unique-set updates).
    pub write_actions: usize,
}

/// Why a batch stopped; records from `first_unapplied` on must be delivered again.
#[derive(Debug, Error)]
#[error("stopped at {first_unapplied}: {source}")]
pub struct BatchError {
    pub first_unapplied: String,
    #[source]
    pub source: StoreError,
}

/// The fingerprint of an event id within its tenant (96 bits of SHA-256).
pub fn event_fingerprint(tenant: &str, event_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(tenant.as_bytes());
    h.update([0u8]);
    h.update(event_id.as_bytes());
    URL_SAFE_NO_PAD.encode(&h.finalize()[..12])
}

fn bucket_of(fingerprint: &str, buckets: u32) -> u32 {
    fingerprint
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32))
        % buckets.max(1)
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// Reads a record: a JSON event whose required fields hold. Anything else is poison.
pub fn decode(data: &[u8]) -> Result<Event, String> {
    let event: Event = serde_json::from_slice(data).map_err(|e| format!("not an event: {e}"))?;
    required(&event.event_id, &event.tenant_id)?;
    Ok(event)
}

/// [`decode`] for the fold: the same rules, without copying the record's strings.
pub fn decode_view(data: &[u8]) -> Result<EventView<'_>, String> {
    let event = EventView::parse(data).map_err(|e| format!("not an event: {e}"))?;
    required(&event.event_id, &event.tenant_id)?;
    Ok(event)
}

fn required(event_id: &str, tenant_id: &str) -> Result<(), String> {
    if event_id.is_empty() || tenant_id.is_empty() {
        return Err("event_id and tenant_id must not be empty".into());
    }
    Ok(())
}

/// Applies the records of one batch (any number of shards, each in sequence order).
pub async fn apply_batch<S: RollupStore, D: DeadLetterSink>(
    store: &S,
    dead: &D,
    settings: &Settings,
    records: &[StreamRecord],
) -> Result<Outcome, BatchError> {
    let mut outcome = Outcome::default();
    let mut shards: Vec<&str> = Vec::new();
    for r in records {
        if !shards.contains(&r.shard.as_str()) {
            shards.push(&r.shard);
        }
    }
    for shard in shards {
        let mine: Vec<&StreamRecord> = records.iter().filter(|r| r.shard == shard).collect();
        // A moved checkpoint means a concurrent invocation: start over from where it is.
        let mut attempts = 0;
        loop {
            match apply_shard(store, dead, settings, shard, &mine, &mut outcome).await {
                Err(BatchError {
                    source: StoreError::CheckpointMoved(_),
                    ..
                }) if attempts < 3 => attempts += 1,
                other => {
                    other?;
                    break;
                }
            }
        }
    }
    Ok(outcome)
}

async fn apply_shard<S: RollupStore, D: DeadLetterSink>(
    store: &S,
    dead: &D,
    settings: &Settings,
    shard: &str,
    records: &[&StreamRecord],
    outcome: &mut Outcome,
) -> Result<(), BatchError> {
    let first = records
        .first()
        .map(|r| r.sequence.clone())
        .unwrap_or_default();
    let fail = |first_unapplied: &str, source| BatchError {
        first_unapplied: first_unapplied.to_string(),
        source,
    };
    let checkpoint = store.checkpoint(shard).await.map_err(|e| fail(&first, e))?;
    let pending: Vec<&StreamRecord> = records
        .iter()
        .copied()
        .filter(|r| {
            checkpoint
                .as_ref()
                .is_none_or(|cp| padded(&r.sequence) > *cp)
        })
        .collect();
    outcome.already_applied += records.len() - pending.len();
    if pending.is_empty() {
        return Ok(());
    }

    // Decode, and find the dedupe items whose members we need.
    // Each record: the event, or why it is poison.
    let decoded: Vec<Result<EventView, String>> =
        pending.iter().map(|r| decode_view(&r.data)).collect();
    let mut lookups: BTreeSet<DedupeKey> = BTreeSet::new();
    for e in decoded.iter().flatten() {
        let fp = event_fingerprint(&e.tenant_id, &e.event_id);
        let bucket = bucket_of(&fp, settings.dedupe_buckets);
        for back in 0..=settings.window_days {
            lookups.insert(DedupeKey {
                tenant: e.tenant_id.to_string(),
                day: day(e.received_at - Duration::days(back)),
                bucket,
            });
        }
    }
    let lookups: Vec<DedupeKey> = lookups.into_iter().collect();
    let mut seen = store
        .dedupe_members(&lookups)
        .await
        .map_err(|e| fail(&pending[0].sequence, e))?;

    // Pack contiguous runs that fit in one transaction.
    let mut after = checkpoint;
    let mut i = 0;
    while i < pending.len() {
        let start = i;
        let mut agg = Aggregate::default();
        let mut dedupe: HashMap<DedupeKey, Vec<String>> = HashMap::new();
        let mut letters = Vec::new();
        let mut latest_received = None;
        let mut latest_event = None;
        let mut dirs = 0;
        while i < pending.len() {
            match &decoded[i] {
                Err(reason) => letters.push(DeadLetter {
                    shard: shard.to_string(),
                    sequence: pending[i].sequence.clone(),
                    reason: reason.clone(),
                    data_base64: base64::engine::general_purpose::STANDARD.encode(&pending[i].data),
                }),
                Ok(e) => {
                    let fp = event_fingerprint(&e.tenant_id, &e.event_id);
                    if seen.contains(&fp) {
                        outcome.duplicates += 1;
                    } else {
                        let facts = agg.facts(e);
                        let growth = agg.growth(e, &facts, MAX_LINKS_PER_ITEM);
                        let key = DedupeKey {
                            tenant: e.tenant_id.to_string(),
                            day: day(e.received_at),
                            bucket: bucket_of(&fp, settings.dedupe_buckets),
                        };
                        let items = agg.item_count()
                            + growth.items
                            + dirs
                            + growth.directory
                            + dedupe.len()
                            + usize::from(!dedupe.contains_key(&key));
                        if i > start && (items > MAX_ITEMS_PER_RUN || growth.links_over) {
                            break; // this record starts the next run
                        }
                        dirs += growth.directory;
                        agg.add_with(e, &facts);
                        dedupe.entry(key).or_default().push(fp.clone());
                        seen.insert(fp);
                        outcome.applied += 1;
                        latest_received = latest_received.max(Some(e.received_at));
                        latest_event = latest_event.max(Some(e.event_time));
                    }
                }
            }
            i += 1;
        }
        let through = padded(&pending[i - 1].sequence);
        if !letters.is_empty() {
            dead.send(&letters).await.map_err(|e| {
                fail(
                    &pending[start].sequence,
                    StoreError::Failed(format!("dead-letter queue: {e}")),
                )
            })?;
            outcome.dead_letters += letters.len();
        }
        let uniques = agg.unique_sets();
        if !uniques.is_empty() {
            store
                .add_uniques(&uniques)
                .await
                .map_err(|e| fail(&pending[start].sequence, e))?;
            outcome.write_actions += uniques.len();
        }
        let expires =
            latest_received.unwrap_or_else(Utc::now) + Duration::days(settings.window_days + 2);
        let directory = directory_entries(agg.item_keys()).into_iter().collect();
        let run = Run {
            directory,
            last_seen: latest_event
                .unwrap_or_else(Utc::now)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            shard: shard.to_string(),
            after: after.clone(),
            through: through.clone(),
            rollups: agg.rollups().into_iter().collect(),
            dedupe: dedupe.into_iter().collect(),
            dedupe_expires: expires.timestamp(),
        };
        store
            .apply(&run)
            .await
            .map_err(|e| fail(&pending[start].sequence, e))?;
        outcome.write_actions += run.rollups.len() + run.dedupe.len() + run.directory.len() + 1;
        outcome.runs += 1;
        after = Some(through);
    }
    Ok(())
}

/// An in-memory store with DynamoDB's semantics for these operations (atomic runs,
/// conditional checkpoints, idempotent sets): for unit tests and benchmarks.
#[derive(Debug, Default)]
pub struct MemoryStore {
    pub state: std::sync::Mutex<MemoryState>,
}

#[derive(Debug, Default, Clone)]
pub struct MemoryState {
    pub checkpoints: HashMap<String, String>,
    pub rollups: HashMap<RollupKey, Counters>,
    pub dedupe: HashMap<DedupeKey, HashSet<String>>,
    pub uniques: HashMap<UniqueKey, BTreeSet<String>>,
    pub writes: usize,
}

impl RollupStore for MemoryStore {
    async fn checkpoint(&self, shard: &str) -> Result<Option<String>, StoreError> {
        Ok(self.state.lock().unwrap().checkpoints.get(shard).cloned())
    }

    async fn dedupe_members(&self, keys: &[DedupeKey]) -> Result<HashSet<String>, StoreError> {
        let state = self.state.lock().unwrap();
        Ok(keys
            .iter()
            .filter_map(|k| state.dedupe.get(k))
            .flatten()
            .cloned()
            .collect())
    }

    async fn add_uniques(
        &self,
        uniques: &[(UniqueKey, BTreeSet<String>)],
    ) -> Result<(), StoreError> {
        let mut state = self.state.lock().unwrap();
        for (k, members) in uniques {
            state
                .uniques
                .entry(k.clone())
                .or_default()
                .extend(members.iter().cloned());
            state.writes += 1;
        }
        Ok(())
    }

    async fn apply(&self, run: &Run) -> Result<(), StoreError> {
        let mut state = self.state.lock().unwrap();
        if state.checkpoints.get(&run.shard) != run.after.as_ref() {
            return Err(StoreError::CheckpointMoved(run.shard.clone()));
        }
        for (k, c) in &run.rollups {
            state.rollups.entry(k.clone()).or_default().merge(c);
        }
        for (k, ids) in &run.dedupe {
            state
                .dedupe
                .entry(k.clone())
                .or_default()
                .extend(ids.iter().cloned());
        }
        state
            .checkpoints
            .insert(run.shard.clone(), run.through.clone());
        state.writes += run.rollups.len() + run.dedupe.len() + run.directory.len() + 1;
        Ok(())
    }
}

/// Dead letters kept in memory.
#[derive(Debug, Default)]
pub struct MemoryDeadLetters {
    pub letters: std::sync::Mutex<Vec<DeadLetter>>,
}

impl DeadLetterSink for MemoryDeadLetters {
    async fn send(&self, letters: &[DeadLetter]) -> Result<(), String> {
        self.letters.lock().unwrap().extend(letters.iter().cloned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;
    use crate::rollup::{Grain, Scope};

    fn record(shard: &str, seq: u64, e: &Event) -> StreamRecord {
        StreamRecord {
            shard: shard.into(),
            sequence: seq.to_string(),
            data: crate::sink::encode_record(e),
        }
    }

    fn delivered(id: &str) -> Event {
        let t: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let mut e = Event::new(id.into(), "acme".into(), EventType::Delivered, t, t);
        e.campaign_id = Some("c1".into());
        e.message_id = Some(format!("m-{id}"));
        e.recipient_id = Some(format!("r-{id}"));
        e
    }

    fn tenant_day(store: &MemoryStore) -> u64 {
        let state = store.state.lock().unwrap();
        state
            .rollups
            .iter()
            .filter(|(k, _)| k.scope == Scope::Tenant && k.grain == Grain::Day)
            .map(|(_, c)| c.delivered)
            .sum()
    }

    #[tokio::test]
    async fn redelivery_is_not_counted_twice() {
        let store = MemoryStore::default();
        let dead = MemoryDeadLetters::default();
        let records: Vec<_> = (1..=10)
            .map(|i| record("s/0", i, &delivered(&format!("e{i}"))))
            .collect();
        apply_batch(&store, &dead, &Settings::default(), &records)
            .await
            .unwrap();
        let again = apply_batch(&store, &dead, &Settings::default(), &records[3..])
            .await
            .unwrap();
        assert_eq!(again.already_applied, 7);
        assert_eq!(tenant_day(&store), 10);
    }

    #[tokio::test]
    async fn client_duplicates_are_dropped_across_batches_and_within_one() {
        let store = MemoryStore::default();
        let dead = MemoryDeadLetters::default();
        let e = delivered("same");
        let first = vec![record("s/0", 1, &e), record("s/0", 2, &e)];
        let out = apply_batch(&store, &dead, &Settings::default(), &first)
            .await
            .unwrap();
        assert_eq!((out.applied, out.duplicates), (1, 1));
        let mut later = e.clone();
        later.received_at += Duration::hours(20); // resent the next day
        apply_batch(
            &store,
            &dead,
            &Settings::default(),
            &[record("s/1", 1, &later)],
        )
        .await
        .unwrap();
        assert_eq!(tenant_day(&store), 1);
    }

    #[tokio::test]
    async fn poison_goes_to_dead_letters_and_the_rest_applies() {
        let store = MemoryStore::default();
        let dead = MemoryDeadLetters::default();
        let records = vec![
            record("s/0", 1, &delivered("a")),
            StreamRecord { shard: "s/0".into(), sequence: "2".into(), data: b"{not json".to_vec() },
            StreamRecord { shard: "s/0".into(), sequence: "3".into(), data: br#"{"event_id":"x","tenant_id":"acme","type":"message.exploded","event_time":"2026-11-23T10:00:00Z","received_at":"2026-11-23T10:00:00Z"}"#.to_vec() },
            record("s/0", 4, &delivered("b")),
        ];
        let out = apply_batch(&store, &dead, &Settings::default(), &records)
            .await
            .unwrap();
        assert_eq!((out.applied, out.dead_letters), (2, 2));
        let letters = dead.letters.lock().unwrap().clone();
        assert_eq!(letters[0].sequence, "2");
        assert!(
            letters[1].reason.contains("unknown type"),
            "{}",
            letters[1].reason
        );
        assert_eq!(store.state.lock().unwrap().checkpoints["s/0"], padded("4"));
    }

    #[tokio::test]
    async fn big_batches_split_into_runs_that_fit_a_transaction() {
        let store = MemoryStore::default();
        let dead = MemoryDeadLetters::default();
        let records: Vec<_> = (1..=400u64)
            .map(|i| {
                let mut e = delivered(&format!("e{i}"));
                e.campaign_id = Some(format!("c{}", i % 60));
                record("s/0", i, &e)
            })
            .collect();
        let out = apply_batch(&store, &dead, &Settings::default(), &records)
            .await
            .unwrap();
        assert!(out.runs > 1, "{out:?}");
        assert_eq!(tenant_day(&store), 400);
    }

    #[test]
    fn both_decoders_take_and_refuse_the_same_records() {
        let good = delivered("a");
        let mut huge = delivered("h");
        for i in 0..20_000 {
            huge.properties
                .insert(format!("k{i}"), serde_json::json!({"nested": [i, "x"]}));
        }
        let mut base = serde_json::to_value(&good).unwrap();
        base["properties"] = serde_json::json!({"plan": "pro"});
        let with = |field: &str, v: serde_json::Value| {
            let mut r = base.clone();
            r[field] = v;
            serde_json::to_vec(&r).unwrap()
        };
        let cases: Vec<(Vec<u8>, bool)> = vec![
            (serde_json::to_vec(&good).unwrap(), true),
            (serde_json::to_vec(&huge).unwrap(), true),
            (serde_json::to_vec(&base).unwrap(), true),
            (with("properties", serde_json::json!(null)), false),
            (with("properties", serde_json::json!([1])), false),
            (with("message_id", serde_json::json!(5)), false),
            (with("reason", serde_json::json!({"a": 1})), false),
            (with("type", serde_json::json!("message.read")), false),
            (with("type", serde_json::json!("custom.signup")), true),
            (with("event_time", serde_json::json!("yesterday")), false),
            (with("tenant_id", serde_json::json!("")), false),
            (
                with("context", serde_json::json!({"device_class": "toaster"})),
                false,
            ),
            (b"[]".to_vec(), false),
            (vec![0xff, 0xfe], false),
        ];
        for (data, ok) in &cases {
            let text = String::from_utf8_lossy(&data[..data.len().min(120)]);
            assert_eq!(decode(data).is_ok(), *ok, "decode {text}");
            assert_eq!(decode_view(data).is_ok(), *ok, "decode_view {text}");
        }
    }

    #[test]
    fn shard_names_come_from_the_record() {
        let s = shard_of(
            Some("arn:aws:kinesis:us-east-1:123456789012:stream/beacon-events"),
            Some("shardId-000000000003:4954"),
        );
        assert_eq!(s, "beacon-events/shardId-000000000003");
    }

    #[test]
    fn padding_orders_long_sequence_numbers() {
        let a = "49654313543297382963862358273954627584126453962034872322";
        let b = "9";
        assert!(padded(a) > padded(b));
        assert_eq!(padded(a).len(), 64);
    }
}
