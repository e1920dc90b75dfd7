//! What arrived in the last minutes: the dashboard's live view, read without touching
//! events and written at one extra write per tenant per batch.
//!
//! The aggregate notes every event it applies ([`Notes::note`]): a count per type and,
//! for opens, clicks, bounces and complaints, a feed entry with the verdict it got
//! ([`Notes::into_batch`], once the event's run committed). After
//! the batch, the adapter makes one write per tenant ([`LiveStore::record`]) to that
//! tenant's item of the current minute: it adds the counts and puts the batch's newest
//! [`FEED_PER_BATCH`] entries in one of [`FEED_SLOTS`] slots. The stats API reads the
//! last [`LIVE_MINUTES`] minute items of the tenant by key (one BatchGetItem; the minute
//! after the current one too, for the aggregate's clock running ahead) and merges them
//! ([`Live::merge`]). Minute items expire by TTL after an hour.
//!
//! Why this is enough, and what it is not:
//! - The counts are those of events the aggregate applied, noted only when their run
//!   committed. A batch redelivered after that finds them behind the checkpoint and does
//!   not note them again, so nothing counts twice. A batch that fails after some runs
//!   committed loses those runs' notes (the view undercounts for that minute); the
//!   rollups never do.
//! - The feed is a sample of the latest activity, not a log: a slot is chosen by the
//!   batch ([`slot_of`]), so a redelivered batch overwrites its own slot, and when more
//!   than [`FEED_SLOTS`] batches of one tenant land in one minute, later ones replace
//!   earlier ones. A minute item holds at most `FEED_SLOTS × FEED_PER_BATCH` entries,
//!   well under DynamoDB's item size.
//! - Minutes are the aggregate's (when the batch was applied), which trail arrival by
//!   the stream's delay: seconds.

use crate::event::{EventType, EventView};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;

/// Minutes the live view covers (the current one and those before it).
pub const LIVE_MINUTES: i64 = 10;
/// Newest feed entries a batch keeps per tenant.
pub const FEED_PER_BATCH: usize = 20;
/// Feed slots of a minute item.
pub const FEED_SLOTS: u32 = 8;
/// Entries the API shows.
pub const FEED_SHOWN: usize = 50;
/// The type every custom event is counted under, so a tenant's custom types cannot
/// grow the item.
pub const CUSTOM: &str = "custom";

/// One event in the feed: no address, only the opaque recipient id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEntry {
    /// RFC 3339 with milliseconds: when Beacon received it.
    pub time: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_id: Option<String>,
    /// `human` or `machine` for opens and clicks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One tenant's share of a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantBatch {
    /// Type (wire name, or [`CUSTOM`]) → events.
    pub counts: BTreeMap<String, u64>,
    /// Newest first, at most [`FEED_PER_BATCH`].
    pub feed: Vec<FeedEntry>,
}

/// What a batch adds to the live view, by tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub tenants: BTreeMap<String, TenantBatch>,
}

fn in_feed(kind: &EventType) -> bool {
    matches!(
        kind,
        EventType::Opened | EventType::Clicked | EventType::Bounced | EventType::Complained
    )
}

