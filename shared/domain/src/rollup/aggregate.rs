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
//!    checkpoint exactly at the end of the last applied run. The same transaction
//!    writes the campaign and channel directory entries the run's events name, and
//!    bumps the generation of the month pack of every closed day the run updates
//!    ([`crate::rollup::month_pack`]), so no pack the stats API reads can go stale.
//! 2. **Redelivery is filtered by the checkpoint.** Every batch first reads the
//!    checkpoint and drops records at or below it, so a redelivered or retried record
//!    is never applied twice, whatever the batch boundaries (bisection) are this time.
//!    If another invocation moved the checkpoint meanwhile, the condition fails, and
//!    the batch starts over from the new checkpoint.
//! 3. **Client duplicates are filtered by event id.** Fingerprints of applied event ids
//!    are kept in sets per tenant and day of receipt (TTL after the dedupe window);
//!    before applying, the batch reads the sets of the current and past `window_days`
//!    days and drops ids already there (and repeats within the batch). A copy found
//!    only on an earlier day is also remembered on its own day, so a client resending
//!    day after day is caught while each copy comes within the window of the one
//!    before, not only of the original. The sets are
//!    written in the same transaction as the counts, so "applied" and "remembered"
//!    can't diverge. Duplicates of one event share a partition key (tenant/message),
//!    so they reach the same shard in order.
//! 4. **Unique sets are idempotent.** Adding a recipient fingerprint to a set twice
//!    changes nothing, so those writes need no transaction and can be repeated.
//! 5. **Late verdicts move counts once.** Opens, clicks and deliveries of a message
//!    are kept on its trail ([`crate::verdict::trail`]), which records the class each hit is
//!    counted in. When a later event changes a verdict, the run moves the count between
//!    the human and machine columns in its transaction. The trail with its new classes
//!    is staged just before (conditional on the version it was read at), tagged with
//!    the run's shard and last sequence number, beside the trail as the run found it;
//!    readers take the staged trail only once that shard's checkpoint has reached the
//!    run, and the one before otherwise. So the move and the record of it count
//!    together or not at all, and trails take no room in the transaction's 100 actions
//!    (runs stay long, so every other write is shared by more events). The trail's
//!    unique-set membership (a person opened, a person clicked this link) is written from the whole trail each time a
//!    run touches it, so it ends up as the trail says whatever the retries.
//!    Delivery times are stored on the trail at once and idempotently (the earliest
//!    wins), before the runs, so every open and click of a batch is judged knowing it.
//! 6. **Suppressions and engagement marks are idempotent.** A hard bounce, complaint or
//!    unsubscribe puts the recipient on the suppression list (each reason keeps its
//!    first time); an engagement mark is set to a day or removed
//!    ([`crate::audience::engagement`]). Like the unique sets, they are written before the run's transaction and written
//!    again, identically, when it is retried.
//! 7. **Poison records** (undecodable or invalid) go to the dead-letter destination
//!    with the reason before the run that covers them commits, and are then passed by
//!    the checkpoint like any other record: never retried forever.
//! 8. **Refused writes cost only their own record.** A write the store refuses as sent
//!    ([`RollupStoreError::Permanent`], classified by `beacon_aws::dynamo::is_permanent`: a
//!    `ValidationException`, an item or expression over DynamoDB's limits, a transaction
//!    cancelled for one action's validation error) would be refused on every retry, and
//!    a run mixes tenants. So the refused run is applied again in halves
//!    (`apply_isolating`): every half that commits does so
//!    atomically with the checkpoint (points 1-3 hold for it), and the one record left
//!    alone with the refusal becomes a dead letter like a poison record (point 7), its
//!    trail staged again as it was so its hit never counts. Temporary failures
//!    (throttling, conflicts, timeouts) are still retried. Item growth is bounded by
//!    design so refusals should not happen at all (see the table of item kinds in
//!    docs/rollups.md, "Item sizes"); this is the guarantee if one ever does. Other
//!    services need no such split: the lake's S3 writes are whole batches (no object's
//!    size or validity depends on one record), and collect refuses at the edge a body
//!    Kinesis would refuse. An engagement or suppression update DynamoDB refuses is
//!    dropped and counted (`AudienceWritesRefused`): it carries no counts.
//!
//! On any other store failure the batch stops, and the function answers with a partial
//! batch response naming the first record not yet applied, so Lambda resumes there
//! (points 1 and 2 make the redelivery harmless). Sequence numbers can be 56 digits,
//! more than DynamoDB's numbers hold: they are compared as zero-padded strings.

use crate::audience::engagement::{self, Action};
use crate::audience::suppression::Suppression;
use crate::event::stream::{decode_view, padded, DeadLetter, DeadLetterSink, Poison, StreamRecord};
use crate::event::{EventType, EventView};
use crate::rollup::{
    directory_entries, unique_member, Aggregate, Counters, Reclassified, RollupKey, Scope,
    UniqueKey, UniqueKind,
};
use crate::verdict::trail::{Hit, Trail, TrailKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use thiserror::Error;

/// DynamoDB transactions take at most 100 actions; one is the checkpoint.
pub const MAX_ITEMS_PER_RUN: usize = 99;

/// One dedupe-set item: fingerprints of event ids of a tenant received on one day.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DedupeKey {
    pub tenant: String,
    pub day: String,
    pub bucket: u32,
}

impl DedupeKey {
    pub fn partition_key(&self) -> String {
        crate::rollup::keys::dedupe_partition(&self.tenant, &self.day)
    }
    pub fn sort_key(&self) -> String {
        self.page_sort_key(0)
    }
    /// One page of the bucket: `B#07`, then `B#07#1`, ... A page is started when the one
    /// before it is full, which is then marked `more` so readers go on to it.
    pub fn page_sort_key(&self, page: u32) -> String {
        crate::rollup::bucket_page_sort_key(self.bucket, page)
    }
}

/// Event-id fingerprints one dedupe page holds at most: 16 bytes each, so a page stays
/// under 340 KB (DynamoDB takes 400 KB) however many events a tenant sends in a day.
pub const DEDUPE_PAGE_IDS: usize = 20_000;
/// Ids one run adds to one dedupe bucket at most: the page's condition leaves room for
/// them, so they always fit.
pub const DEDUPE_ADD_MAX: usize = 1_000;

/// What the dedupe sets of some buckets hold: every id of every page, with the day of
/// the set that holds it, and each bucket's last page with its size, where the next ids
/// go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DedupeSets {
    /// (day of receipt, fingerprint)
    pub ids: HashSet<(String, String)>,
    pub last: HashMap<DedupeKey, (u32, usize)>,
}

/// A run's write to one dedupe bucket: `ids` added to `page`, conditional on the page
/// leaving room for them. `opens_page`: the page before is full, and is marked `more`
/// in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupeWrite {
    pub key: DedupeKey,
    pub page: u32,
    pub ids: Vec<String>,
    pub opens_page: bool,
}

impl DedupeWrite {
    /// Where `ids` go, given the bucket's last page and its size.
    pub fn place(key: DedupeKey, ids: Vec<String>, last: Option<(u32, usize)>) -> Self {
        let (page, size) = last.unwrap_or((0, 0));
        let opens_page = size + ids.len() > DEDUPE_PAGE_IDS;
        DedupeWrite {
            key,
            page: if opens_page { page + 1 } else { page },
            ids,
            opens_page,
        }
    }

    /// The bucket's last page and size once this write is applied.
    pub fn after(&self, last: Option<(u32, usize)>) -> (u32, usize) {
        match (self.opens_page, last) {
            (false, Some((page, size))) => (page, size + self.ids.len()),
            _ => (self.page, self.ids.len()),
        }
    }

    /// Transaction actions: the page, and the page before when it is marked.
    pub fn actions(&self) -> usize {
        1 + usize::from(self.opens_page)
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
    pub dedupe: Vec<DedupeWrite>,
    /// When the dedupe items may expire.
    pub dedupe_expires: i64,
    /// Directory entries (`C#{tenant}`, `c:{campaign}` or `ch:{channel}:{provider}`)
    /// so readers can list campaigns and channels without scanning.
    pub directory: Vec<(String, String)>,
    /// Latest event time of the run, for the directory's `last_seen`.
    pub last_seen: String,
    /// Late verdicts' moves, per rollup item (merged with `rollups` into one update).
    pub reclassified: Vec<(RollupKey, Reclassified)>,
    /// Trails the run changed, each with the version it was read at.
    pub trails: Vec<(TrailKey, Trail)>,
    /// The same trails as the run found them (what counts until the run commits).
    pub trails_before: Vec<Trail>,
    /// When trails may expire.
    pub trail_expires: i64,
    /// Month packs (partition, sort key) whose generation goes up: the run updates a
    /// closed day of theirs ([`crate::rollup::month_pack`]).
    pub packs: Vec<(String, String)>,
}

/// One item's update in a run's transaction: counter deltas to `ADD` by stored name,
/// and strings set only where absent (a link item's URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemUpdate {
    pub pk: String,
    pub sk: String,
    pub adds: Vec<(String, i64)>,
    pub sets: Vec<(String, String)>,
}

