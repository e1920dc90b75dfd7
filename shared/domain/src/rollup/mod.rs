//! Rollups: what the stream's events add up to, per hour and per day (UTC), for the
//! tenant, each campaign (with its links), and each channel/provider.
//!
//! A batch of events is folded in memory into one [`Counters`] per rollup item, so all
//! events of a batch that touch one item become one write. Counts that must be exact
//! per recipient (unique opens and clicks) are kept as sets of recipient fingerprints
//! ([`UniqueKey`]), which can be added to idempotently and are counted when read.
//!
//! Every key of the rollups table is built in [`keys`], where the table's layout is
//! documented.

pub mod aggregate;
pub mod counters;
pub mod keys;
pub mod month_pack;
pub mod reader;

use crate::event::{BounceType, Event, EventType, EventView};
use crate::verdict::classify::Classifier;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::DateTime;
pub use counters::{Counter, Counters, LinkCounters};
pub use keys::*;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Delivery latency histogram: bucket `i` holds latencies up to `LATENCY_BOUNDS_MS[i]`;
/// the last bucket is open-ended. Four buckets per doubling, so a percentile read from
/// it is within 19% of the true value; buckets add up across items (mergeable).
pub const LATENCY_BOUNDS_MS: [u64; 80] = latency_bounds();

const fn latency_bounds() -> [u64; 80] {
    // 2^(i/4) ms, rounded up, from 1 ms to about 2^19.75 ms (15 minutes).
    let mut out = [0u64; 80];
    // Fixed-point 2^(k/4) * 1e6 for k = 0..3.
    let quarter = [1_000_000u64, 1_189_208, 1_414_214, 1_681_793];
    let mut i = 0;
    while i < 80 {
        let whole = 1u64 << (i / 4);
        let v = whole * quarter[i % 4];
        out[i] = v.div_ceil(1_000_000);
        i += 1;
    }
    out
}

/// The histogram bucket of a latency.
pub fn latency_bucket(ms: i64) -> usize {
    let ms = ms.max(0) as u64;
    LATENCY_BOUNDS_MS
        .iter()
        .position(|&b| ms <= b)
        .unwrap_or(LATENCY_BOUNDS_MS.len() - 1)
}

/// Money in micro-units, rounded to the nearest.
pub fn to_micros(amount: f64) -> i64 {
    (amount * 1_000_000.0).round() as i64
}

/// A short, stable id for a link URL (64 bits of SHA-256, hex).
pub fn link_id(url: &str) -> String {
    let digest = Sha256::digest(url.as_bytes());
    hex::encode(&digest[..8])
}

/// A recipient's fingerprint in the unique sets: 96 bits of SHA-256 of tenant and
/// recipient id. Two recipients share one with probability about n²/2^97 (below
/// 10^-15 for ten million recipients), so counts read from the sets are exact in
/// practice, and the sets stay small whatever the ids look like.
pub fn fingerprint(tenant: &str, recipient: &str) -> String {
    URL_SAFE_NO_PAD.encode(fingerprint_bytes(tenant, recipient))
}

fn fingerprint_bytes(tenant: &str, recipient: &str) -> [u8; 12] {
    let mut h = Sha256::new();
    h.update(tenant.as_bytes());
    h.update([0u8]);
    h.update(recipient.as_bytes());
    h.finalize()[..12].try_into().expect("12 of 32 bytes")
}

/// A unique-set member as the fold keeps it: fixed-size and copied, not a string, as
/// a batch adds thousands. [`Member::text`] is its stored form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Member {
    /// The link id (16 hex digits) of a click on one link; all zero for a recipient.
    link: [u8; 16],
    fingerprint: [u8; 12],
}

impl Member {
    /// `{fingerprint}`, or `{link id}:{fingerprint}` for a click on one link.
    fn text(&self) -> String {
        let fp = URL_SAFE_NO_PAD.encode(self.fingerprint);
        if self.link == [0; 16] {
            fp
        } else {
            format!("{}:{fp}", String::from_utf8_lossy(&self.link))
        }
    }
}

