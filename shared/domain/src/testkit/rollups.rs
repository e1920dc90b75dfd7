//! The rollups table in memory: the aggregate's store ([`MemoryStore`], atomic runs,
//! conditional checkpoints, idempotent sets) and the stats API's reader
//! ([`MemoryRollupReader`]), each with DynamoDB's semantics for what it does.

use crate::audience::engagement;
use crate::audience::reader::AudienceError;
use crate::audience::suppression::Suppression;
use crate::rollup::aggregate::*;
use crate::rollup::reader::*;
use crate::rollup::{
    directory_partition, Aggregate, Counters, Scope, CAMPAIGN_PREFIX, CHANNEL_PREFIX,
};
use crate::rollup::{RollupKey, UniqueKey};
use crate::testkit::audience::MemoryAudience;
use crate::verdict::trail::{Trail, TrailKey};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// What the memory store charges a read without a fixed bound.
const UNBOUNDED: u32 = 1_000_000;

/// A stored rollup item: its Numbers and Strings by attribute name.
type StoredItem = (BTreeMap<String, i64>, BTreeMap<String, String>);

/// An in-memory rollups table, for in-process tests. It stores what the writer would
/// (numeric fields added up, link URLs set once) and reads it back the way the
/// DynamoDB adapter does. It records every partition read and every call with the most
/// DynamoDB requests the adapter makes for it ([`cost`]), and can be made to fail.
#[derive(Default)]
pub struct MemoryRollupReader {
    rollups: Mutex<BTreeMap<(String, String), StoredItem>>,
    uniques: Mutex<BTreeMap<(String, String), BTreeSet<String>>>,
    directory: Mutex<BTreeMap<(String, String), String>>,
    /// Committed trails by tenant and message.
    trails: Mutex<BTreeMap<(String, String), Trail>>,
    read: Mutex<Vec<String>>,
    calls: Mutex<Vec<(&'static str, u32)>>,
    /// When set, every read fails (the store is down).
    pub failing: AtomicBool,
    /// The suppression list and engagement marks.
    pub audience: Mutex<MemoryAudience>,
}

impl MemoryRollupReader {
    /// Adds a rollup item's counts to `pk`/`sk`, as the writer's `ADD` and
    /// `SET if_not_exists` do.
    pub fn add_rollup(&self, pk: &str, sk: &str, counters: &Counters) {
        let mut rollups = self.rollups.lock().unwrap();
        let (numbers, _) = rollups.entry((pk.to_string(), sk.to_string())).or_default();
        for (name, value) in counters.numeric_fields() {
            *numbers.entry(name).or_default() += value;
        }
        let Some(link_pk) = crate::rollup::link_partition_of(pk) else {
            return;
        };
        for (id, l) in &counters.links {
            let key = (link_pk.clone(), crate::rollup::link_sort_key(sk, id));
            let (numbers, strings) = rollups.entry(key).or_default();
            *numbers.entry("human".into()).or_default() += l.human as i64;
            *numbers.entry("bot".into()).or_default() += l.bot as i64;
            strings.entry("url".into()).or_insert_with(|| l.url.clone());
        }
    }

    /// Stores a message's trail, as a committed run leaves it.
    pub fn put_trail(&self, tenant: &str, message: &str, trail: Trail) {
        self.trails
            .lock()
            .unwrap()
            .insert((tenant.to_string(), message.to_string()), trail);
    }

    /// Adds members to a unique-set item.
    pub fn add_unique<'a>(&self, pk: &str, sk: &str, members: impl IntoIterator<Item = &'a str>) {
        self.uniques
            .lock()
            .unwrap()
            .entry((pk.to_string(), sk.to_string()))
            .or_default()
            .extend(members.into_iter().map(str::to_string));
    }

    /// Adds `c` to the tenant-wide hour item and day item of `t`, as the writer would.
    pub fn add_tenant_hour(&self, tenant: &str, t: chrono::DateTime<chrono::Utc>, c: &Counters) {
        for grain in [crate::rollup::Grain::Hour, crate::rollup::Grain::Day] {
            self.add_rollup(
                &crate::rollup::rollup_partition(tenant, &Scope::Tenant, grain),
                &grain.sort_key(t),
                c,
            );
        }
    }