impl Run {
    /// Every rollup and link item's update: the folded counts and the moves, one
    /// update per item (a transaction may touch an item once). A campaign item's link
    /// clicks go to the link's own item ([`crate::rollup::link_partition`]).
    pub fn rollup_updates(&self) -> Vec<ItemUpdate> {
        use std::collections::BTreeMap;
        let mut fields: BTreeMap<&RollupKey, BTreeMap<String, i64>> = BTreeMap::new();
        // (campaign item, link id) → (human, bot, URL if the run saw one).
        let mut links: BTreeMap<(&RollupKey, &str), (i64, i64, Option<&str>)> = BTreeMap::new();
        for (k, c) in &self.rollups {
            let summed = fields.entry(k).or_default();
            for (f, v) in c.numeric_fields() {
                *summed.entry(f).or_default() += v;
            }
            for (id, l) in &c.links {
                let link = links.entry((k, id)).or_default();
                link.0 += l.human as i64;
                link.1 += l.bot as i64;
                if !l.url.is_empty() {
                    link.2 = Some(&l.url);
                }
            }
        }
        for (k, moved) in &self.reclassified {
            let summed = fields.entry(k).or_default();
            for (f, v) in moved.numeric_fields() {
                *summed.entry(f).or_default() += v;
            }
            for (id, n) in &moved.links {
                let link = links.entry((k, id)).or_default();
                link.0 -= n;
                link.1 += n;
            }
        }
        let mut out: Vec<ItemUpdate> = fields
            .into_iter()
            .map(|(k, summed)| ItemUpdate {
                pk: k.partition_key(),
                sk: k.period.clone(),
                adds: summed.into_iter().filter(|(_, v)| *v != 0).collect(),
                sets: Vec::new(),
            })
            .filter(|u| !u.adds.is_empty())
            .collect();
        for ((k, id), (human, bot, url)) in links {
            let Scope::Campaign(campaign) = &k.scope else {
                continue;
            };
            let adds: Vec<(String, i64)> = [("human", human), ("bot", bot)]
                .into_iter()
                .filter(|(_, v)| *v != 0)
                .map(|(f, v)| (f.to_string(), v))
                .collect();
            let sets: Vec<(String, String)> = url
                .map(|u| ("url".to_string(), u.to_string()))
                .into_iter()
                .collect();
            if adds.is_empty() && sets.is_empty() {
                continue;
            }
            out.push(ItemUpdate {
                pk: crate::rollup::link_partition(&k.tenant, campaign, k.grain),
                sk: crate::rollup::link_sort_key(&k.period, id),
                adds,
                sets,
            });
        }
        out
    }
}

/// How long a trail is kept after its last change: events older than 30 days are
/// refused at the collect API, so nothing can reach an older trail.
pub const TRAIL_DAYS: i64 = 35;

/// The trail an event belongs on: opens, clicks and deliveries of a message.
pub fn trail_key(e: &EventView) -> Option<TrailKey> {
    match e.kind {
        EventType::Opened | EventType::Clicked | EventType::Delivered => {
            e.message_id().map(|m| TrailKey {
                tenant: e.tenant_id.to_string(),
                message: m.to_string(),
            })
        }
        _ => None,
    }
}

#[derive(Debug, Error)]
pub enum RollupStoreError {
    /// The checkpoint was not what the run expected: another invocation moved it.
    #[error("the checkpoint of {0} moved")]
    CheckpointMoved(String),
    /// Temporary (throttling, a conflict, a timeout, the store down): the same writes
    /// may succeed later, so the batch is delivered again.
    #[error("rollup store: {0}")]
    Failed(String),
    /// The writes were refused as sent (an item or expression over DynamoDB's limits,
    /// an invalid value): they never succeed, so the records behind them are isolated
    /// and dead-lettered ([`apply_batch`]), never retried.
    #[error("rollup store refused the writes: {0}")]
    Permanent(String),
}

/// Where rollups, dedupe sets, unique sets and checkpoints live.
pub trait RollupStore: Send + Sync {
    /// The shard's checkpoint (padded), if any.
    fn checkpoint(
        &self,
        shard: &str,
    ) -> impl Future<Output = Result<Option<String>, RollupStoreError>> + Send;
    /// The ids of every page of these dedupe buckets (missing ones are empty), and each
    /// bucket's last page.
    fn dedupe_members(
        &self,
        keys: &[DedupeKey],
    ) -> impl Future<Output = Result<DedupeSets, RollupStoreError>> + Send;
    /// Adds members to unique sets (idempotent).
    fn add_uniques(
        &self,
        uniques: &[(UniqueKey, BTreeSet<String>)],
    ) -> impl Future<Output = Result<(), RollupStoreError>> + Send;
    /// Removes members from unique sets (idempotent).
    fn remove_uniques(
        &self,
        uniques: &[(UniqueKey, BTreeSet<String>)],
    ) -> impl Future<Output = Result<(), RollupStoreError>> + Send;
    /// These trails as stored (missing ones are left out).
    fn trails(
        &self,
        keys: &[TrailKey],
    ) -> impl Future<Output = Result<HashMap<TrailKey, Trail>, RollupStoreError>> + Send;
    /// Stores delivery times on trails (creating them; a stored time stays) and returns
    /// the trails as they now are.
    fn deliver(
        &self,
        deliveries: &[(TrailKey, i64)],
        expires: i64,
    ) -> impl Future<Output = Result<HashMap<TrailKey, Trail>, RollupStoreError>> + Send;
    /// Puts recipients on the suppression list and sets or removes engagement marks
    /// (both idempotent).
    fn audience(
        &self,
        suppressions: &[Suppression],
        engagement: &engagement::Changes,
    ) -> impl Future<Output = Result<(), RollupStoreError>> + Send;
    /// Stores the run's trails ahead of its transaction, each only over the version it
    /// was read at. A staged trail counts once the shard's checkpoint reaches
    /// `run.through`; until then readers get it as it was before the run.
    fn stage(&self, run: &Run) -> impl Future<Output = Result<(), RollupStoreError>> + Send;
    /// Applies a run atomically, if the checkpoint is still `run.after`.
    fn apply(&self, run: &Run) -> impl Future<Output = Result<(), RollupStoreError>> + Send;
}

/// Whether a trail staged by the run through `staged_through` counts: that run committed
/// (its shard's checkpoint is at or past it). Both are padded.
pub fn staged_counts(staged_through: &str, checkpoint: Option<&str>) -> bool {
    checkpoint.is_some_and(|cp| cp >= staged_through)
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
    /// Of those, the trails': delivery times, and trails staged by runs.
    pub trail_writes: usize,
    /// Counted opens and clicks moved by late verdicts.
    pub reclassified: usize,
    /// Suppression-list entries written (hard bounces, complaints, unsubscribes).
    pub suppressed: usize,
    /// Suppression and engagement items written (one per recipient per run).
    pub audience_writes: usize,
    /// What the committed runs add to the live view ([`crate::dashboard::live`]).
    pub live: crate::dashboard::live::Batch,
}

/// Why a batch stopped; records from `first_unapplied` on must be delivered again.
#[derive(Debug, Error)]
#[error("stopped at {first_unapplied}: {source}")]
pub struct BatchError {
    pub first_unapplied: String,
    #[source]
    pub source: RollupStoreError,
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
        apply_isolating(store, dead, settings, shard, &mine, &mut outcome).await?;
    }
    Ok(outcome)
}