impl Counters {
    /// Folds one event in; `facts` are worked out once per event, not per item.
    /// Returns whether the event brought a link this item did not hold.
    fn add(&mut self, e: &EventView, facts: &Facts, with_links: bool) -> bool {
        let mut new_link = false;
        match &e.kind {
            EventType::Sent => self.sent += 1,
            EventType::Delivered => {
                self.delivered += 1;
                if let Some(ms) = e.duration_ms {
                    self.latency_count += 1;
                    self.latency_sum_ms += ms.max(0) as u64;
                    *self.latency_hist.entry(latency_bucket(ms)).or_default() += 1;
                }
            }
            EventType::Bounced => match e.bounce_type {
                Some(BounceType::Soft) => self.bounced_soft += 1,
                _ => self.bounced_hard += 1,
            },
            EventType::Complained => self.complained += 1,
            EventType::Failed => self.failed += 1,
            EventType::Delayed => self.delayed += 1,
            EventType::Unsubscribed => self.unsubscribed += 1,
            EventType::Opened if facts.machine => {
                self.opens_machine += 1;
                *self.open_reasons.entry(facts.reason).or_default() += 1;
            }
            EventType::Opened => self.opens_human += 1,
            EventType::Clicked => {
                let bot = facts.machine;
                if bot {
                    self.clicks_bot += 1;
                    *self.click_reasons.entry(facts.reason).or_default() += 1;
                } else {
                    self.clicks_human += 1;
                }
                if let (true, Some((id, url))) = (with_links, &facts.link) {
                    let link = match self.links.get_mut(id.as_str()) {
                        Some(link) => link,
                        None => {
                            new_link = true;
                            self.links
                                .entry(id.clone())
                                .or_insert_with(|| LinkCounters {
                                    url: url.to_string(),
                                    ..Default::default()
                                })
                        }
                    };
                    if bot {
                        link.bot += 1;
                    } else {
                        link.human += 1;
                    }
                }
            }
            EventType::Conversion => {
                self.conversions += 1;
                self.conversion_value_micros += e.value.map(to_micros).unwrap_or(0);
            }
            EventType::Custom(_) => self.custom += 1,
        }
        self.cost_micros += e.cost.map(to_micros).unwrap_or(0);
        new_link
    }
}

/// What an event is, worked out once: machine open or bot click, and its link.
pub struct Facts<'e> {
    pub machine: bool,
    /// Why, when `machine` (one of [`crate::verdict::MACHINE_REASONS`]).
    pub reason: &'static str,
    /// Link id and URL of a click.
    pub link: Option<(String, &'e str)>,
    /// On a message's trail: its unique-set membership is decided from the whole trail
    /// when the run is written ([`unique_member`]), not by this event alone.
    pub tracked: bool,
}

/// Opens and clicks moved from the human to the machine column of one rollup item by
/// late verdicts (negative: moved back). Link counts move on campaign items, and reason
/// counters with the verdicts' reasons.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reclassified {
    pub opens: i64,
    pub clicks: i64,
    /// Link id → clicks moved.
    pub links: BTreeMap<String, i64>,
    /// Machine opens and bot clicks per reason, added (or taken away).
    pub open_reasons: BTreeMap<&'static str, i64>,
    pub click_reasons: BTreeMap<&'static str, i64>,
}

impl Reclassified {
    /// The rollup item's counters it changes, as deltas ([`Counters::numeric_fields`]
    /// names); the link moves go to link items ([`crate::rollup::aggregate::Run::rollup_updates`]).
    pub fn numeric_fields(&self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        if self.opens != 0 {
            out.push(("opens_human".to_string(), -self.opens));
            out.push(("opens_machine".to_string(), self.opens));
        }
        if self.clicks != 0 {
            out.push(("clicks_human".to_string(), -self.clicks));
            out.push(("clicks_bot".to_string(), self.clicks));
        }
        out.extend(counters::reason_fields(
            &self.open_reasons,
            &self.click_reasons,
            |n| *n,
        ));
        out
    }

    /// Applies the move to stored counters (in-memory stores).
    pub fn apply_to(&self, c: &mut Counters) {
        let shift = |human: &mut u64, machine: &mut u64, n: i64| {
            *human = human.saturating_add_signed(-n);
            *machine = machine.saturating_add_signed(n);
        };
        shift(&mut c.opens_human, &mut c.opens_machine, self.opens);
        shift(&mut c.clicks_human, &mut c.clicks_bot, self.clicks);
        for (stored, moves) in [
            (&mut c.open_reasons, &self.open_reasons),
            (&mut c.click_reasons, &self.click_reasons),
        ] {
            for (r, n) in moves {
                let v = stored.entry(r).or_default();
                *v = v.saturating_add_signed(*n);
                if *v == 0 {
                    stored.remove(r);
                }
            }
        }
        for (id, n) in &self.links {
            let link = c.links.entry(id.clone()).or_default();
            shift(&mut link.human, &mut link.bot, *n);
        }
    }
}

/// A member of a campaign's unique set, and the item it goes in: the recipient's
/// fingerprint, or `{link id}:{fingerprint}` for a click on one link.
pub fn unique_member(
    tenant: &str,
    campaign: &str,
    recipient: &str,
    kind: UniqueKind,
    link: Option<&str>,
) -> (UniqueKey, String) {
    let fingerprint = fingerprint_bytes(tenant, recipient);
    let key = UniqueKey {
        tenant: tenant.to_string(),
        campaign: campaign.to_string(),
        kind,
        bucket: Aggregate::bucket_of(&fingerprint),
    };
    let link = link
        .and_then(|id| id.as_bytes().try_into().ok())
        .unwrap_or([0; 16]);
    (key, Member { link, fingerprint }.text())
}

