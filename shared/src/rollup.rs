//! Rollups: what the stream's events add up to, per hour and per day (UTC), for the
//! tenant, each campaign (with its links), and each channel/provider.
//!
//! A batch of events is folded in memory into one [`Counters`] per rollup item, so all
//! events of a batch that touch one item become one write. Counts that must be exact
//! per recipient (unique opens and clicks) are kept as sets of recipient fingerprints
//! ([`UniqueKey`]), which can be added to idempotently and are counted when read.

use crate::classify::{classify_click, classify_open, ClickClass, OpenClass};
use crate::event::{BounceType, Event, EventType};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Time grain of a rollup item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grain {
    Hour,
    Day,
}

impl Grain {
    /// Sort-key prefix and the bucket label of `t` (`H#2026-11-23T10`, `D#2026-11-23`).
    pub fn sort_key(self, t: DateTime<Utc>) -> String {
        match self {
            Grain::Hour => format!("H#{}", t.format("%Y-%m-%dT%H")),
            Grain::Day => format!("D#{}", t.format("%Y-%m-%d")),
        }
    }
}

/// What a rollup item is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Tenant,
    Campaign(String),
    /// Channel and provider (`-` when the event named none).
    Channel(String, String),
}

/// One rollup item: partition key `R#{tenant}#{scope}`, sort key per [`Grain`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RollupKey {
    pub tenant: String,
    pub scope: Scope,
    pub grain: Grain,
    /// `H#...` or `D#...`
    pub period: String,
}

impl RollupKey {
    pub fn partition_key(&self) -> String {
        rollup_partition(&self.tenant, &self.scope)
    }
}

/// The partition key of a scope's rollups: `R#acme#all`, `R#acme#c:spring`, `R#acme#ch:email:ses`.
pub fn rollup_partition(tenant: &str, scope: &Scope) -> String {
    match scope {
        Scope::Tenant => format!("R#{tenant}#all"),
        Scope::Campaign(c) => format!("R#{tenant}#c:{c}"),
        Scope::Channel(ch, p) => format!("R#{tenant}#ch:{ch}:{p}"),
    }
}

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

/// Clicks on one link of a campaign.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkCounters {
    pub url: String,
    pub human: u64,
    pub bot: u64,
}

/// Everything one rollup item counts. Money is kept in micro-units so sums are exact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub sent: u64,
    pub delivered: u64,
    pub bounced_hard: u64,
    pub bounced_soft: u64,
    pub complained: u64,
    pub failed: u64,
    pub unsubscribed: u64,
    pub opens_human: u64,
    pub opens_machine: u64,
    pub clicks_human: u64,
    pub clicks_bot: u64,
    pub conversions: u64,
    pub conversion_value_micros: i64,
    pub cost_micros: i64,
    pub custom: u64,
    pub latency_count: u64,
    pub latency_sum_ms: u64,
    /// Histogram bucket index → count (only non-zero buckets).
    pub latency_hist: BTreeMap<usize, u64>,
    /// Link id → clicks (campaign scope only).
    pub links: BTreeMap<String, LinkCounters>,
}

/// Money in micro-units, rounded to the nearest.
pub fn to_micros(amount: f64) -> i64 {
    (amount * 1_000_000.0).round() as i64
}

/// A short, stable id for a link URL (64 bits of SHA-256, hex).
pub fn link_id(url: &str) -> String {
    let digest = Sha256::digest(url.as_bytes());
    crate::sink::hex(&digest[..8])
}

/// A recipient's fingerprint in the unique sets: 96 bits of SHA-256 of tenant and
/// recipient id. Two recipients share one with probability about n²/2^97 (below
/// 10^-15 for ten million recipients), so counts read from the sets are exact in
/// practice, and the sets stay small whatever the ids look like.
pub fn fingerprint(tenant: &str, recipient: &str) -> String {
    let mut h = Sha256::new();
    h.update(tenant.as_bytes());
    h.update([0u8]);
    h.update(recipient.as_bytes());
    URL_SAFE_NO_PAD.encode(&h.finalize()[..12])
}