/// Applies one shard's records so that writes the store refuses as sent
/// ([`RollupStoreError::Permanent`]) cost only the records behind them: the refused run's
/// records are applied again in halves until the one record whose writes are refused is
/// alone; it goes to the dead-letter destination with the store's reason, and the rest
/// go on.
/// Every run that commits is atomic with the checkpoint as always, so every other
/// record (whatever its tenant) is applied exactly once, and nothing is retried as if
/// it were temporary. A refused record's idempotent writes made before its run's
/// transaction (unique sets, audience) may remain; a replay of its dead letter writes
/// the same again.
async fn apply_isolating<S: RollupStore, D: DeadLetterSink>(
    store: &S,
    dead: &D,
    settings: &Settings,
    shard: &str,
    records: &[&StreamRecord],
    outcome: &mut Outcome,
) -> Result<(), BatchError> {
    let mut refused: HashMap<String, String> = HashMap::new();
    let mut rest = records;
    let mut cut = rest.len();
    let mut moved = 0;
    let mut first = true;
    while !rest.is_empty() {
        let attempt = Attempt {
            refused: &refused,
            count_already_applied: first,
        };
        match apply_shard(store, dead, settings, shard, &rest[..cut], attempt, outcome).await {
            Ok(()) => {
                rest = &rest[cut..];
                cut = rest.len();
            }
            Err(Stopped {
                error:
                    BatchError {
                        first_unapplied,
                        source: RollupStoreError::Permanent(reason),
                    },
                records,
            }) => {
                first = false;
                // The runs before the refused one committed: go on from it, and look
                // for the refused record inside it alone.
                let committed = rest
                    .iter()
                    .position(|r| r.sequence == first_unapplied)
                    .unwrap_or(0);
                rest = &rest[committed..];
                let suspects = records.clamp(1, rest.len());
                if suspects == 1 && refused.contains_key(&rest[0].sequence) {
                    // Even its dead letter's run is refused: nothing more to take out.
                    return Err(BatchError {
                        first_unapplied,
                        source: RollupStoreError::Permanent(reason),
                    });
                }
                if suspects == 1 {
                    tracing::warn!(
                        shard,
                        sequence = %rest[0].sequence,
                        reason = %reason,
                        "the store refuses this record's writes: dead-lettering it"
                    );
                    refused.insert(rest[0].sequence.clone(), reason);
                    cut = 1;
                } else {
                    cut = suspects.div_ceil(2);
                }
            }
            // A moved checkpoint means a concurrent invocation: start over from where it is.
            Err(Stopped {
                error:
                    BatchError {
                        source: RollupStoreError::CheckpointMoved(_),
                        ..
                    },
                ..
            }) if moved < 3 => moved += 1,
            Err(Stopped { error, .. }) => return Err(error),
        }
    }
    Ok(())
}

/// Why an attempt at a shard's records stopped, and how many records from
/// `first_unapplied` on the failure can lie in: the run whose writes failed, or all the
/// attempt's records for a read before its runs. (Every run before it committed.)
struct Stopped {
    error: BatchError,
    records: usize,
}

/// What an attempt at a shard's records knows from the attempts before it.
#[derive(Clone, Copy)]
struct Attempt<'a> {
    /// Records whose writes the store refused, with its reason: dead letters now.
    refused: &'a HashMap<String, String>,
    /// Whether records behind the checkpoint are counted (only the first attempt sees
    /// them as they were when the batch came in).
    count_already_applied: bool,
}

/// One attempt at a shard's records, phase by phase (the module docs argue why these
/// phases apply every record exactly once).
async fn apply_shard<S: RollupStore, D: DeadLetterSink>(
    store: &S,
    dead: &D,
    settings: &Settings,
    shard: &str,
    records: &[&StreamRecord],
    attempt: Attempt<'_>,
    outcome: &mut Outcome,
) -> Result<(), Stopped> {
    let first = records.first().map_or("", |r| r.sequence.as_str());
    let checkpoint = store
        .checkpoint(shard)
        .await
        .map_err(|e| stopped(first, records.len(), e))?;
    let pending = past_checkpoint(records, checkpoint.as_deref());
    if attempt.count_already_applied {
        outcome.already_applied += records.len() - pending.len();
    }
    let Some(head) = pending.first() else {
        return Ok(());
    };
    let whole = |e| stopped(&head.sequence, pending.len(), e);

    let decoded = decode_all(&pending, attempt.refused);
    let DedupeSets {
        ids: seen,
        last: dedupe_pages,
    } = store
        .dedupe_members(&dedupe_lookups(&decoded, settings))
        .await
        .map_err(whole)?;
    let trail_expires = trail_expiry(&decoded);
    let refused_trails = refused_trails(&pending, attempt.refused);
    let trails = read_trails(store, &decoded, &refused_trails, trail_expires, outcome)
        .await
        .map_err(whole)?;

    let mut state = ShardState {
        shard,
        settings,
        today: Utc::now().date_naive(),
        after: checkpoint,
        seen,
        dedupe_pages,
        trails,
        refused_trails,
        trail_expires,
    };
    let mut i = 0;
    while i < pending.len() {
        let start = i;
        let mut draft = Draft::default();
        while i < pending.len() && draft.take(&mut state, i, pending[i], &decoded[i]) {
            i += 1;
        }
        let through = padded(&pending[i - 1].sequence);
        let mut planned = draft.plan(&state, through);
        write_run(store, dead, &planned, outcome)
            .await
            .map_err(|e| stopped(&pending[start].sequence, i - start, e))?;
        state.committed(&planned.run);
        outcome.add_run(&planned);
        let live = std::mem::take(&mut planned.live);
        outcome
            .live
            .absorb(&live.into_batch(|i| decoded.get(i).and_then(|d| d.as_ref().ok())));
    }
    Ok(())
}

fn stopped(first_unapplied: &str, records: usize, source: RollupStoreError) -> Stopped {
    Stopped {
        error: BatchError {
            first_unapplied: first_unapplied.to_string(),
            source,
        },
        records,
    }
}

/// The records the checkpoint has not passed (a prefix of the shard's records is
/// behind it when the batch is redelivered).
fn past_checkpoint<'r>(
    records: &[&'r StreamRecord],
    checkpoint: Option<&str>,
) -> Vec<&'r StreamRecord> {
    records
        .iter()
        .copied()
        .filter(|r| checkpoint.is_none_or(|cp| padded(&r.sequence).as_str() > cp))
        .collect()
}

/// Each record's event, or why it is poison; a record the store refused is poison with
/// the store's reason.
fn decode_all<'r>(
    pending: &[&'r StreamRecord],
    refused: &HashMap<String, String>,
) -> Vec<Result<EventView<'r>, Poison>> {
    pending
        .iter()
        .map(|r| match refused.get(&r.sequence) {
            Some(reason) => Err(Poison::Refused(reason.clone())),
            None => decode_view(&r.data),
        })
        .collect()
}

/// The dedupe buckets the events may already be in: of their day of receipt and the
/// `window_days` before it.
fn dedupe_lookups(decoded: &[Result<EventView, Poison>], settings: &Settings) -> Vec<DedupeKey> {
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
    lookups.into_iter().collect()
}

/// When the trails the records touch may expire: `TRAIL_DAYS` after the latest receipt.
fn trail_expiry(decoded: &[Result<EventView, Poison>]) -> i64 {
    let latest = decoded
        .iter()
        .flatten()
        .map(|e| e.received_at)
        .max()
        .unwrap_or_else(Utc::now);
    (latest + Duration::days(TRAIL_DAYS)).timestamp()
}

/// The trails of records the store refused, by the record's place among the pending.
/// Such a trail may hold the record's hit, staged by the run the store refused: the run
/// that dead-letters the record stages it again as it was, or the stale hit would count
/// once the checkpoint passes it.
fn refused_trails(
    pending: &[&StreamRecord],
    refused: &HashMap<String, String>,
) -> HashMap<usize, TrailKey> {
    pending
        .iter()
        .enumerate()
        .filter(|(_, r)| refused.contains_key(&r.sequence))
        .filter_map(|(i, r)| Some((i, trail_key(&decode_view(&r.data).ok()?)?)))
        .collect()
}

/// Every trail the records touch. Delivery times are stored first (idempotent), so every
/// open and click is judged knowing them.
async fn read_trails<S: RollupStore>(
    store: &S,
    decoded: &[Result<EventView<'_>, Poison>],
    refused_trails: &HashMap<usize, TrailKey>,
    trail_expires: i64,
    outcome: &mut Outcome,
) -> Result<HashMap<TrailKey, Trail>, RollupStoreError> {
    let mut deliveries: BTreeMap<TrailKey, i64> = BTreeMap::new();
    let mut wanted: BTreeSet<TrailKey> = refused_trails.values().cloned().collect();
    for e in decoded.iter().flatten() {
        if let Some(key) = trail_key(e) {
            if e.kind == EventType::Delivered {
                let t = e.event_time.timestamp_millis();
                let at = deliveries.entry(key).or_insert(t);
                *at = (*at).min(t);
            } else {
                wanted.insert(key);
            }
        }
    }
    let deliveries: Vec<(TrailKey, i64)> = deliveries.into_iter().collect();
    let mut trails = if deliveries.is_empty() {
        HashMap::new()
    } else {
        outcome.write_actions += deliveries.len();
        outcome.trail_writes += deliveries.len();
        store.deliver(&deliveries, trail_expires).await?
    };
    let wanted: Vec<TrailKey> = wanted
        .into_iter()
        .filter(|k| !trails.contains_key(k))
        .collect();
    if !wanted.is_empty() {
        trails.extend(store.trails(&wanted).await?);
    }
    Ok(trails)
}

/// What an attempt knows of its shard while it packs runs: read before the first run,
/// and kept up to date as each run commits.
struct ShardState<'a> {
    shard: &'a str,
    settings: &'a Settings,
    today: chrono::NaiveDate,
    /// The checkpoint the next run expects.
    after: Option<String>,
    /// (day of receipt, fingerprint) of every event id applied, from the dedupe sets
    /// and the runs so far.
    seen: HashSet<(String, String)>,
    /// Each dedupe bucket's last page and its size.
    dedupe_pages: HashMap<DedupeKey, (u32, usize)>,
    /// The trails the records touch, as the runs so far left them.
    trails: HashMap<TrailKey, Trail>,
    refused_trails: HashMap<usize, TrailKey>,
    trail_expires: i64,
}