/// The finest grain a batch folds into: one tenant, campaign, channel/provider and
/// hour. An event touches exactly one cell, so folding it costs one hash lookup that
/// allocates nothing once the cell exists; the hour and day items of every scope are
/// the cells added up when the batch is written ([`Aggregate::rollups`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cell {
    tenant: String,
    campaign: Option<String>,
    channel: Option<String>,
    provider: Option<String>,
    hour: i64,
}

/// A cell's key borrowed from an event, to look cells up without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CellRef<'a> {
    tenant: &'a str,
    campaign: Option<&'a str>,
    channel: Option<&'a str>,
    provider: Option<&'a str>,
    hour: i64,
}

impl Cell {
    fn as_ref(&self) -> CellRef<'_> {
        CellRef {
            tenant: &self.tenant,
            campaign: self.campaign.as_deref(),
            channel: self.channel.as_deref(),
            provider: self.provider.as_deref(),
            hour: self.hour,
        }
    }
}

// Hashing through the borrowed form keeps both forms' hashes equal by construction.
impl std::hash::Hash for Cell {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state)
    }
}

impl hashbrown::Equivalent<Cell> for CellRef<'_> {
    fn equivalent(&self, key: &Cell) -> bool {
        *self == key.as_ref()
    }
}

impl<'a> CellRef<'a> {
    fn of(e: &'a EventView<'_>) -> Self {
        CellRef {
            tenant: &e.tenant_id,
            campaign: e.campaign_id.as_deref(),
            channel: e.channel.as_deref(),
            provider: e.provider.as_deref(),
            hour: e.event_time.timestamp().div_euclid(3600),
        }
    }

    fn to_owned(self) -> Cell {
        Cell {
            tenant: self.tenant.to_string(),
            campaign: self.campaign.map(str::to_string),
            channel: self.channel.map(str::to_string),
            provider: self.provider.map(str::to_string),
            hour: self.hour,
        }
    }

    fn periods(self) -> [(Grain, String); 2] {
        let t = DateTime::from_timestamp(self.hour * 3600, 0).unwrap_or_default();
        [
            (Grain::Hour, Grain::Hour.sort_key(t)),
            (Grain::Day, Grain::Day.sort_key(t)),
        ]
    }

    /// The rollup items the cell adds to: hour and day of the tenant, its campaign and
    /// its channel/provider, and the day of its campaign's channel/provider.
    fn rollup_keys(self) -> Vec<RollupKey> {
        let mut scopes = vec![Scope::Tenant];
        if let Some(c) = self.campaign {
            scopes.push(Scope::Campaign(c.to_string()));
        }
        let provider = self.provider.unwrap_or("-");
        if let Some(ch) = self.channel {
            scopes.push(Scope::Channel(ch.to_string(), provider.to_string()));
        }
        let periods = self.periods();
        let mut keys = Vec::with_capacity(scopes.len() * 2 + 1);
        for scope in scopes {
            for (grain, period) in &periods {
                keys.push(RollupKey {
                    tenant: self.tenant.to_string(),
                    scope: scope.clone(),
                    grain: *grain,
                    period: period.clone(),
                });
            }
        }
        if let (Some(campaign), Some(channel)) = (self.campaign, self.channel) {
            let (_, day) = &periods[1];
            keys.push(RollupKey {
                tenant: self.tenant.to_string(),
                scope: Scope::CampaignChannel {
                    campaign: campaign.to_string(),
                    channel: channel.to_string(),
                    provider: provider.to_string(),
                },
                grain: Grain::Day,
                period: keys::campaign_channel_sort_key(day, channel, provider),
            });
        }
        keys
    }

    /// The campaign items (hour and day) of the cell, which hold its links.
    fn campaign_keys(self) -> Vec<RollupKey> {
        let Some(c) = self.campaign else {
            return Vec::new();
        };
        self.periods()
            .into_iter()
            .map(|(grain, period)| RollupKey {
                tenant: self.tenant.to_string(),
                scope: Scope::Campaign(c.to_string()),
                grain,
                period,
            })
            .collect()
    }
}

/// A unique-set key borrowed from an event, for lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct UniqueRef<'a> {
    tenant: &'a str,
    campaign: &'a str,
    kind: UniqueKind,
    bucket: u32,
}

impl hashbrown::Equivalent<UniqueKey> for UniqueRef<'_> {
    fn equivalent(&self, key: &UniqueKey) -> bool {
        *self
            == UniqueRef {
                tenant: &key.tenant,
                campaign: &key.campaign,
                kind: key.kind,
                bucket: key.bucket,
            }
    }
}