    /// Sets a directory item (`C#{tenant}`, `c:...` or `ch:...`).
    pub fn set_directory(&self, pk: &str, sk: &str, last_seen: &str) {
        self.directory
            .lock()
            .unwrap()
            .insert((pk.to_string(), sk.to_string()), last_seen.to_string());
    }

    /// Stores everything a folded batch writes: its rollup items, unique sets and
    /// directory entries (with `last_seen`).
    pub fn add_aggregate(&self, agg: &Aggregate, last_seen: &str) {
        for (key, counters) in &agg.rollups() {
            self.add_rollup(&key.partition_key(), &key.period, counters);
            let entry = match &key.scope {
                Scope::Tenant => None,
                Scope::Campaign(c) => Some(format!("{CAMPAIGN_PREFIX}{c}")),
                Scope::Channel(ch, p) => Some(format!("{CHANNEL_PREFIX}{ch}:{p}")),
                Scope::CampaignChannel { campaign, .. } => {
                    Some(format!("{CAMPAIGN_PREFIX}{campaign}"))
                }
            };
            if let Some(sk) = entry {
                self.set_directory(&directory_partition(&key.tenant), &sk, last_seen);
            }
        }
        for (key, members) in &agg.unique_sets() {
            self.add_unique(
                &key.partition_key(),
                &key.sort_key(),
                members.iter().map(String::as_str),
            );
        }
    }

    /// Every partition read so far, in order.
    pub fn partitions_read(&self) -> Vec<String> {
        self.read.lock().unwrap().clone()
    }

    /// Every read and write asked for so far: its kind and the most DynamoDB requests
    /// the DynamoDB adapter makes for it ([`cost`]).
    pub fn calls(&self) -> Vec<(&'static str, u32)> {
        self.calls.lock().unwrap().clone()
    }

    /// The most DynamoDB requests the reads and writes so far would have taken.
    pub fn dynamodb_calls(&self) -> u32 {
        self.calls.lock().unwrap().iter().map(|(_, n)| n).sum()
    }

    /// Forgets the calls so far (to count one request's).
    pub fn reset_calls(&self) {
        self.calls.lock().unwrap().clear();
    }

    fn charge(&self, kind: &'static str, dynamodb: u32) {
        self.calls.lock().unwrap().push((kind, dynamodb));
    }

    fn start_read(&self, pk: &str) -> Result<(), ReadError> {
        self.read.lock().unwrap().push(pk.to_string());
        if self.failing.load(Ordering::Relaxed) {
            return Err(ReadError("the memory store is failing on purpose".into()));
        }
        Ok(())
    }
}

impl MemoryRollupReader {
    /// The items of `pk` in a key range, holding what a projection of `fields` would:
    /// so a reader that asks for too little fails here too.
    fn range_items(&self, pk: &str, from_sk: &str, to_sk: &str, fields: Fields) -> Vec<RollupItem> {
        let mut items = self.range_rollups(pk, from_sk, to_sk, fields);
        if let (Fields::All, Some(link_pk)) = (fields, crate::rollup::link_partition_of(pk)) {
            let rollups = self.rollups.lock().unwrap();
            let (from, to) = link_sort_key_range(from_sk, to_sk);
            let number = |numbers: &BTreeMap<String, i64>, name: &str| {
                numbers.get(name).copied().unwrap_or(0)
            };
            merge_link_items(
                &mut items,
                rollups
                    .range((link_pk.clone(), from)..=(link_pk, to))
                    .take(MAX_LINK_ITEMS)
                    .map(|((_, sk), (numbers, strings))| LinkItem {
                        sk,
                        human: number(numbers, "human"),
                        bot: number(numbers, "bot"),
                        url: strings.get("url").map(String::as_str),
                    }),
            );
        }
        items
    }

    fn range_rollups(
        &self,
        pk: &str,
        from_sk: &str,
        to_sk: &str,
        fields: Fields,
    ) -> Vec<RollupItem> {
        let rollups = self.rollups.lock().unwrap();
        rollups
            .range((pk.to_string(), from_sk.to_string())..=(pk.to_string(), to_sk.to_string()))
            .map(|((_, sk), (numbers, strings))| RollupItem {
                sk: sk.clone(),
                counters: counters_from_attributes(
                    numbers
                        .iter()
                        .filter(|(k, _)| fields.holds(k))
                        .map(|(k, v)| (k.as_str(), *v)),
                    strings
                        .iter()
                        .filter(|(k, _)| fields.holds(k))
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                ),
            })
            .collect()
    }
}