impl ShardState<'_> {
    /// A run committed: its dedupe pages grew, its trails are a version on, and the
    /// checkpoint is where it left it.
    fn committed(&mut self, run: &Run) {
        for w in &run.dedupe {
            let last = self.dedupe_pages.get(&w.key).copied();
            self.dedupe_pages.insert(w.key.clone(), w.after(last));
        }
        for (k, _) in &run.trails {
            if let Some(t) = self.trails.get_mut(k) {
                t.version += 1;
            }
        }
        self.after = Some(run.through.clone());
    }
}

/// A run being packed: the records taken so far, folded.
#[derive(Default)]
struct Draft {
    records: usize,
    agg: Aggregate,
    /// What the run's records come to: counted once the run commits.
    counted: Outcome,
    dedupe: HashMap<DedupeKey, Vec<String>>,
    /// Dedupe buckets whose ids open a new page this run.
    opened_pages: usize,
    letters: Vec<DeadLetter>,
    latest_received: Option<DateTime<Utc>>,
    latest_event: Option<DateTime<Utc>>,
    /// Directory entries the run writes.
    dirs: usize,
    run_trails: BTreeSet<TrailKey>,
    /// Each changed trail as the run found it.
    before: HashMap<TrailKey, Trail>,
    suppressions: Vec<Suppression>,
    engagement: engagement::Changes,
    /// Month packs the run bumps so far (an update of a closed day bumps its month).
    bumped: usize,
    /// What the run adds to the live view, once it commits.
    live: crate::dashboard::live::Notes,
}

impl Draft {
    /// Folds the record at `index` into the run; `false` when the run is full, and the
    /// record starts the next one. A run takes its first record whatever its size.
    fn take(
        &mut self,
        state: &mut ShardState,
        index: usize,
        record: &StreamRecord,
        decoded: &Result<EventView, Poison>,
    ) -> bool {
        let taken = match decoded {
            Err(reason) => {
                self.dead_letter(state, index, record, &reason.to_string());
                true
            }
            Ok(e) => self.take_event(state, index, e),
        };
        self.records += usize::from(taken);
        taken
    }

    /// A poison or refused record goes to the dead letters with the run; a refused one's
    /// trail is staged again as it was.
    fn dead_letter(
        &mut self,
        state: &mut ShardState,
        index: usize,
        record: &StreamRecord,
        reason: &str,
    ) {
        self.letters.push(DeadLetter {
            shard: state.shard.to_string(),
            sequence: record.sequence.clone(),
            reason: reason.to_string(),
            data_base64: base64::engine::general_purpose::STANDARD.encode(&record.data),
        });
        if let Some(key) = state.refused_trails.get(&index) {
            let trail = state.trails.get(key).cloned().unwrap_or_default();
            self.before
                .entry(key.clone())
                .or_insert_with(|| trail.clone());
            state.trails.insert(key.clone(), trail);
            self.run_trails.insert(key.clone());
        }
    }

    fn take_event(&mut self, state: &mut ShardState, index: usize, e: &EventView) -> bool {
        let settings = state.settings;
        let fp = event_fingerprint(&e.tenant_id, &e.event_id);
        let key = DedupeKey {
            tenant: e.tenant_id.to_string(),
            day: day(e.received_at),
            bucket: bucket_of(&fp, settings.dedupe_buckets),
        };
        let known_on = |on: String| state.seen.contains(&(on, fp.clone()));
        if known_on(key.day.clone()) {
            self.counted.duplicates += 1;
            return true;
        }
        // A dedupe bucket's ids open a new page (one more action) when they no longer
        // fit its last one.
        let queued = self.dedupe.get(&key).map_or(0, Vec::len);
        let filled = state.dedupe_pages.get(&key).map_or(0, |(_, size)| *size);
        let opens_with = |n: usize| n > 0 && filled + n > DEDUPE_PAGE_IDS;
        let opens = usize::from(opens_with(queued + 1) && !opens_with(queued));
        let dedupe_items = self.dedupe.len()
            + usize::from(!self.dedupe.contains_key(&key))
            + self.opened_pages
            + opens;
        let full = |items: usize| {
            self.records > 0 && (items > MAX_ITEMS_PER_RUN || queued >= DEDUPE_ADD_MAX)
        };
        if (1..=settings.window_days)
            .any(|back| known_on(day(e.received_at - Duration::days(back))))
        {
            // A copy of an event applied on an earlier day: dropped, and remembered on
            // this copy's day too, so a client that resends day after day is caught
            // while each copy comes within the window of the one before.
            if full(self.agg.item_count() + self.dirs + dedupe_items + self.bumped) {
                return false;
            }
            self.opened_pages += opens;
            state.seen.insert((key.day.clone(), fp.clone()));
            self.dedupe.entry(key).or_default().push(fp);
            self.counted.duplicates += 1;
            return true;
        }

        let mut facts = self.agg.facts(e);
        let judged = trail_key(e).and_then(|key| {
            let mut trail = state.trails.get(&key).cloned().unwrap_or_default();
            let moved = judge(&mut self.agg, &mut trail, e, &mut facts)?;
            Some((key, trail, moved))
        });
        let growth = self.agg.growth(e, &facts);
        let mut moved_items: BTreeSet<RollupKey> = BTreeSet::new();
        let mut moved_links = 0;
        if let Some((_, _, moved)) = &judged {
            for m in moved {
                moved_items.extend(self.agg.reclassify_growth(&e.tenant_id, &m.hit));
                moved_links += self.agg.reclassify_link_growth(&e.tenant_id, &m.hit);
            }
        }
        // Only an event of an earlier day, or a moved count, can bump.
        let late = e.event_time.date_naive() < state.today || !moved_items.is_empty();
        let bump_reserve = self.bumped
            + if late {
                growth.items + moved_items.len()
            } else {
                0
            };
        let items = self.agg.item_count()
            + growth.items
            + moved_items.len()
            + moved_links
            + self.dirs
            + growth.directory
            + dedupe_items
            + bump_reserve;
        if full(items) {
            return false;
        }
        self.opened_pages += opens;
        self.dirs += growth.directory;
        self.agg.add_with(e, &facts);
        self.suppressions.extend(Suppression::of(e));
        mark_engagement(&mut self.engagement, e, &facts, judged.is_some());
        let verdict = matches!(e.kind, EventType::Opened | EventType::Clicked)
            .then(|| (facts.machine, if facts.machine { facts.reason } else { "" }));
        self.live.note(e, index, verdict);
        if let Some((key, trail, moved)) = judged {
            for m in &moved {
                self.agg.reclassify(&e.tenant_id, m);
            }
            self.counted.reclassified += moved.iter().filter(|m| m.changed_class()).count();
            if !self.before.contains_key(&key) {
                self.before.insert(
                    key.clone(),
                    state.trails.get(&key).cloned().unwrap_or_default(),
                );
            }
            state.trails.insert(key.clone(), trail);
            self.run_trails.insert(key);
        }
        if late {
            self.bumped = crate::rollup::month_pack::bumps(self.agg.item_keys(), state.today).len();
        }
        state.seen.insert((key.day.clone(), fp.clone()));
        self.dedupe.entry(key).or_default().push(fp);
        self.counted.applied += 1;
        self.latest_received = self.latest_received.max(Some(e.received_at));
        self.latest_event = self.latest_event.max(Some(e.event_time));
        true
    }