impl Counters {
    /// Folds one event in; `facts` are worked out once per event, not per item.
    fn add(&mut self, e: &Event, facts: &Facts, with_links: bool) {
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
            EventType::Unsubscribed => self.unsubscribed += 1,
            EventType::Opened if facts.machine => self.opens_machine += 1,
            EventType::Opened => self.opens_human += 1,
            EventType::Clicked => {
                let bot = facts.machine;
                if bot {
                    self.clicks_bot += 1;
                } else {
                    self.clicks_human += 1;
                }
                if let (true, Some((id, url))) = (with_links, &facts.link) {
                    let link = self
                        .links
                        .entry(id.clone())
                        .or_insert_with(|| LinkCounters {
                            url: url.to_string(),
                            ..Default::default()
                        });
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
    }

    /// Adds another item's counts (reading several items back as one).
    pub fn merge(&mut self, o: &Counters) {
        self.sent += o.sent;
        self.delivered += o.delivered;
        self.bounced_hard += o.bounced_hard;
        self.bounced_soft += o.bounced_soft;
        self.complained += o.complained;
        self.failed += o.failed;
        self.unsubscribed += o.unsubscribed;
        self.opens_human += o.opens_human;
        self.opens_machine += o.opens_machine;
        self.clicks_human += o.clicks_human;
        self.clicks_bot += o.clicks_bot;
        self.conversions += o.conversions;
        self.conversion_value_micros += o.conversion_value_micros;
        self.cost_micros += o.cost_micros;
        self.custom += o.custom;
        self.latency_count += o.latency_count;
        self.latency_sum_ms += o.latency_sum_ms;
        for (b, n) in &o.latency_hist {
            *self.latency_hist.entry(*b).or_default() += n;
        }
        for (id, l) in &o.links {
            let mine = self
                .links
                .entry(id.clone())
                .or_insert_with(|| LinkCounters {
                    url: l.url.clone(),
                    ..Default::default()
                });
            mine.human += l.human;
            mine.bot += l.bot;
        }
    }

    /// Latency percentile (0-100) from the histogram: the upper bound of its bucket.
    pub fn latency_percentile(&self, p: f64) -> Option<u64> {
        let total: u64 = self.latency_hist.values().sum();
        if total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, n) in &self.latency_hist {
            seen += n;
            if seen >= rank {
                return Some(LATENCY_BOUNDS_MS[*b]);
            }
        }
        None
    }

    /// The numeric fields by their stored attribute name (non-zero only), in one
    /// place so the writer and the reader of the rollup table agree.
    pub fn numeric_fields(&self) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = [
            ("sent", self.sent as i64),
            ("delivered", self.delivered as i64),
            ("bounced_hard", self.bounced_hard as i64),
            ("bounced_soft", self.bounced_soft as i64),
            ("complained", self.complained as i64),
            ("failed", self.failed as i64),
            ("unsubscribed", self.unsubscribed as i64),
            ("opens_human", self.opens_human as i64),
            ("opens_machine", self.opens_machine as i64),
            ("clicks_human", self.clicks_human as i64),
            ("clicks_bot", self.clicks_bot as i64),
            ("conversions", self.conversions as i64),
            ("conversion_value_micros", self.conversion_value_micros),
            ("cost_micros", self.cost_micros),
            ("custom", self.custom as i64),
            ("latency_count", self.latency_count as i64),
            ("latency_sum_ms", self.latency_sum_ms as i64),
        ]
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        out.extend(
            self.latency_hist
                .iter()
                .map(|(b, n)| (format!("lat_{b}"), *n as i64)),
        );
        for (id, l) in &self.links {
            if l.human > 0 {
                out.push((format!("lc_{id}_h"), l.human as i64));
            }
            if l.bot > 0 {
                out.push((format!("lc_{id}_b"), l.bot as i64));
            }
        }
        out
    }

    /// Sets a numeric field from its stored name; unknown names are ignored so old
    /// readers survive new counters.
    pub fn set_field(&mut self, name: &str, v: i64) {
        let u = v.max(0) as u64;
        match name {
            "sent" => self.sent = u,
            "delivered" => self.delivered = u,
            "bounced_hard" => self.bounced_hard = u,
            "bounced_soft" => self.bounced_soft = u,
            "complained" => self.complained = u,
            "failed" => self.failed = u,
            "unsubscribed" => self.unsubscribed = u,
            "opens_human" => self.opens_human = u,
            "opens_machine" => self.opens_machine = u,
            "clicks_human" => self.clicks_human = u,
            "clicks_bot" => self.clicks_bot = u,
            "conversions" => self.conversions = u,
            "conversion_value_micros" => self.conversion_value_micros = v,
            "cost_micros" => self.cost_micros = v,
            "custom" => self.custom = u,
            "latency_count" => self.latency_count = u,
            "latency_sum_ms" => self.latency_sum_ms = u,
            other => {
                if let Some(b) = other
                    .strip_prefix("lat_")
                    .and_then(|b| b.parse::<usize>().ok())
                {
                    if b < LATENCY_BOUNDS_MS.len() {
                        self.latency_hist.insert(b, u);
                    }
                } else if let Some(rest) = other.strip_prefix("lc_") {
                    if let Some((id, kind)) = rest.rsplit_once('_') {
                        let link = self.links.entry(id.to_string()).or_default();
                        match kind {
                            "h" => link.human = u,
                            "b" => link.bot = u,
                            _ => {}
                        }
                    }
                }
            }
        }
    }