impl From<&UniqueRef<'_>> for UniqueKey {
    fn from(r: &UniqueRef<'_>) -> Self {
        UniqueKey {
            tenant: r.tenant.to_string(),
            campaign: r.campaign.to_string(),
            kind: r.kind,
            bucket: r.bucket,
        }
    }
}

/// What adding one event would add to a run, so a run can be closed before it
/// outgrows one transaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Growth {
    /// Rollup items the aggregate does not hold yet.
    pub items: usize,
    /// Of those, the day items of a campaign or channel: each brings a directory entry.
    pub directory: usize,
}

/// A batch folded into rollup items and unique-set additions.
#[derive(Debug, Default)]
pub struct Aggregate {
    /// Each cell's counters and the rollup items it adds to (worked out once per cell).
    cells: hashbrown::HashMap<Cell, (Counters, Vec<RollupKey>)>,
    /// The rollup items the cells add up to, with the link ids clicked in each campaign
    /// item's period (each is a link item of its own): what [`Aggregate::growth`] sizes
    /// a run by.
    items: hashbrown::HashMap<RollupKey, BTreeSet<String>>,
    /// Link items the batch touches: the link ids of `items`, added up.
    link_items: usize,
    /// Members to add per unique-set item ([`Aggregate::unique_sets`]).
    uniques: hashbrown::HashMap<UniqueKey, hashbrown::HashSet<Member>>,
    /// Link ids by URL: a batch clicks the same few links again and again.
    link_ids: hashbrown::HashMap<String, String>,
    /// Late verdicts' moves per rollup item ([`Aggregate::reclassify`]).
    reclassified: hashbrown::HashMap<RollupKey, Reclassified>,
    classifier: Classifier,
    pub events: usize,
}

impl Aggregate {
    /// Spreads each unique set over this many items, so each stays well under
    /// DynamoDB's 400 KB item limit (16 x ~20,000 members). Readers union every item
    /// of a set, so changing it never double counts.
    pub const UNIQUE_BUCKETS: u32 = 16;

    /// Folds one event in.
    pub fn add(&mut self, e: &Event) {
        self.add_view(&EventView::from(e));
    }

    /// Folds one event in, as read from a stream record.
    pub fn add_view(&mut self, e: &EventView) {
        let facts = self.facts(e);
        self.add_with(e, &facts);
    }

    /// What `e` is: worked out once, then used by [`Aggregate::growth`] and
    /// [`Aggregate::add_with`].
    pub fn facts<'e>(&mut self, e: &'e EventView<'_>) -> Facts<'e> {
        let verdict = self.classifier.machine(e);
        let link = match (&e.kind, &e.link_url) {
            (EventType::Clicked, Some(url)) => {
                let id = match self.link_ids.get(url.as_ref()) {
                    Some(id) => id.clone(),
                    None => {
                        let id = link_id(url);
                        self.link_ids.insert(url.to_string(), id.clone());
                        id
                    }
                };
                Some((id, url.as_ref()))
            }
            _ => None,
        };
        Facts {
            machine: verdict.is_some_and(|(machine, _)| machine),
            reason: match verdict {
                Some((true, reason)) => crate::verdict::machine_reason(reason),
                _ => "",
            },
            link,
            tracked: false,
        }
    }

    /// The request's own verdict on an open or click: machine, and why.
    pub fn request_verdict(&mut self, e: &EventView) -> Option<(bool, &'static str)> {
        self.classifier.machine(e)
    }

    /// Folds one event in, with its facts.
    pub fn add_with(&mut self, e: &EventView, facts: &Facts) {
        self.events += 1;
        let cell = CellRef::of(e);
        let with_links = cell.campaign.is_some();
        let new_link = match self.cells.get_mut(&cell) {
            Some((counters, _)) => counters.add(e, facts, with_links),
            None => {
                let mut counters = Counters::default();
                let new_link = counters.add(e, facts, with_links);
                let keys = cell.rollup_keys();
                for key in &keys {
                    self.items.entry(key.clone()).or_default();
                }
                self.cells.insert(cell.to_owned(), (counters, keys));
                new_link
            }
        };
        if let (true, Some((id, _))) = (new_link, &facts.link) {
            let (_, keys) = self.cells.get(&cell).expect("added above");
            for key in keys
                .iter()
                .filter(|k| matches!(k.scope, Scope::Campaign(_)))
            {
                if let Some(links) = self.items.get_mut(key) {
                    if links.insert(id.clone()) {
                        self.link_items += 1;
                    }
                }
            }
        }
        self.add_unique(e, facts);
    }