    /// The run's writes: the transaction ([`Run`]) and the idempotent writes before it.
    fn plan(self, state: &ShardState, through: String) -> Planned {
        let Draft {
            agg,
            counted,
            dedupe,
            letters,
            latest_received,
            latest_event,
            run_trails,
            mut before,
            suppressions,
            mut engagement,
            live,
            ..
        } = self;
        let run_trails: Vec<(TrailKey, Trail)> = run_trails
            .into_iter()
            .map(|k| {
                let trail = state.trails[&k].clone();
                (k, trail)
            })
            .collect();
        let (adds, removals) = unique_changes(agg.unique_sets(), &run_trails);
        mark_trails(&mut engagement, &run_trails);
        let expires = latest_received.unwrap_or_else(Utc::now)
            + Duration::days(state.settings.window_days + 2);
        let run = Run {
            directory: directory_entries(agg.item_keys()).into_iter().collect(),
            last_seen: latest_event
                .unwrap_or_else(Utc::now)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            shard: state.shard.to_string(),
            after: state.after.clone(),
            through,
            rollups: agg.rollups().into_iter().collect(),
            dedupe: dedupe
                .into_iter()
                .map(|(key, ids)| {
                    let last = state.dedupe_pages.get(&key).copied();
                    DedupeWrite::place(key, ids, last)
                })
                .collect(),
            dedupe_expires: expires.timestamp(),
            reclassified: agg
                .reclassified()
                .map(|(k, m)| (k.clone(), m.clone()))
                .collect(),
            trails_before: run_trails
                .iter()
                .map(|(k, _)| before.remove(k).unwrap_or_default())
                .collect(),
            trails: run_trails,
            trail_expires: state.trail_expires,
            // Every item the run updates, moved counts' included, is one of the fold's.
            packs: crate::rollup::month_pack::bumps(agg.item_keys(), state.today)
                .into_iter()
                .collect(),
        };
        Planned {
            run,
            letters,
            suppressions,
            engagement,
            unique_adds: adds,
            unique_removals: removals,
            counted,
            live,
        }
    }
}

/// A packed run's writes, in the order [`write_run`] makes them.
struct Planned {
    run: Run,
    letters: Vec<DeadLetter>,
    suppressions: Vec<Suppression>,
    engagement: engagement::Changes,
    unique_adds: Vec<(UniqueKey, BTreeSet<String>)>,
    unique_removals: Vec<(UniqueKey, BTreeSet<String>)>,
    counted: Outcome,
    live: crate::dashboard::live::Notes,
}

/// Writes a run: its dead letters, then the idempotent writes (suppressions and
/// engagement marks, unique sets: made again, identically, if the run fails), then its
/// trails staged, then the one transaction of counts, dedupe ids and checkpoint.
async fn write_run<S: RollupStore, D: DeadLetterSink>(
    store: &S,
    dead: &D,
    planned: &Planned,
    outcome: &mut Outcome,
) -> Result<(), RollupStoreError> {
    if !planned.letters.is_empty() {
        dead.send(&planned.letters)
            .await
            .map_err(|e| RollupStoreError::Failed(format!("dead-letter queue: {e}")))?;
    }
    let (suppressions, engagement) = (&planned.suppressions, &planned.engagement);
    if !suppressions.is_empty() || !engagement.is_empty() {
        store.audience(suppressions, engagement).await?;
        outcome.suppressed += suppressions.len();
        outcome.audience_writes += suppressions.len() + engagement.len();
    }
    for (changes, add) in [
        (&planned.unique_adds, true),
        (&planned.unique_removals, false),
    ] {
        if changes.is_empty() {
            continue;
        }
        if add {
            store.add_uniques(changes).await?;
        } else {
            store.remove_uniques(changes).await?;
        }
        outcome.write_actions += changes.len();
    }
    if !planned.run.trails.is_empty() {
        store.stage(&planned.run).await?;
    }
    store.apply(&planned.run).await
}

impl Outcome {
    /// A committed run's part of the outcome.
    fn add_run(&mut self, planned: &Planned) {
        let run = &planned.run;
        self.write_actions += run.rollup_updates().len()
            + run.dedupe.iter().map(DedupeWrite::actions).sum::<usize>()
            + run.directory.len()
            + run.trails.len()
            + run.packs.len()
            + 1;
        self.trail_writes += run.trails.len();
        self.runs += 1;
        let counted = &planned.counted;
        self.applied += counted.applied;
        self.duplicates += counted.duplicates;
        self.reclassified += counted.reclassified;
        self.dead_letters += planned.letters.len();
    }
}

/// Puts an open or click on its trail (or a delivery time that changes verdicts) and
/// returns the hits whose class changed; `facts` take the event's verdict. `None`: the
/// trail does not change.
fn judge(
    agg: &mut Aggregate,
    trail: &mut Trail,
    e: &EventView,
    facts: &mut crate::rollup::Facts,
) -> Option<Vec<crate::verdict::trail::Moved>> {
    if e.kind == EventType::Delivered {
        // A delivery time is stored before the runs (`RollupStore::deliver`); hits
        // judged without it may now change class.
        let moved = trail.settle();
        return (!moved.is_empty()).then_some(moved);
    }
    let verdict = agg.request_verdict(e)?;
    let hit = Hit::of(e, facts.link.as_ref().map(|(id, _)| id.clone()), verdict)?;
    let (machine, reason, moved) = trail.add(hit);
    facts.machine = machine;
    facts.reason = if machine {
        crate::verdict::machine_reason(&reason)
    } else {
        ""
    };
    facts.tracked = true;
    Some(moved)
}

/// The engagement marks an applied event sets on its own: a delivery, a conversion, and
/// an open or click a person made that is on no trail (its trail's marks are set from
/// the whole trail by [`mark_trails`]).
fn mark_engagement(
    changes: &mut engagement::Changes,
    e: &EventView,
    facts: &crate::rollup::Facts,
    on_trail: bool,
) {
    let Some(recipient) = e.recipient_id.as_deref() else {
        return;
    };
    let tenant = &e.tenant_id;
    let message = e.message_id().unwrap_or(&e.event_id);
    let action = match e.kind {
        EventType::Delivered => Action::Delivered,
        EventType::Conversion => Action::Converted,
        EventType::Opened if !on_trail && !facts.machine => Action::Opened,
        EventType::Clicked if !on_trail && !facts.machine => Action::Clicked,
        _ => return,
    };
    let id = if action == Action::Converted {
        e.event_id.as_ref()
    } else {
        message
    };
    let day = engagement::epoch_day(e.event_time.timestamp_millis());
    changes.set(tenant, recipient, action.mark(tenant, id), day);
}

/// Each touched trail's open and click marks, as the whole trail judges them: set to
/// the day a person first opened (clicked), removed when only machines did.
fn mark_trails(changes: &mut engagement::Changes, trails: &[(TrailKey, Trail)]) {
    for (key, trail) in trails {
        for m in trail.membership() {
            for (action, seen, index) in [
                (Action::Opened, m.opened, 0),
                (Action::Clicked, m.clicked, 1),
            ] {
                if seen.is_none() {
                    continue;
                }
                let mark = action.mark(&key.tenant, &key.message);
                match m.first_human[index] {
                    Some(at) => {
                        changes.set(&key.tenant, m.recipient, mark, engagement::epoch_day(at))
                    }
                    None => changes.remove(&key.tenant, m.recipient, mark),
                }
            }
        }
    }
}