    /// URLs of the links, by stored attribute name (`lu_{id}`).
    pub fn link_urls(&self) -> Vec<(String, String)> {
        self.links
            .iter()
            .map(|(id, l)| (format!("lu_{id}"), l.url.clone()))
            .collect()
    }
}

/// Which unique set: human opens or human clicks of one campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UniqueKind {
    Opens,
    Clicks,
}

/// One unique-set item: partition `U#{tenant}#{campaign}#{kind}`, sort key `B#{bucket}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UniqueKey {
    pub tenant: String,
    pub campaign: String,
    pub kind: UniqueKind,
    pub bucket: u32,
}

impl UniqueKey {
    pub fn partition_key(&self) -> String {
        unique_partition(&self.tenant, &self.campaign, self.kind)
    }

    pub fn sort_key(&self) -> String {
        format!("B#{:02}", self.bucket)
    }
}

pub fn unique_partition(tenant: &str, campaign: &str, kind: UniqueKind) -> String {
    let kind = match kind {
        UniqueKind::Opens => "opens",
        UniqueKind::Clicks => "clicks",
    };
    format!("U#{tenant}#{campaign}#{kind}")
}

/// What an event is, worked out once: machine open or bot click, and its link.
pub struct Facts<'e> {
    pub machine: bool,
    pub link: Option<(String, &'e str)>,
}

impl<'e> Facts<'e> {
    pub fn of(e: &'e Event) -> Self {
        let machine = match e.kind {
            EventType::Opened => classify_open(e).class == OpenClass::Machine,
            EventType::Clicked => classify_click(e).class == ClickClass::SuspectedBot,
            _ => false,
        };
        let link = match (&e.kind, &e.link_url) {
            (EventType::Clicked, Some(url)) => Some((link_id(url), url.as_str())),
            _ => None,
        };
        Facts { machine, link }
    }
}

/// Sort keys of an event's hour and day, without going through a date formatter for
/// every event (events of a batch mostly share an hour).
#[derive(Debug, Default)]
struct PeriodCache {
    hour: i64,
    keys: Option<(String, String)>,
}

impl PeriodCache {
    fn keys(&mut self, t: DateTime<Utc>) -> (String, String) {
        let hour = t.timestamp().div_euclid(3600);
        if self.hour != hour || self.keys.is_none() {
            self.hour = hour;
            self.keys = Some((Grain::Hour.sort_key(t), Grain::Day.sort_key(t)));
        }
        self.keys.clone().expect("set above")
    }
}

/// A batch folded into rollup items and unique-set additions.
#[derive(Debug, Default)]
pub struct Aggregate {
    pub rollups: HashMap<RollupKey, Counters>,
    /// Members to add: recipient fingerprints, and `{link id}:{fingerprint}` for clicks.
    pub uniques: HashMap<UniqueKey, BTreeSet<String>>,
    pub events: usize,
    periods: PeriodCache,
}

impl Aggregate {
    /// Spreads each unique set over this many items, so each stays well under
    /// DynamoDB's 400 KB item limit (16 x ~20,000 members). Readers union every item
    /// of a set, so changing it never double counts.
    pub const UNIQUE_BUCKETS: u32 = 16;

    /// The rollup items an event touches: hour and day of the tenant, its campaign
    /// and its channel/provider.
    pub fn keys_of(e: &Event) -> Vec<RollupKey> {
        Self::keys_with(e, PeriodCache::default().keys(e.event_time))
    }

    /// [`Aggregate::keys_of`], reusing this aggregate's cached period keys.
    pub fn keys_for(&mut self, e: &Event) -> Vec<RollupKey> {
        let periods = self.periods.keys(e.event_time);
        Self::keys_with(e, periods)
    }