impl Batch {
    /// Adds another batch's notes (a later run of the same batch).
    pub fn absorb(&mut self, other: &Batch) {
        for (tenant, b) in &other.tenants {
            let t = self.tenants.entry(tenant.clone()).or_default();
            for (k, n) in &b.counts {
                *t.counts.entry(k.clone()).or_default() += n;
            }
            for e in &b.feed {
                push_newest(&mut t.feed, e.clone(), FEED_PER_BATCH);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }
}

/// A run's notes as the aggregate takes its events: counts by type and the positions of
/// the latest feed events, with no allocation per event (this runs for every event the
/// aggregate applies). [`Notes::into_batch`] makes the entries once the run committed.
#[derive(Debug, Default)]
pub struct Notes {
    tenants: std::collections::HashMap<String, TenantNotes>,
}

/// The built-in types, then [`CUSTOM`].
const KINDS: usize = EventType::BUILT_IN.len() + 1;

#[derive(Debug, Default)]
struct TenantNotes {
    counts: [u64; KINDS],
    /// (position of the event in the run's records, its verdict), latest last.
    feed: std::collections::VecDeque<(usize, Option<(bool, &'static str)>)>,
}

fn kind_index(kind: &EventType) -> usize {
    match kind {
        EventType::Custom(_) => KINDS - 1,
        k => EventType::BUILT_IN
            .iter()
            .position(|b| b == k)
            .unwrap_or(KINDS - 1),
    }
}

impl Notes {
    /// Notes the event at `index` of the run's records, applied with `verdict` (opens
    /// and clicks: machine or not, and why).
    pub fn note(&mut self, e: &EventView, index: usize, verdict: Option<(bool, &'static str)>) {
        let t = match self.tenants.get_mut(e.tenant_id.as_ref()) {
            Some(t) => t,
            None => self.tenants.entry(e.tenant_id.to_string()).or_default(),
        };
        t.counts[kind_index(&e.kind)] += 1;
        if in_feed(&e.kind) {
            if t.feed.len() == FEED_PER_BATCH {
                t.feed.pop_front();
            }
            t.feed.push_back((index, verdict));
        }
    }

    /// The notes as a [`Batch`], reading the feed events back by position.
    pub fn into_batch<'a>(self, event_at: impl Fn(usize) -> Option<&'a EventView<'a>>) -> Batch {
        let mut batch = Batch::default();
        for (tenant, notes) in self.tenants {
            let mut b = TenantBatch::default();
            for (i, n) in notes.counts.iter().enumerate().filter(|(_, n)| **n > 0) {
                let name = EventType::BUILT_IN.get(i).map_or(CUSTOM, |k| k.as_str());
                b.counts.insert(name.to_string(), *n);
            }
            for (index, verdict) in notes.feed {
                if let Some(e) = event_at(index) {
                    push_newest(&mut b.feed, entry(e, verdict), FEED_PER_BATCH);
                }
            }
            batch.tenants.insert(tenant, b);
        }
        batch
    }
}

fn entry(e: &EventView, verdict: Option<(bool, &str)>) -> FeedEntry {
    FeedEntry {
        time: e
            .received_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        kind: e.kind.as_str().to_string(),
        campaign_id: e.campaign_id.as_deref().map(str::to_string),
        recipient_id: e.recipient_id.as_deref().map(str::to_string),
        verdict: verdict.map(|(m, _)| if m { "machine" } else { "human" }.to_string()),
        reason: verdict
            .map(|(_, r)| r.to_string())
            .filter(|r| !r.is_empty()),
    }
}

/// Keeps `feed` newest first and at most `cap` long.
fn push_newest(feed: &mut Vec<FeedEntry>, entry: FeedEntry, cap: usize) {
    let at = feed.partition_point(|e| e.time >= entry.time);
    if at < cap {
        feed.insert(at, entry);
        feed.truncate(cap);
    }
}

/// The feed slot of a batch, from its first record's sequence number: the same batch
/// always lands in the same slot.
pub fn slot_of(first_sequence: &str) -> u32 {
    first_sequence
        .bytes()
        .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619))
        % FEED_SLOTS
}

/// Minutes since the epoch.
pub fn minute_of(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp().div_euclid(60)
}

/// One stored minute of one tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Minute {
    pub minute: i64,
    pub counts: BTreeMap<String, u64>,
    /// Every slot's entries.
    pub feed: Vec<FeedEntry>,
}

/// `GET /v1/live`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Live {
    pub minutes: i64,
    /// RFC 3339: the start of the first minute covered.
    pub since: String,
    /// Type → events applied in those minutes.
    pub counts: BTreeMap<String, u64>,
    /// Newest first, at most [`FEED_SHOWN`].
    pub recent: Vec<FeedEntry>,
}

impl Live {
    /// The view of the minutes from `first_minute` on.
    pub fn merge(first_minute: i64, minutes: &[Minute]) -> Live {
        let mut counts = BTreeMap::new();
        let mut recent = Vec::new();
        for m in minutes.iter().filter(|m| m.minute >= first_minute) {
            for (k, n) in &m.counts {
                *counts.entry(k.clone()).or_default() += n;
            }
            for e in &m.feed {
                push_newest(&mut recent, e.clone(), FEED_SHOWN);
            }
        }
        Live {
            minutes: LIVE_MINUTES,
            since: chrono::DateTime::from_timestamp(first_minute * 60, 0)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            counts,
            recent,
        }
    }
}

crate::message_error!(
    /// The live store did not answer.
    LiveStoreError
);

/// Where the live view is kept.
pub trait LiveStore {
    /// One write per tenant of `batch`: its counts added to the tenant's item of
    /// `minute`, its feed put in `slot`.
    fn record(
        &self,
        batch: &Batch,
        minute: i64,
        slot: u32,
    ) -> impl Future<Output = Result<(), LiveStoreError>> + Send;
    /// The tenant's minute items from `first_minute` through `last_minute` (at most a
    /// hundred minutes: they are read by key).
    fn minutes(
        &self,
        tenant: &str,
        first_minute: i64,
        last_minute: i64,
    ) -> impl Future<Output = Result<Vec<Minute>, LiveStoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::stream::decode_view;