/// Unique-set changes of a run: the members the fold adds, and for each trail the run
/// touched, its membership as the whole trail says (a person opened; a person clicked,
/// and which links), added or removed.
#[allow(clippy::type_complexity)]
fn unique_changes(
    folded: Vec<(UniqueKey, BTreeSet<String>)>,
    trails: &[(TrailKey, Trail)],
) -> (
    Vec<(UniqueKey, BTreeSet<String>)>,
    Vec<(UniqueKey, BTreeSet<String>)>,
) {
    let mut adds: std::collections::BTreeMap<UniqueKey, BTreeSet<String>> =
        folded.into_iter().collect();
    let mut removals: std::collections::BTreeMap<UniqueKey, BTreeSet<String>> = Default::default();
    for (key, trail) in trails {
        for m in trail.membership() {
            let mut put = |kind, link: Option<&str>, human: bool| {
                let (set, member) = unique_member(&key.tenant, m.campaign, m.recipient, kind, link);
                let target = if human { &mut adds } else { &mut removals };
                target.entry(set).or_default().insert(member);
            };
            if let Some(human) = m.opened {
                put(UniqueKind::Opens, None, human);
            }
            if let Some(human) = m.clicked {
                put(UniqueKind::Clicks, None, human);
            }
            for (link, human) in &m.links {
                put(UniqueKind::Clicks, Some(link), *human);
            }
        }
    }
    (adds.into_iter().collect(), removals.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::stream::decode;
    use crate::event::Event;
    use crate::event::EventType;
    use crate::rollup::{rollup_partition, Grain, Scope};
    use crate::testkit::memory::MemoryDeadLetters;
    use crate::testkit::rollups::{MemoryState, MemoryStore};
    use crate::verdict::trail::TrailKey;
    use std::collections::BTreeMap;

    fn record(shard: &str, seq: u64, e: &Event) -> StreamRecord {
        StreamRecord {
            shard: shard.into(),
            sequence: seq.to_string(),
            data: crate::tracking::sink::encode_record(e),
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

    /// A memory store whose next transactions fail (unapplied) after the trails were
    /// staged: a function dying between staging and committing.
    struct DiesBeforeCommit {
        inner: MemoryStore,
        failures: std::sync::atomic::AtomicUsize,
    }

    impl RollupStore for DiesBeforeCommit {
        async fn checkpoint(&self, shard: &str) -> Result<Option<String>, RollupStoreError> {
            self.inner.checkpoint(shard).await
        }
        async fn dedupe_members(&self, keys: &[DedupeKey]) -> Result<DedupeSets, RollupStoreError> {
            self.inner.dedupe_members(keys).await
        }
        async fn add_uniques(
            &self,
            u: &[(UniqueKey, BTreeSet<String>)],
        ) -> Result<(), RollupStoreError> {
            self.inner.add_uniques(u).await
        }
        async fn remove_uniques(
            &self,
            u: &[(UniqueKey, BTreeSet<String>)],
        ) -> Result<(), RollupStoreError> {
            self.inner.remove_uniques(u).await
        }
        async fn trails(
            &self,
            keys: &[TrailKey],
        ) -> Result<HashMap<TrailKey, Trail>, RollupStoreError> {
            self.inner.trails(keys).await
        }
        async fn deliver(
            &self,
            d: &[(TrailKey, i64)],
            expires: i64,
        ) -> Result<HashMap<TrailKey, Trail>, RollupStoreError> {
            self.inner.deliver(d, expires).await
        }
        async fn audience(
            &self,
            s: &[Suppression],
            e: &engagement::Changes,
        ) -> Result<(), RollupStoreError> {
            self.inner.audience(s, e).await
        }
        async fn stage(&self, run: &Run) -> Result<(), RollupStoreError> {
            self.inner.stage(run).await
        }
        async fn apply(&self, run: &Run) -> Result<(), RollupStoreError> {
            use std::sync::atomic::Ordering;
            let left = self.failures.load(Ordering::SeqCst);
            if left > 0 {
                self.failures.store(left - 1, Ordering::SeqCst);
                return Err(RollupStoreError::Failed("died before committing".into()));
            }
            self.inner.apply(run).await
        }
    }

    #[tokio::test]
    async fn a_staged_trail_counts_only_once_its_run_commits() {
        let store = DiesBeforeCommit {
            inner: MemoryStore::default(),
            failures: 0.into(),
        };
        let dead = MemoryDeadLetters::default();
        let settings = Settings::default();
        let (first, trap) = two_clicks_then_a_trap();
        apply_batch(&store, &dead, &settings, &first).await.unwrap();
        // The trap's run stages the trail (three clicks, all a scanner's), then dies twice.
        store.failures.store(2, std::sync::atomic::Ordering::SeqCst);
        for _ in 0..2 {
            let err = apply_batch(&store, &dead, &settings, std::slice::from_ref(&trap))
                .await
                .unwrap_err();
            assert_eq!(err.first_unapplied, "3");
            let state = store.inner.state.lock().unwrap();
            assert_eq!(state.staged.len(), 1, "staged, not committed");
        }
        // Each retry read the trail as before the trap, so the moves happen once.
        let out = apply_batch(&store, &dead, &settings, std::slice::from_ref(&trap))
            .await
            .unwrap();
        assert_eq!(out.reclassified, 2);
        let state = store.inner.state.lock().unwrap();
        assert_eq!(tenant_clicks(&state, "D#2026-11-23"), (0, 3));
        assert!(state.staged.is_empty(), "committed with its run");
        let trail = &state.trails[&TrailKey {
            tenant: "acme".into(),
            message: "m-1".into(),
        }];
        assert_eq!(trail.hits.len(), 3);
        assert!(trail.hits.iter().all(|h| h.machine));
        assert_eq!(
            trail.version, 4,
            "staged three times, read each time as before"
        );
    }

    #[tokio::test]
    async fn updates_of_closed_days_bump_their_month_pack_once() {
        let store = MemoryStore::default();
        let dead = MemoryDeadLetters::default();
        let now = Utc::now();
        let late_at = now - Duration::days(40);
        let mut current = delivered("now");
        (current.event_time, current.received_at) = (now, now);
        let mut late = delivered("late");
        (late.event_time, late.received_at) = (late_at, now);
        let records = [record("s/0", 1, &current), record("s/0", 2, &late)];
        let settings = Settings::default();
        let outcome = apply_batch(&store, &dead, &settings, &records)
            .await
            .unwrap();
        let month = crate::rollup::keys::pack_sort_key(&crate::rollup::month_pack::month(
            late_at.date_naive(),
        ));
        let expected: HashMap<(String, String), i64> = [
            rollup_partition("acme", &Scope::Tenant, Grain::Day),
            rollup_partition("acme", &Scope::Campaign("c1".into()), Grain::Day),
        ]
        .into_iter()
        .map(|pk| ((pk, month.clone()), 1))
        .collect();
        assert_eq!(store.state.lock().unwrap().packs, expected);
        assert_eq!(outcome.runs, 1);
        // Redelivered: nothing applies, nothing bumps.
        apply_batch(&store, &dead, &settings, &records)
            .await
            .unwrap();
        assert_eq!(store.state.lock().unwrap().packs, expected);
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
    async fn a_tenants_dedupe_set_grows_by_pages_and_still_catches_duplicates() {
        // One bucket, so a day's ids fill page after page of it.
        let settings = Settings {
            window_days: 1,
            dedupe_buckets: 1,
        };
        let store = MemoryStore::default();
        let dead = MemoryDeadLetters::default();
        let total = 2 * DEDUPE_PAGE_IDS as u64 + 5_000;
        let event = |i: u64| {
            let mut e = delivered(&format!("e{i}"));
            e.message_id = None; // no trails: only the counts and the dedupe sets
            e
        };
        let mut sequence = 0;
        let mut next = |e: &Event| {
            sequence += 1;
            record("s/0", sequence, e)
        };
        let all: Vec<StreamRecord> = (0..total).map(|i| next(&event(i))).collect();
        for batch in all.chunks(5_000) {
            apply_batch(&store, &dead, &settings, batch).await.unwrap();
        }
        // The same events sent again by the client: the first ones, on page 0, and the
        // last ones, on the last page.
        let again: Vec<StreamRecord> = (0..100)
            .chain(total - 100..total)
            .map(|i| next(&event(i)))
            .collect();
        let out = apply_batch(&store, &dead, &settings, &again).await.unwrap();
        assert_eq!((out.applied, out.duplicates), (0, 200));
        assert_eq!(tenant_day(&store), total);
        let state = store.state.lock().unwrap();
        let pages: BTreeMap<u32, usize> = state
            .dedupe
            .iter()
            .map(|((_, page), ids)| (*page, ids.len()))
            .collect();
        assert_eq!(
            pages.keys().copied().collect::<Vec<_>>(),
            vec![0, 1, 2],
            "{pages:?}"
        );
        assert!(pages.values().all(|n| *n <= DEDUPE_PAGE_IDS), "{pages:?}");
        assert_eq!(pages.values().sum::<usize>(), total as usize);
        assert_eq!(state.dedupe_more.len(), 2, "pages 0 and 1 lead on");
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

    /// The live view notes what the runs applied, once: not a client duplicate, and
    /// not a record a redelivered batch finds behind the checkpoint.
    #[tokio::test]
    async fn the_live_view_notes_each_applied_event_once() {
        let store = MemoryStore::default();
        let dead = MemoryDeadLetters::default();
        let e = delivered("live");
        let batch = vec![record("s/0", 1, &e), record("s/0", 2, &e)];
        let out = apply_batch(&store, &dead, &Settings::default(), &batch)
            .await
            .unwrap();
        let tenant = &out.live.tenants[e.tenant_id.as_str()];
        assert_eq!(tenant.counts["message.delivered"], 1);
        assert!(tenant.feed.is_empty(), "deliveries are counted, not fed");
        let again = apply_batch(&store, &dead, &Settings::default(), &batch)
            .await
            .unwrap();
        assert_eq!(again.already_applied, 2);
        assert!(again.live.is_empty(), "{:?}", again.live);
    }

    /// A client that resends day after day: each copy comes within a day of the one
    /// before, the last two days after the original, past the window of the original's
    /// set. Each dropped copy is remembered on its own day, so the chain counts once.
    #[tokio::test]
    async fn a_resend_chain_counts_once_while_each_copy_is_within_the_window_of_the_last() {
        let store = MemoryStore::default();
        let dead = MemoryDeadLetters::default();
        let e = delivered("resent");
        let mut copy = e.clone();
        for (seq, shard) in ["s/0", "s/1", "s/2"].iter().enumerate() {
            let out = apply_batch(
                &store,
                &dead,
                &Settings::default(),
                &[record(shard, seq as u64 + 1, &copy)],
            )
            .await
            .unwrap();
            assert_eq!(
                (out.applied, out.duplicates),
                if seq == 0 { (1, 0) } else { (0, 1) },
                "copy {seq}"
            );
            if seq > 0 {
                // Its id on its own day's set, and the checkpoint (besides the
                // delivery time on its trail, written before any run).
                assert_eq!(out.write_actions - out.trail_writes, 2, "copy {seq}");
            }
            copy.received_at += Duration::hours(23);
        }
        assert_eq!(tenant_day(&store), 1);
        // A copy on a day whose set holds it already is dropped with no write but the
        // checkpoint's.
        let out = apply_batch(&store, &dead, &Settings::default(), &[record("s/3", 1, &e)])
            .await
            .unwrap();
        assert_eq!(
            (out.duplicates, out.write_actions - out.trail_writes),
            (1, 1)
        );
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

    /// The scalar counters of every rollup item of `tenant`, by key.
    fn rollups_of(
        store: &MemoryStore,
        tenant: &str,
    ) -> BTreeMap<String, [i64; crate::rollup::counters::SCALARS]> {
        store
            .state
            .lock()
            .unwrap()
            .rollups
            .iter()
            .filter(|(k, _)| k.tenant == tenant)
            .map(|(k, c)| (format!("{}|{}", k.partition_key(), k.period), c.scalars()))
            .collect()
    }

    #[tokio::test]
    async fn one_tenants_refused_writes_cost_no_other_tenant_anything() {
        // Three tenants' events interleaved on one shard; every write of `evil`'s items
        // is refused as an over-limit item is.
        let tenants = ["acme", "evil", "other"];
        let events: Vec<Event> = (0..90u64)
            .map(|i| {
                let mut e = delivered(&format!("e{i}"));
                e.tenant_id = tenants[i as usize % 3].into();
                e.campaign_id = Some(format!("c{}", i % 7));
                e
            })
            .collect();
        let records: Vec<_> = events
            .iter()
            .enumerate()
            .map(|(i, e)| record("s/0", i as u64 + 1, e))
            .collect();
        let store = MemoryStore::default();
        store
            .state
            .lock()
            .unwrap()
            .refused_tenants
            .insert("evil".into());
        let dead = MemoryDeadLetters::default();
        let out = apply_batch(&store, &dead, &Settings::default(), &records)
            .await
            .expect("a refused tenant never fails the batch");

        // The truth: the others' events alone, applied to a store that refuses nothing.
        let truth = MemoryStore::default();
        let others: Vec<_> = records
            .iter()
            .zip(&events)
            .filter(|(_, e)| e.tenant_id != "evil")
            .map(|(r, _)| r.clone())
            .collect();
        apply_batch(&truth, &dead_sink(), &Settings::default(), &others)
            .await
            .unwrap();
        for tenant in ["acme", "other"] {
            assert_eq!(
                rollups_of(&store, tenant),
                rollups_of(&truth, tenant),
                "{tenant}"
            );
        }
        assert!(rollups_of(&store, "evil").is_empty());
        assert_eq!((out.applied, out.dead_letters), (60, 30), "{out:?}");
        let letters = dead.letters.lock().unwrap().clone();
        assert_eq!(letters.len(), 30);
        for l in &letters {
            let e = decode(
                &base64::engine::general_purpose::STANDARD
                    .decode(&l.data_base64)
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(e.tenant_id, "evil");
            assert!(l.reason.contains("over its size limit"), "{}", l.reason);
        }
        assert_eq!(store.state.lock().unwrap().checkpoints["s/0"], padded("90"));

        // Delivered again, nothing moves and nothing more is dead-lettered.
        let again = apply_batch(&store, &dead, &Settings::default(), &records)
            .await
            .unwrap();
        assert_eq!((again.applied, again.already_applied), (0, 90));
        assert_eq!(dead.letters.lock().unwrap().len(), 30);
        assert_eq!(rollups_of(&store, "acme"), rollups_of(&truth, "acme"));
    }

    fn dead_sink() -> MemoryDeadLetters {
        MemoryDeadLetters::default()
    }

    #[tokio::test]
    async fn a_campaign_with_any_number_of_links_keeps_items_and_runs_bounded() {
        // 600 distinct long links in one campaign and hour: once the campaign's hour and
        // day items grew past 400 KB with them.
        let long = "x".repeat(1900);
        let records: Vec<_> = (0..600u64)
            .map(|i| {
                let url = format!("https://x.example/{i}/{long}");
                let mut e = click(&format!("k{i}"), "2026-11-23T10:00:00Z", &url);
                e.message_id = Some(format!("m-{i}"));
                e.recipient_id = Some(format!("r-{i}"));
                record("s/0", i + 1, &e)
            })
            .collect();
        let store = MemoryStore::default();
        let out = apply_batch(&store, &dead_sink(), &Settings::default(), &records)
            .await
            .expect("every run fits one transaction (the store refuses more than 100 actions)");
        assert_eq!((out.applied, out.dead_letters), (600, 0));
        let state = store.state.lock().unwrap();
        let campaign_day = state
            .rollups
            .iter()
            .find(|(k, _)| matches!(k.scope, Scope::Campaign(_)) && k.grain == Grain::Day)
            .unwrap()
            .1;
        assert_eq!(campaign_day.links.len(), 600, "every link counted");
        assert!(campaign_day.links.values().all(|l| l.human + l.bot == 1));
    }

    #[test]
    fn a_runs_link_clicks_and_moves_go_to_link_items() {
        let mut agg = Aggregate::default();
        let c = click("a", "2026-11-23T10:00:00Z", "https://x.example/1");
        agg.add(&c);
        let hit = Hit::of(
            &EventView::from(&c),
            Some(crate::rollup::link_id("https://x.example/1")),
            (false, "default"),
        )
        .unwrap();
        let hit = Hit {
            machine: true,
            reason: "click_burst".into(),
            ..hit
        };
        agg.reclassify(
            "acme",
            &crate::verdict::trail::Moved {
                hit,
                to_machine: true,
                from_machine: false,
                from_reason: "default".into(),
            },
        );
        let run = Run {
            rollups: agg.rollups().into_iter().collect(),
            reclassified: agg
                .reclassified()
                .map(|(k, m)| (k.clone(), m.clone()))
                .collect(),
            ..Default::default()
        };
        let updates = run.rollup_updates();
        let id = crate::rollup::link_id("https://x.example/1");
        for u in &updates {
            assert!(
                u.adds.iter().all(|(f, _)| !f.starts_with("lc_"))
                    && u.sets.iter().all(|(f, _)| f == "url"),
                "no rollup item holds a link: {u:?}"
            );
        }
        let link_hour = updates
            .iter()
            .find(|u| u.pk == "R#acme#H#l:c1")
            .expect("the link's hour item");
        assert_eq!(link_hour.sk, format!("H#2026-11-23T10#{id}"));
        // Clicked by a person, then moved to the bots by a late verdict: one bot click.
        assert_eq!(link_hour.adds, vec![("bot".to_string(), 1)]);
        assert_eq!(
            link_hour.sets,
            vec![("url".to_string(), "https://x.example/1".to_string())]
        );
        assert!(updates
            .iter()
            .any(|u| u.pk == "R#acme#D#l:c1" && u.sk == format!("D#2026-11-23#{id}")));
        assert_eq!(
            agg.item_count(),
            updates.len(),
            "the run sizes itself by these items"
        );
    }

    fn click(id: &str, at: &str, url: &str) -> Event {
        let t: DateTime<Utc> = at.parse().unwrap();
        let mut e = Event::new(id.into(), "acme".into(), EventType::Clicked, t, t);
        e.campaign_id = Some("c1".into());
        e.message_id = Some("m-1".into());
        e.recipient_id = Some("r-1".into());
        e.channel = Some("email".into());
        e.link_url = Some(url.into());
        e
    }

    /// The tenant's human and bot clicks in its rollup item of `period`.
    fn tenant_clicks(state: &MemoryState, period: &str) -> (u64, u64) {
        state
            .rollups
            .iter()
            .find(|(k, _)| k.scope == Scope::Tenant && k.period == period)
            .map(|(_, c)| (c.clicks_human, c.clicks_bot))
            .unwrap()
    }

    /// Two clicks of one message on two links 20 s apart (a person's, by themselves),
    /// then a click on its honeypot link 20 s later.
    fn two_clicks_then_a_trap() -> ([StreamRecord; 2], StreamRecord) {
        let at = |s| format!("2026-11-23T10:00:{s}Z");
        (
            [
                record("s/0", 1, &click("a", &at("00"), "https://x.example/1")),
                record("s/0", 2, &click("b", &at("20"), "https://x.example/2")),
            ],
            record(
                "s/0",
                3,
                &click("c", &at("40"), "https://x.example/#beacon-honeypot"),
            ),
        )
    }

    #[tokio::test]
    async fn a_late_honeypot_verdict_moves_counts_once_through_redelivery() {
        let store = MemoryStore::default();
        let dead = MemoryDeadLetters::default();
        let (first, trap) = two_clicks_then_a_trap();
        apply_batch(&store, &dead, &Settings::default(), &first)
            .await
            .unwrap();
        let clicks = |store: &MemoryStore| {
            let state = store.state.lock().unwrap();
            let day = tenant_clicks(&state, "D#2026-11-23");
            let members: usize = state.uniques.values().map(BTreeSet::len).sum();
            (day, members)
        };
        // Two people's clicks: counted human, the recipient and both links unique.
        assert_eq!(clicks(&store), ((2, 0), 3));
        let out = apply_batch(
            &store,
            &dead,
            &Settings::default(),
            std::slice::from_ref(&trap),
        )
        .await
        .unwrap();
        assert_eq!(out.reclassified, 2);
        assert_eq!(
            clicks(&store),
            ((0, 3), 0),
            "moved, and out of the unique sets"
        );
        let reasons = |store: &MemoryStore| {
            let state = store.state.lock().unwrap();
            let day = state
                .rollups
                .iter()
                .find(|(k, _)| k.scope == Scope::Tenant && k.period == "D#2026-11-23")
                .unwrap()
                .1
                .clone();
            for (_, c) in state.rollups.iter() {
                assert_eq!(c.click_reasons.values().sum::<u64>(), c.clicks_bot, "{c:?}");
                assert_eq!(
                    c.open_reasons.values().sum::<u64>(),
                    c.opens_machine,
                    "{c:?}"
                );
            }
            day.click_reasons
        };
        let by_reason = BTreeMap::from([("honeypot", 1), ("near_honeypot", 2)]);
        assert_eq!(
            reasons(&store),
            by_reason,
            "each bot click under its reason"
        );
        // The whole stream again (a redelivery), and the trap once more: nothing moves.
        let all: Vec<_> = first.iter().cloned().chain([trap]).collect();
        let again = apply_batch(&store, &dead, &Settings::default(), &all)
            .await
            .unwrap();
        assert_eq!((again.already_applied, again.reclassified), (3, 0));
        assert_eq!(clicks(&store), ((0, 3), 0));
        assert_eq!(reasons(&store), by_reason);
        // A person clicking an hour later is a person, and unique again.
        let later = record(
            "s/0",
            4,
            &click("d", "2026-11-23T11:00:00Z", "https://x.example/1"),
        );
        apply_batch(&store, &dead, &Settings::default(), &[later])
            .await
            .unwrap();
        let state = store.state.lock().unwrap();
        let hour = |h: &str| tenant_clicks(&state, &format!("H#2026-11-23T{h}"));
        assert_eq!((hour("10"), hour("11")), ((0, 3), (1, 0)));
        let trail = &state.trails[&TrailKey {
            tenant: "acme".into(),
            message: "m-1".into(),
        }];
        assert_eq!(trail.version, 3, "stored once per run that changed it");
    }

    #[tokio::test]
    async fn a_delivery_time_judges_clicks_made_before_it_arrived() {
        let store = MemoryStore::default();
        let dead = MemoryDeadLetters::default();
        let early = record(
            "s/0",
            1,
            &click("a", "2026-11-23T10:00:03Z", "https://x.example/1"),
        );
        apply_batch(&store, &dead, &Settings::default(), &[early])
            .await
            .unwrap();
        let mut d = delivered("x");
        d.message_id = Some("m-1".into());
        d.recipient_id = Some("r-1".into());
        let out = apply_batch(&store, &dead, &Settings::default(), &[record("s/0", 2, &d)])
            .await
            .unwrap();
        assert_eq!(out.reclassified, 1, "clicked three seconds after delivery");
        let state = store.state.lock().unwrap();
        let bots: u64 = state
            .rollups
            .iter()
            .filter(|(k, _)| matches!(k.scope, Scope::Campaign(_)))
            .map(|(_, c)| c.clicks_bot + c.links.values().map(|l| l.bot).sum::<u64>())
            .sum();
        assert_eq!(bots, 4, "campaign hour and day items, counter and link");
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
    fn padding_orders_long_sequence_numbers() {
        let a = "49654313543297382963862358273954627584126453962034872322";
        let b = "9";
        assert!(padded(a) > padded(b));
        assert_eq!(padded(a).len(), 64);
    }

    #[tokio::test]
    async fn suppressions_and_engagement_follow_the_stream_and_late_verdicts_once() {
        use crate::audience::engagement::{Action, Score};
        use crate::audience::suppression::Reason;
        use crate::event::BounceType;
        let store = MemoryStore::default();
        let dead = MemoryDeadLetters::default();
        let outcome = |id: &str, kind: EventType, bounce: Option<BounceType>| {
            let mut e = delivered(id);
            e.kind = kind;
            e.bounce_type = bounce;
            e.channel = Some("email".into());
            e
        };
        let mut conversion = outcome("buy", EventType::Conversion, None);
        conversion.recipient_id = Some("r-1".into());
        conversion.value = Some(10.0);
        let mut delivery = delivered("1");
        delivery.event_time = "2026-11-23T09:00:00Z".parse().unwrap();
        let first = vec![
            record("s/0", 1, &delivery),
            record(
                "s/0",
                2,
                &click("a", "2026-11-23T10:00:00Z", "https://x.example/1"),
            ),
            record(
                "s/0",
                3,
                &outcome("2", EventType::Bounced, Some(BounceType::Hard)),
            ),
            record(
                "s/0",
                4,
                &outcome("3", EventType::Bounced, Some(BounceType::Soft)),
            ),
            record("s/0", 5, &outcome("4", EventType::Complained, None)),
            record("s/0", 6, &outcome("5", EventType::Unsubscribed, None)),
            record("s/0", 7, &conversion),
        ];
        let out = apply_batch(&store, &dead, &Settings::default(), &first)
            .await
            .unwrap();
        assert_eq!(out.suppressed, 3);
        let today = crate::audience::engagement::epoch_day(
            "2026-11-23T12:00:00Z"
                .parse::<DateTime<Utc>>()
                .unwrap()
                .timestamp_millis(),
        );
        let score = |store: &MemoryStore| {
            let state = store.state.lock().unwrap();
            let marks = state
                .audience
                .engagement
                .get(&("acme".to_string(), "r-1".to_string()))
                .cloned()
                .unwrap_or_default();
            Score::of_marks("r-1", &marks, today)
        };
        // Delivered 1 + clicked 10 + conversion 50, all today.
        let s = score(&store);
        assert_eq!(
            (s.score, s.delivered, s.clicked, s.conversions),
            (61.0, 1, 1, 1)
        );
        let before = store.state.lock().unwrap().audience.clone();
        let suppressed: Vec<(String, Vec<Reason>)> = before
            .suppressions
            .iter()
            .map(|((_, ch, r), e)| (format!("{ch}/{r}"), e.reasons.keys().copied().collect()))
            .collect();
        assert_eq!(
            suppressed,
            vec![
                ("email/r-2".to_string(), vec![Reason::HardBounce]),
                ("email/r-4".to_string(), vec![Reason::Complaint]),
                ("email/r-5".to_string(), vec![Reason::Unsubscribe]),
            ],
            "a soft bounce suppresses no one"
        );
        // A client resending everything changes nothing.
        let resent: Vec<_> = first
            .iter()
            .enumerate()
            .map(|(i, r)| StreamRecord {
                sequence: (10 + i).to_string(),
                ..r.clone()
            })
            .collect();
        apply_batch(&store, &dead, &Settings::default(), &resent)
            .await
            .unwrap();
        assert_eq!(store.state.lock().unwrap().audience, before);
        // A honeypot hit on the message: the click was a scanner's, its points go.
        let trap = click(
            "t",
            "2026-11-23T10:00:30Z",
            "https://x.example/#beacon-honeypot",
        );
        apply_batch(
            &store,
            &dead,
            &Settings::default(),
            &[record("s/0", 20, &trap)],
        )
        .await
        .unwrap();
        let s = score(&store);
        assert_eq!((s.score, s.clicked), (51.0, 0));
        let marks = store.state.lock().unwrap().audience.engagement.clone();
        assert!(!marks[&("acme".to_string(), "r-1".to_string())]
            .contains_key(&Action::Clicked.mark("acme", "m-1")));
    }
}