    /// What adding `e` would add: rollup items, link items and directory entries.
    pub fn growth(&self, e: &EventView, facts: &Facts) -> Growth {
        let cell = CellRef::of(e);
        let cell_counters = self.cells.get(&cell);
        let mut growth = Growth::default();
        if cell_counters.is_none() {
            for key in cell.rollup_keys() {
                if !self.items.contains_key(&key) {
                    growth.items += 1;
                    // A campaign's channel item is listed under its campaign's entry.
                    if key.grain == Grain::Day
                        && !matches!(key.scope, Scope::CampaignChannel { .. })
                    {
                        growth.directory += 1;
                    }
                }
            }
        }
        if let Some((id, _)) = &facts.link {
            let known = cell_counters.is_some_and(|(c, _)| c.links.contains_key(id));
            if !known && cell.campaign.is_some() {
                growth.items += cell
                    .campaign_keys()
                    .iter()
                    .filter(|k| !self.items.get(*k).is_some_and(|links| links.contains(id)))
                    .count();
            }
        }
        growth
    }

    /// Distinct items the batch touches: rollup items and link items.
    pub fn item_count(&self) -> usize {
        self.items.len() + self.link_items
    }

    /// The rollup items the batch touches.
    pub fn item_keys(&self) -> impl Iterator<Item = &RollupKey> {
        self.items.keys()
    }

    /// Every rollup item with what the batch adds to it: the cells added up per scope,
    /// hour and day. Links are kept on campaign items only.
    pub fn rollups(&self) -> hashbrown::HashMap<RollupKey, Counters> {
        let mut out: hashbrown::HashMap<RollupKey, Counters> =
            hashbrown::HashMap::with_capacity(self.items.len());
        for (counters, keys) in self.cells.values() {
            for key in keys {
                let with_links = matches!(key.scope, Scope::Campaign(_));
                out.entry(key.clone())
                    .or_default()
                    .merge_counts(counters, with_links);
            }
        }
        out
    }

    fn bucket_of(fingerprint: &[u8; 12]) -> u32 {
        u32::from_le_bytes(fingerprint[..4].try_into().expect("4 bytes")) % Self::UNIQUE_BUCKETS
    }

    /// Moves one counted open or click of a trail between the human and machine
    /// columns of the items it was counted in (hour and day of each scope), and between
    /// the reason counters of its old and new verdict.
    pub fn reclassify(&mut self, tenant: &str, m: &crate::verdict::trail::Moved) {
        use crate::verdict::{machine_reason, trail::HitKind};
        let hit = &m.hit;
        let delta = match (m.from_machine, m.to_machine) {
            (false, true) => 1,
            (true, false) => -1,
            _ => 0,
        };
        for key in Self::hit_keys(tenant, hit) {
            let moved = self.reclassified.entry(key.clone()).or_default();
            let reasons = match hit.kind {
                HitKind::Open => &mut moved.open_reasons,
                HitKind::Click => &mut moved.click_reasons,
            };
            if m.from_machine {
                *reasons.entry(machine_reason(&m.from_reason)).or_default() -= 1;
            }
            if m.to_machine {
                *reasons.entry(machine_reason(&hit.reason)).or_default() += 1;
            }
            if delta == 0 {
                self.items.entry(key).or_default();
                continue;
            }
            match hit.kind {
                HitKind::Open => moved.opens += delta,
                HitKind::Click => {
                    moved.clicks += delta;
                    if let (Scope::Campaign(_), Some(link)) = (&key.scope, &hit.link) {
                        *moved.links.entry(link.clone()).or_default() += delta;
                        if self
                            .items
                            .entry(key.clone())
                            .or_default()
                            .insert(link.clone())
                        {
                            self.link_items += 1;
                        }
                    }
                }
            }
            self.items.entry(key).or_default();
        }
    }

    /// Rollup items a reclassification of `hit` would add to the run.
    pub fn reclassify_growth(
        &self,
        tenant: &str,
        hit: &crate::verdict::trail::Hit,
    ) -> Vec<RollupKey> {
        Self::hit_keys(tenant, hit)
            .into_iter()
            .filter(|k| !self.items.contains_key(k))
            .collect()
    }

    /// Link items a reclassification of `hit` would add to the run: its link's hour and
    /// day items, where the run does not hold them yet.
    pub fn reclassify_link_growth(&self, tenant: &str, hit: &crate::verdict::trail::Hit) -> usize {
        let Some(link) = &hit.link else { return 0 };
        Self::hit_keys(tenant, hit)
            .iter()
            .filter(|k| matches!(k.scope, Scope::Campaign(_)))
            .filter(|k| !self.items.get(*k).is_some_and(|links| links.contains(link)))
            .count()
    }

    fn hit_keys(tenant: &str, hit: &crate::verdict::trail::Hit) -> Vec<RollupKey> {
        CellRef {
            tenant,
            campaign: hit.campaign.as_deref(),
            channel: hit.channel.as_deref(),
            provider: hit.provider.as_deref(),
            hour: hit.at_ms.div_euclid(3_600_000),
        }
        .rollup_keys()
    }

    /// The moves of late verdicts, per rollup item.
    pub fn reclassified(&self) -> impl Iterator<Item = (&RollupKey, &Reclassified)> {
        self.reclassified.iter()
    }