impl RollupReader for MemoryRollupReader {
    async fn rollups(
        &self,
        pk: &str,
        from_sk: &str,
        to_sk: &str,
        fields: Fields,
    ) -> Result<Vec<RollupItem>, ReadError> {
        match packed_days(from_sk, to_sk, fields) {
            Some(_) => self.charge("daily series", cost::DAILY_SERIES),
            None => self.charge("range", cost::RANGE),
        }
        if fields == Fields::All && crate::rollup::link_partition_of(pk).is_some() {
            self.charge("links", cost::LINKS);
        }
        self.start_read(pk)?;
        Ok(self.range_items(pk, from_sk, to_sk, fields))
    }

    async fn latest_rollups(
        &self,
        pk: &str,
        from_sk: &str,
        to_sk: &str,
        fields: Fields,
        limit: usize,
    ) -> Result<Vec<RollupItem>, ReadError> {
        self.charge("latest", if limit <= 1 { cost::PROBE } else { cost::RANGE });
        if fields == Fields::All && crate::rollup::link_partition_of(pk).is_some() {
            self.charge("links", cost::LINKS);
        }
        self.start_read(pk)?;
        if from_sk > to_sk {
            return Ok(Vec::new());
        }
        let mut items = self.range_items(pk, from_sk, to_sk, fields);
        items.reverse();
        items.truncate(limit);
        Ok(items)
    }

    async fn unique_members(&self, pk: &str) -> Result<Vec<String>, ReadError> {
        self.charge("unique set", cost::UNIQUE_SET);
        self.start_read(pk)?;
        let uniques = self.uniques.lock().unwrap();
        Ok(uniques
            .iter()
            .filter(|((p, _), _)| p == pk)
            .flat_map(|(_, members)| members.iter().cloned())
            .collect())
    }

    async fn directory(&self, pk: &str, sk_prefix: &str) -> Result<Vec<DirectoryItem>, ReadError> {
        // Every page of the partition: no fixed bound, so a route that reads it fails
        // any bound a test sets.
        self.charge("whole directory", UNBOUNDED);
        self.start_read(pk)?;
        let directory = self.directory.lock().unwrap();
        Ok(directory
            .iter()
            .filter(|((p, sk), _)| p == pk && sk.starts_with(sk_prefix))
            .map(|((_, sk), last_seen)| DirectoryItem {
                sk: sk.clone(),
                last_seen: Some(last_seen.clone()),
            })
            .collect())
    }