    fn keys_with(e: &Event, (hour, day): (String, String)) -> Vec<RollupKey> {
        let mut scopes = vec![Scope::Tenant];
        if let Some(c) = &e.campaign_id {
            scopes.push(Scope::Campaign(c.clone()));
        }
        if let Some(ch) = &e.channel {
            scopes.push(Scope::Channel(
                ch.clone(),
                e.provider.clone().unwrap_or_else(|| "-".into()),
            ));
        }
        let mut keys = Vec::with_capacity(scopes.len() * 2);
        for scope in scopes {
            for (grain, period) in [(Grain::Hour, &hour), (Grain::Day, &day)] {
                keys.push(RollupKey {
                    tenant: e.tenant_id.clone(),
                    scope: scope.clone(),
                    grain,
                    period: period.clone(),
                });
            }
        }
        keys
    }

    pub fn add(&mut self, e: &Event) {
        self.events += 1;
        let facts = Facts::of(e);
        let periods = self.periods.keys(e.event_time);
        for key in Self::keys_with(e, periods) {
            let with_links = matches!(key.scope, Scope::Campaign(_));
            self.rollups
                .entry(key)
                .or_default()
                .add(e, &facts, with_links);
        }
        self.add_unique(e, &facts);
    }

    fn add_unique(&mut self, e: &Event, facts: &Facts) {
        let (Some(campaign), Some(recipient)) = (&e.campaign_id, &e.recipient_id) else {
            return;
        };
        let kind = match e.kind {
            EventType::Opened if classify_open(e).class == OpenClass::Human => UniqueKind::Opens,
            EventType::Clicked if classify_click(e).class == ClickClass::Human => {
                UniqueKind::Clicks
            }
            _ => return,
        };
        let fp = fingerprint(&e.tenant_id, recipient);
        let bucket = fp
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32))
            % Self::UNIQUE_BUCKETS;
        let set = self
            .uniques
            .entry(UniqueKey {
                tenant: e.tenant_id.clone(),
                campaign: campaign.clone(),
                kind,
                bucket,
            })
            .or_default();
        if let (UniqueKind::Clicks, Some((id, _))) = (kind, &facts.link) {
            set.insert(format!("{id}:{fp}"));
        }
        set.insert(fp);
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
    use crate::event::RequestContext;

    fn at(s: &str) -> DateTime<Utc> {
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
        assert_eq!(a.rollups.len(), 6);
        let periods: BTreeSet<_> = a.rollups.keys().map(|k| k.period.as_str()).collect();
        assert_eq!(periods, BTreeSet::from(["H#2026-11-23T10", "D#2026-11-23"]));
        let pks: BTreeSet<_> = a.rollups.keys().map(|k| k.partition_key()).collect();
        assert_eq!(
            pks,
            BTreeSet::from([
                "R#acme#all".to_string(),
                "R#acme#c:spring".into(),
                "R#acme#ch:email:ses".into()
            ])
        );
    }

    #[test]
    fn a_batch_collapses_into_one_counter_per_item() {
        let mut a = Aggregate::default();
        for _ in 0..1000 {
            a.add(&event(EventType::Delivered, "2026-11-23T10:15:00Z"));
        }
        assert_eq!(a.rollups.len(), 6);
        assert!(a.rollups.values().all(|c| c.delivered == 1000));
    }

    #[test]
    fn uniques_count_a_recipient_once_however_often() {
        let mut a = Aggregate::default();
        for r in ["r1", "r1", "r2", "r1"] {
            let mut e = event(EventType::Opened, "2026-11-23T10:15:00Z");
            e.recipient_id = Some(r.into());
            a.add(&e);
        }
        let members: Vec<&str> = a.uniques.values().flatten().map(String::as_str).collect();
        assert_eq!(count_unique(members).recipients, 2);
        let opens: u64 = a
            .rollups
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
        let campaign_day = a
            .rollups
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
        let clicks: Vec<&str> = a
            .uniques
            .iter()
            .filter(|(k, _)| k.kind == UniqueKind::Clicks)
            .flat_map(|(_, v)| v.iter().map(String::as_str))
            .collect();
        let u = count_unique(clicks);
        assert_eq!(u.recipients, 2);
        assert_eq!(u.per_link[&link_id("https://x.example/a")], 2);
        assert!(
            a.uniques.keys().all(|k| k.kind == UniqueKind::Clicks),
            "a machine open is not a unique open"
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
            .rollups
            .values()
            .find(|c| !c.links.is_empty())
            .unwrap()
            .clone();
        let mut back = Counters::default();
        for (name, value) in original.numeric_fields() {
            back.set_field(&name, value);
        }
        for (id, l) in &original.links {
            back.links.get_mut(id).unwrap().url = l.url.clone();
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