    fn add_unique(&mut self, e: &EventView, facts: &Facts) {
        if facts.tracked {
            return;
        }
        let (Some(campaign), Some(recipient)) =
            (e.campaign_id.as_deref(), e.recipient_id.as_deref())
        else {
            return;
        };
        let kind = match e.kind {
            EventType::Opened if !facts.machine => UniqueKind::Opens,
            EventType::Clicked if !facts.machine => UniqueKind::Clicks,
            _ => return,
        };
        let fingerprint = fingerprint_bytes(&e.tenant_id, recipient);
        let bucket = Self::bucket_of(&fingerprint);
        let key = UniqueRef {
            tenant: &e.tenant_id,
            campaign,
            kind,
            bucket,
        };
        if !self.uniques.contains_key(&key) {
            self.uniques
                .insert(UniqueKey::from(&key), hashbrown::HashSet::new());
        }
        let set = self.uniques.get_mut(&key).expect("inserted above");
        set.insert(Member {
            link: [0; 16],
            fingerprint,
        });
        if let (UniqueKind::Clicks, Some((id, _))) = (kind, &facts.link) {
            if let Ok(link) = id.as_bytes().try_into() {
                set.insert(Member { link, fingerprint });
            }
        }
    }

    /// The unique-set items the batch adds to, with their members in stored form:
    /// recipient fingerprints, and `{link id}:{fingerprint}` for clicks on each link.
    pub fn unique_sets(&self) -> Vec<(UniqueKey, BTreeSet<String>)> {
        self.uniques
            .iter()
            .map(|(k, members)| (k.clone(), members.iter().map(Member::text).collect()))
            .collect()
    }
}

/// Unique counts read back from the members of every item of a set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UniqueCounts {
    pub recipients: u64,
    /// Link id → unique clickers.
    pub per_link: BTreeMap<String, u64>,
}