    async fn directory_page(
        &self,
        pk: &str,
        sk_prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<DirectoryPage, ReadError> {
        self.charge("directory page", cost::DIRECTORY_PAGE);
        self.start_read(pk)?;
        let limit = limit.clamp(1, MAX_DIRECTORY_PAGE);
        let directory = self.directory.lock().unwrap();
        let mut items: Vec<DirectoryItem> = directory
            .range((pk.to_string(), after.unwrap_or_default().to_string())..)
            .take_while(|((p, _), _)| p == pk)
            .filter(|((_, sk), _)| sk.starts_with(sk_prefix) && Some(sk.as_str()) != after)
            .take(limit + 1)
            .map(|((_, sk), last_seen)| DirectoryItem {
                sk: sk.clone(),
                last_seen: Some(last_seen.clone()),
            })
            .collect();
        let more = items.len() > limit;
        items.truncate(limit);
        Ok(DirectoryPage { items, more })
    }

    async fn recent_trails(
        &self,
        tenant: &str,
        recipient: &str,
        limit: usize,
    ) -> Result<Vec<(String, Trail)>, ReadError> {
        self.charge("recent trails", cost::RECENT_TRAILS);
        self.start_read(&crate::rollup::recipient_index_key(tenant, recipient))?;
        // As the index orders them: by first hit, newest first.
        let mut found: Vec<(i64, String, Trail)> = self
            .trails
            .lock()
            .unwrap()
            .iter()
            .filter(|((t, _), trail)| t == tenant && trail.recipient() == Some(recipient))
            .filter_map(|((_, m), trail)| Some((trail.first_hit_ms()?, m.clone(), trail.clone())))
            .collect();
        found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
        Ok(found
            .into_iter()
            .take(limit)
            .map(|(_, m, trail)| (m, trail))
            .collect())
    }

    async fn directory_entry(
        &self,
        pk: &str,
        sk: &str,
    ) -> Result<Option<DirectoryItem>, ReadError> {
        self.charge("directory entry", cost::GET_ITEM);
        self.start_read(pk)?;
        let directory = self.directory.lock().unwrap();
        Ok(directory
            .get(&(pk.to_string(), sk.to_string()))
            .map(|last_seen| DirectoryItem {
                sk: sk.to_string(),
                last_seen: Some(last_seen.clone()),
            }))
    }
}

crate::audience_through!(
    MemoryRollupReader,
    audience,
    |r: &MemoryRollupReader, kind, calls| {
        r.charge(kind, calls);
        if r.failing.load(Ordering::Relaxed) {
            Err(AudienceError(
                "the memory store is failing on purpose".into(),
            ))
        } else {
            Ok(())
        }
    }
);
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
    /// Dedupe pages' ids, by bucket and page.
    pub dedupe: HashMap<(DedupeKey, u32), HashSet<String>>,
    /// Dedupe pages marked `more` (the next page exists).
    pub dedupe_more: HashSet<(DedupeKey, u32)>,
    pub uniques: HashMap<UniqueKey, BTreeSet<String>>,
    /// Trails as committed runs left them.
    pub trails: HashMap<TrailKey, Trail>,
    /// Trails staged by runs not known to have committed: shard, through, trail.
    pub staged: HashMap<TrailKey, (String, String, Trail)>,
    /// The suppression list and engagement marks.
    pub audience: crate::testkit::audience::MemoryAudience,
    /// Month packs' generations.
    pub packs: HashMap<(String, String), i64>,
    pub writes: usize,
    /// Tenants whose rollup writes are refused as DynamoDB refuses an item grown past
    /// its limit: every run holding one of their items fails permanently.
    pub refused_tenants: HashSet<String>,
}

impl MemoryState {
    /// A trail as readers get it: a staged one once its run committed (it is promoted
    /// then), the committed one otherwise; the version is always the latest stored.
    fn trail(&mut self, k: &TrailKey) -> Option<Trail> {
        if let Some((shard, through, _)) = self.staged.get(k) {
            if staged_counts(through, self.checkpoints.get(shard).map(String::as_str)) {
                let (_, _, t) = self.staged.remove(k).expect("just seen");
                self.trails.insert(k.clone(), t);
            }
        }
        match self.staged.get(k) {
            Some((_, _, staged)) => {
                let mut t = self.trails.get(k).cloned().unwrap_or_default();
                t.version = staged.version;
                t.delivered_ms = staged.delivered_ms;
                Some(t)
            }
            None => self.trails.get(k).cloned(),
        }
    }
}

impl RollupStore for MemoryStore {
    async fn checkpoint(&self, shard: &str) -> Result<Option<String>, RollupStoreError> {
        Ok(self.state.lock().unwrap().checkpoints.get(shard).cloned())
    }

    async fn dedupe_members(&self, keys: &[DedupeKey]) -> Result<DedupeSets, RollupStoreError> {
        let state = self.state.lock().unwrap();
        let mut out = DedupeSets::default();
        for k in keys {
            let mut page = 0;
            loop {
                let ids = state.dedupe.get(&(k.clone(), page));
                out.ids.extend(
                    ids.into_iter()
                        .flatten()
                        .map(|id| (k.day.clone(), id.clone())),
                );
                if !state.dedupe_more.contains(&(k.clone(), page)) {
                    out.last
                        .insert(k.clone(), (page, ids.map_or(0, HashSet::len)));
                    break;
                }
                page += 1;
            }
        }
        Ok(out)
    }