    fn event(tenant: &str, kind: &str, at_ms: i64, recipient: &str) -> Vec<u8> {
        let at = chrono::DateTime::from_timestamp_millis(at_ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        serde_json::to_vec(&serde_json::json!({
            "event_id": format!("e-{at_ms}-{recipient}"), "tenant_id": tenant, "type": kind,
            "event_time": at, "received_at": at, "campaign_id": "c1",
            "message_id": "m1", "recipient_id": recipient,
        }))
        .unwrap()
    }

    #[test]
    fn a_batch_counts_every_type_and_keeps_its_newest_feed() {
        let base = 1_800_000_000_000i64;
        let mut records: Vec<Vec<u8>> = (0..30)
            .map(|i| event("acme", "message.opened", base + i * 1000, &format!("r{i}")))
            .collect();
        for kind in ["message.sent", "custom.signup", "custom.other"] {
            records.push(event("globex", kind, base, "r"));
        }
        let views: Vec<EventView> = records.iter().map(|r| decode_view(r).unwrap()).collect();
        let mut notes = Notes::default();
        for (i, e) in views.iter().enumerate() {
            let verdict = (e.kind == EventType::Opened).then_some((i % 3 == 0, "apple_proxy"));
            notes.note(e, i, verdict);
        }
        let b = notes.into_batch(|i| views.get(i));
        let acme = &b.tenants["acme"];
        assert_eq!(acme.counts["message.opened"], 30);
        assert_eq!(acme.feed.len(), FEED_PER_BATCH);
        assert_eq!(acme.feed[0].recipient_id.as_deref(), Some("r29"));
        assert_eq!(acme.feed[0].verdict.as_deref(), Some("human"));
        assert_eq!(acme.feed[2].recipient_id.as_deref(), Some("r27"));
        assert_eq!(acme.feed[2].verdict.as_deref(), Some("machine"));
        assert_eq!(acme.feed[2].reason.as_deref(), Some("apple_proxy"));
        let globex = &b.tenants["globex"];
        assert_eq!(globex.counts["message.sent"], 1);
        assert_eq!(globex.counts[CUSTOM], 2);
        assert!(globex.feed.is_empty(), "sends are counted, not fed");

        let mut all = Batch::default();
        all.absorb(&b);
        all.absorb(&b);
        assert_eq!(all.tenants["acme"].counts["message.opened"], 60);
        assert_eq!(all.tenants["acme"].feed.len(), FEED_PER_BATCH);
    }

    #[test]
    fn the_view_merges_the_minutes_it_covers() {
        let entry = |t: &str| FeedEntry {
            time: t.into(),
            kind: "link.clicked".into(),
            campaign_id: None,
            recipient_id: None,
            verdict: Some("human".into()),
            reason: None,
        };
        let minutes = [
            Minute {
                minute: 99,
                counts: [("link.clicked".to_string(), 7)].into(),
                feed: vec![entry("2027-01-15T07:59:00.000Z")],
            },
            Minute {
                minute: 100,
                counts: [("link.clicked".to_string(), 2)].into(),
                feed: vec![entry("2027-01-15T08:00:01.000Z")],
            },
            Minute {
                minute: 101,
                counts: [("link.clicked".to_string(), 3)].into(),
                feed: vec![
                    entry("2027-01-15T08:01:05.000Z"),
                    entry("2027-01-15T08:01:00.000Z"),
                ],
            },
        ];
        let live = Live::merge(100, &minutes);
        assert_eq!(live.counts["link.clicked"], 5);
        let times: Vec<&str> = live.recent.iter().map(|e| e.time.as_str()).collect();
        assert_eq!(
            times,
            [
                "2027-01-15T08:01:05.000Z",
                "2027-01-15T08:01:00.000Z",
                "2027-01-15T08:00:01.000Z"
            ]
        );
        assert_eq!(live.since, "1970-01-01T01:40:00Z");
    }

    #[test]
    fn slots_are_stable_and_spread() {
        assert_eq!(slot_of("4960"), slot_of("4960"));
        let used: std::collections::BTreeSet<u32> =
            (0..200).map(|i| slot_of(&format!("4960{i:020}"))).collect();
        assert_eq!(used.len(), FEED_SLOTS as usize);
    }
}