/// Counts the distinct members of a unique set (all its items together).
pub fn count_unique<'a>(members: impl IntoIterator<Item = &'a str>) -> UniqueCounts {
    let mut recipients = BTreeSet::new();
    let mut per_link: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for m in members {
        match m.split_once(':') {
            Some((link, fp)) => {
                per_link.entry(link.to_string()).or_default().insert(fp);
            }
            None => {
                recipients.insert(m);
            }
        }
    }
    UniqueCounts {
        recipients: recipients.len() as u64,
        per_link: per_link
            .into_iter()
            .map(|(k, v)| (k, v.len() as u64))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_keys_split_at_the_first_colon() {
        assert_eq!(parse_channel("ch:email:ses"), Some(("email", "ses")));
        assert_eq!(parse_channel("ch:sms:acme:eu"), Some(("sms", "acme:eu")));
        assert_eq!(parse_channel("ch:email"), None);
        assert_eq!(parse_channel("c:spring"), None);
    }

    use crate::event::RequestContext;

    fn at(s: &str) -> DateTime<chrono::Utc> {
        s.parse().unwrap()
    }

    fn event(kind: EventType, t: &str) -> Event {
        let mut e = Event::new(
            crate::event::new_event_id(),
            "acme".into(),
            kind,
            at(t),
            at(t),
        );
        e.campaign_id = Some("spring".into());
        e.message_id = Some("m1".into());
        e.recipient_id = Some("r1".into());
        e.channel = Some("email".into());
        e.provider = Some("ses".into());
        e
    }

    #[test]
    fn one_event_touches_hour_and_day_of_each_scope() {
        let mut a = Aggregate::default();
        a.add(&event(EventType::Sent, "2026-11-23T10:15:00Z"));
        let rollups = a.rollups();
        assert_eq!(rollups.len(), 7);
        assert_eq!(a.item_count(), 7);
        let periods: BTreeSet<_> = rollups.keys().map(|k| k.period.as_str()).collect();
        assert_eq!(
            periods,
            BTreeSet::from(["H#2026-11-23T10", "D#2026-11-23", "D#2026-11-23#email:ses"])
        );
        let pks: BTreeSet<_> = rollups.keys().map(|k| k.partition_key()).collect();
        assert_eq!(
            pks,
            BTreeSet::from([
                "R#acme#D#all".to_string(),
                "R#acme#D#c:spring".into(),
                "R#acme#D#cc:spring".into(),
                "R#acme#D#ch:email:ses".into(),
                "R#acme#H#all".into(),
                "R#acme#H#c:spring".into(),
                "R#acme#H#ch:email:ses".into(),
            ])
        );
    }

    #[test]
    fn a_batch_collapses_into_one_counter_per_item() {
        let mut a = Aggregate::default();
        for _ in 0..1000 {
            a.add(&event(EventType::Delivered, "2026-11-23T10:15:00Z"));
        }
        let rollups = a.rollups();
        assert_eq!(rollups.len(), 7);
        assert!(rollups.values().all(|c| c.delivered == 1000));
    }

    #[test]
    fn uniques_count_a_recipient_once_however_often() {
        let mut a = Aggregate::default();
        for r in ["r1", "r1", "r2", "r1"] {
            let mut e = event(EventType::Opened, "2026-11-23T10:15:00Z");
            e.recipient_id = Some(r.into());
            a.add(&e);
        }
        let sets = a.unique_sets();
        let members: Vec<&str> = sets
            .iter()
            .flat_map(|(_, m)| m)
            .map(String::as_str)
            .collect();
        assert_eq!(count_unique(members).recipients, 2);
        let opens: u64 = a
            .rollups()
            .iter()
            .filter(|(k, _)| k.scope == Scope::Tenant && k.grain == Grain::Day)
            .map(|(_, c)| c.opens_human)
            .sum();
        assert_eq!(opens, 4, "totals still count every open");
    }

    #[test]
    fn clicks_are_counted_per_link_and_machines_kept_apart() {
        let mut a = Aggregate::default();
        let mut c1 = event(EventType::Clicked, "2026-11-23T10:15:00Z");
        c1.link_url = Some("https://x.example/a".into());
        let mut c2 = c1.clone();
        c2.recipient_id = Some("r2".into());
        let mut bot = c1.clone();
        bot.context = RequestContext {
            device_class: Some(crate::event::DeviceClass::Bot),
            ..Default::default()
        };
        let mut proxy = event(EventType::Opened, "2026-11-23T10:15:00Z");
        proxy.context = RequestContext {
            user_agent: Some("Mozilla/5.0".into()),
            ..Default::default()
        };
        for e in [&c1, &c2, &bot, &proxy] {
            a.add(e);
        }
        let rollups = a.rollups();
        let campaign_day = rollups
            .iter()
            .find(|(k, _)| k.scope == Scope::Campaign("spring".into()) && k.grain == Grain::Day)
            .unwrap()
            .1;
        assert_eq!((campaign_day.clicks_human, campaign_day.clicks_bot), (2, 1));
        assert_eq!(
            (campaign_day.opens_human, campaign_day.opens_machine),
            (0, 1)
        );
        let link = &campaign_day.links[&link_id("https://x.example/a")];
        assert_eq!((link.human, link.bot), (2, 1));
        let sets = a.unique_sets();
        let clicks: Vec<&str> = sets
            .iter()
            .filter(|(k, _)| k.kind == UniqueKind::Clicks)
            .flat_map(|(_, v)| v.iter().map(String::as_str))
            .collect();
        let u = count_unique(clicks);
        assert_eq!(u.recipients, 2);
        assert_eq!(u.per_link[&link_id("https://x.example/a")], 2);
        assert!(
            sets.iter().all(|(k, _)| k.kind == UniqueKind::Clicks),
            "a machine open is not a unique open"
        );
    }

    #[test]
    fn cells_add_up_to_hour_and_day_items_of_every_scope() {
        let mut a = Aggregate::default();
        let mut morning = event(EventType::Clicked, "2026-11-23T09:59:59Z");
        morning.link_url = Some("https://x.example/a".into());
        let mut evening = morning.clone();
        evening.event_time = at("2026-11-23T18:00:00Z");
        evening.channel = Some("sms".into());
        evening.provider = None;
        evening.link_url = Some("https://x.example/b".into());
        let mut next_day = morning.clone();
        next_day.event_time = at("2026-11-24T00:00:00Z");
        for e in [&morning, &evening, &next_day, &morning] {
            a.add(e);
        }
        let rollups = a.rollups();
        let get = |scope: Scope, period: &str| {
            rollups
                .iter()
                .find(|(k, _)| k.scope == scope && k.period == period)
                .map(|(_, c)| c.clone())
                .unwrap_or_default()
        };
        let spring = || Scope::Campaign("spring".into());
        assert_eq!(get(Scope::Tenant, "D#2026-11-23").clicks_human, 3);
        assert_eq!(get(Scope::Tenant, "D#2026-11-24").clicks_human, 1);
        assert_eq!(get(Scope::Tenant, "H#2026-11-23T09").clicks_human, 2);
        assert_eq!(get(spring(), "D#2026-11-23").links.len(), 2);
        assert_eq!(get(spring(), "H#2026-11-23T18").links.len(), 1);
        let email = Scope::Channel("email".into(), "ses".into());
        let sms = Scope::Channel("sms".into(), "-".into());
        assert_eq!(get(email, "D#2026-11-23").clicks_human, 2);
        assert_eq!(get(sms, "D#2026-11-23").clicks_human, 1);
        assert!(
            rollups
                .iter()
                .all(|(k, c)| matches!(k.scope, Scope::Campaign(_)) || c.links.is_empty()),
            "only campaign items carry links"
        );
        // Link items: a in hours 09 and 00 and both days, b in hour 18 and the 23rd.
        assert_eq!(a.item_count(), rollups.len() + 6);
        // Tenant and campaign: 3 hours + 2 days each; email: 2 hours + 2 days; sms: 1 + 1;
        // the campaign's days by channel: email on both days, sms on the first.
        assert_eq!(rollups.len(), 5 + 5 + 4 + 2 + 3, "{rollups:#?}");
        let by_channel = |channel: &str, provider: &str, day: &str| {
            let scope = Scope::CampaignChannel {
                campaign: "spring".into(),
                channel: channel.into(),
                provider: provider.into(),
            };
            get(scope, &campaign_channel_sort_key(day, channel, provider)).clicks_human
        };
        assert_eq!(by_channel("email", "ses", "D#2026-11-23"), 2);
        assert_eq!(by_channel("sms", "-", "D#2026-11-23"), 1);
        assert_eq!(by_channel("email", "ses", "D#2026-11-24"), 1);
        assert_eq!(
            parse_campaign_channel("D#2026-11-23#sms:-"),
            Some((
                chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
                "sms",
                "-"
            ))
        );
        assert_eq!(parse_campaign_channel("D#2026-11-23"), None);
        // A day's channel items sort between the day and the next.
        let (day, next) = ("D#2026-11-23", "D#2026-11-24");
        let sk = campaign_channel_sort_key(day, "zzz", "p:q");
        assert!(day < sk.as_str() && sk < campaign_channel_day_end(day) && sk.as_str() < next);
    }

    #[test]
    fn growth_tells_what_an_event_would_add() {
        let mut a = Aggregate::default();
        let mut c = event(EventType::Clicked, "2026-11-23T10:15:00Z");
        c.link_url = Some("https://x.example/a".into());
        let mut later = c.clone();
        later.event_time = at("2026-11-23T11:00:00Z");
        let mut other_link = later.clone();
        other_link.link_url = Some("https://x.example/b".into());
        let (c, later, other_link) = (
            EventView::from(&c),
            EventView::from(&later),
            EventView::from(&other_link),
        );
        let f = a.facts(&c);
        let g = a.growth(&c, &f);
        // Six rollup items (tenant, campaign, channel x hour, day), the campaign's day
        // of the channel (listed under the campaign) and the link's two.
        assert_eq!((g.items, g.directory), (9, 3));
        a.add_with(&c, &f);
        assert_eq!(a.item_count(), 9);
        assert_eq!(a.growth(&c, &f), Growth::default(), "nothing new");
        let f = a.facts(&later);
        let g = a.growth(&later, &f);
        // A new hour: three rollup items and the link's hour item; its day item is held.
        assert_eq!((g.items, g.directory), (4, 0));
        a.add_with(&later, &f);
        let f = a.facts(&other_link);
        assert_eq!(
            a.growth(&other_link, &f).items,
            2,
            "another link of a held hour: its own hour and day items, however many links"
        );
    }

    #[test]
    fn fields_round_trip_through_their_stored_names() {
        let mut a = Aggregate::default();
        let mut d = event(EventType::Delivered, "2026-11-23T10:15:00Z");
        d.duration_ms = Some(1500);
        d.cost = Some(0.0001);
        let mut c = event(EventType::Clicked, "2026-11-23T10:15:00Z");
        c.link_url = Some("https://x.example/a".into());
        let mut v = event(EventType::Conversion, "2026-11-23T10:15:00Z");
        v.value = Some(19.99);
        for e in [&d, &c, &v] {
            a.add(e);
        }
        let original = a
            .rollups()
            .values()
            .find(|c| !c.links.is_empty())
            .unwrap()
            .clone();
        let mut back = Counters::default();
        for (name, value) in original.numeric_fields() {
            assert!(
                !name.starts_with("lc_"),
                "links are not a rollup item's fields"
            );
            back.set_field(&name, value);
        }
        for (id, l) in &original.links {
            back.add_link(id, l.human, l.bot, Some(&l.url));
        }
        assert_eq!(back, original);
        assert_eq!(original.cost_micros, 100);
        assert_eq!(original.conversion_value_micros, 19_990_000);
    }

    #[test]
    fn latency_percentiles_are_within_a_bucket() {
        let mut c = Counters::default();
        for ms in 1..=1000 {
            *c.latency_hist.entry(latency_bucket(ms)).or_default() += 1;
        }
        let p50 = c.latency_percentile(50.0).unwrap();
        let p99 = c.latency_percentile(99.0).unwrap();
        assert!((500..=600).contains(&p50), "{p50}");
        assert!((990..=1200).contains(&p99), "{p99}");
        assert!(LATENCY_BOUNDS_MS.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(LATENCY_BOUNDS_MS[0], 1);
    }
}