    async fn add_uniques(
        &self,
        uniques: &[(UniqueKey, BTreeSet<String>)],
    ) -> Result<(), RollupStoreError> {
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

    async fn remove_uniques(
        &self,
        uniques: &[(UniqueKey, BTreeSet<String>)],
    ) -> Result<(), RollupStoreError> {
        let mut state = self.state.lock().unwrap();
        for (k, members) in uniques {
            let set = state.uniques.entry(k.clone()).or_default();
            set.retain(|m| !members.contains(m));
            state.writes += 1;
        }
        Ok(())
    }

    async fn audience(
        &self,
        suppressions: &[Suppression],
        engagement: &engagement::Changes,
    ) -> Result<(), RollupStoreError> {
        let mut state = self.state.lock().unwrap();
        state.audience.apply(suppressions, engagement);
        state.writes += suppressions.len() + engagement.len();
        Ok(())
    }

    async fn trails(
        &self,
        keys: &[TrailKey],
    ) -> Result<HashMap<TrailKey, Trail>, RollupStoreError> {
        let mut state = self.state.lock().unwrap();
        Ok(keys
            .iter()
            .filter_map(|k| state.trail(k).map(|t| (k.clone(), t)))
            .collect())
    }

    async fn deliver(
        &self,
        deliveries: &[(TrailKey, i64)],
        _expires: i64,
    ) -> Result<HashMap<TrailKey, Trail>, RollupStoreError> {
        let mut state = self.state.lock().unwrap();
        let mut out = HashMap::new();
        for (k, at) in deliveries {
            state.trails.entry(k.clone()).or_default().deliver(*at);
            if let Some((_, _, staged)) = state.staged.get_mut(k) {
                staged.deliver(*at);
            }
            let trail = state.trail(k).expect("just stored");
            out.insert(k.clone(), trail);
            state.writes += 1;
        }
        Ok(out)
    }

    async fn apply(&self, run: &Run) -> Result<(), RollupStoreError> {
        let mut state = self.state.lock().unwrap();
        let actions = run.rollup_updates().len()
            + run.dedupe.iter().map(DedupeWrite::actions).sum::<usize>()
            + run.directory.len()
            + run.packs.len()
            + 1;
        if actions > 100 {
            return Err(RollupStoreError::Permanent(format!(
                "a transaction of {actions} actions (DynamoDB takes 100)"
            )));
        }
        if let Some((k, _)) = run
            .rollups
            .iter()
            .find(|(k, _)| state.refused_tenants.contains(&k.tenant))
        {
            return Err(RollupStoreError::Permanent(format!(
                "ValidationException: item {} {} is over its size limit",
                k.partition_key(),
                k.period
            )));
        }
        if state.checkpoints.get(&run.shard) != run.after.as_ref() {
            return Err(RollupStoreError::CheckpointMoved(run.shard.clone()));
        }
        for (k, c) in &run.rollups {
            state.rollups.entry(k.clone()).or_default().merge(c);
        }
        for (k, moved) in &run.reclassified {
            moved.apply_to(state.rollups.entry(k.clone()).or_default());
        }
        for w in &run.dedupe {
            let held = state
                .dedupe
                .get(&(w.key.clone(), w.page))
                .map_or(0, HashSet::len);
            if held + w.ids.len() > DEDUPE_PAGE_IDS {
                // The condition a concurrent writer can make fail: a temporary refusal.
                return Err(RollupStoreError::Failed(format!(
                    "dedupe page {} {} filled meanwhile",
                    w.key.partition_key(),
                    w.key.page_sort_key(w.page)
                )));
            }
        }
        for w in &run.dedupe {
            state
                .dedupe
                .entry((w.key.clone(), w.page))
                .or_default()
                .extend(w.ids.iter().cloned());
            if w.opens_page {
                state.dedupe_more.insert((w.key.clone(), w.page - 1));
            }
        }
        for pack in &run.packs {
            *state.packs.entry(pack.clone()).or_default() += 1;
        }
        state
            .checkpoints
            .insert(run.shard.clone(), run.through.clone());
        // The run's staged trails count now.
        for (k, _) in &run.trails {
            state.trail(k);
        }
        state.writes += actions;
        Ok(())
    }

    async fn stage(&self, run: &Run) -> Result<(), RollupStoreError> {
        let mut state = self.state.lock().unwrap();
        for (k, t) in &run.trails {
            let stored = state.trail(k).map_or(0, |s| s.version);
            if stored != t.version {
                return Err(RollupStoreError::Failed(format!(
                    "trail {} changed meanwhile",
                    k.partition_key()
                )));
            }
        }
        for (k, t) in &run.trails {
            let delivered = state.trail(k).and_then(|s| s.delivered_ms);
            let staged = Trail {
                version: t.version + 1,
                delivered_ms: delivered,
                ..t.clone()
            };
            state
                .staged
                .insert(k.clone(), (run.shard.clone(), run.through.clone(), staged));
        }
        state.writes += run.trails.len();
        Ok(())
    }
}
