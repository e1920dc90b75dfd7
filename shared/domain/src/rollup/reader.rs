//! Reading the rollups table for the stats API: a small trait ([`RollupReader`]), its
//! DynamoDB adapter (Query only, never Scan) and an in-memory one for tests.
//!
//! The table (`pk`, `sk`) holds, as the aggregator writes them:
//! - rollup items: `pk` from [`crate::rollup::rollup_partition`], `sk` `H#YYYY-MM-DDTHH` or
//!   `D#YYYY-MM-DD`; Numbers named by [`Counters::numeric_fields`] (campaign items written
//!   before links had items of their own also hold `lc_{link}_h|b` and `lu_{link}`);
//! - link items: `pk` from [`crate::rollup::link_partition`], `sk` `{period}#{link id}`,
//!   Numbers `human` and `bot`, String `url`: read with their campaign's items;
//! - unique sets: `pk` from [`crate::rollup::unique_partition`], `sk` `B#NN` and `B#NN#p`
//!   (pages), String Set `m`: read by key, page by page;
//! - the directory: `pk` `C#{tenant}`, `sk` `c:{campaign}` or `ch:{channel}:{provider}`,
//!   String `last_seen`;
//! - month packs in day partitions: `sk` `P#YYYY-MM`, Numbers `gen` and `packed_gen`,
//!   Strings `through` and `days` ([`crate::rollup::month_pack`]), written by readers only for
//!   months that have day items;
//! - segment snapshots: `pk` `G#{tenant}`, `sk` `segments` ([`crate::audience::segments`]).
//!
//! Every read but [`RollupReader::directory`] makes a bounded number of DynamoDB
//! requests whatever the partition holds: [`cost`] says how many.

use crate::rollup::Counters;
use chrono::NaiveDate;
use std::collections::BTreeMap;
use std::future::Future;
use thiserror::Error;

/// One rollup item, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupItem {
    pub sk: String,
    pub counters: Counters,
}

/// One directory item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryItem {
    pub sk: String,
    pub last_seen: Option<String>,
}

/// Which attributes of rollup items a read needs: a series asks only for the scalar
/// counters, so the table returns a few numbers per item rather than every link's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fields {
    /// Everything: scalar counters, the latency histogram, per-link counts and URLs.
    All,
    /// The scalar counters, the latency histogram and the reason counters: everything
    /// but the links.
    Counts,
    /// The sort key and [`Counters::SCALAR_FIELDS`].
    Scalars,
}

impl Fields {
    /// Whether a stored attribute is among the fields.
    pub fn holds(self, name: &str) -> bool {
        match self {
            Fields::All => true,
            Fields::Counts => {
                Counters::SCALAR_FIELDS.contains(&name)
                    || name.starts_with(LATENCY_PREFIX)
                    || name.starts_with(crate::rollup::counters::OPEN_REASON_PREFIX)
                    || name.starts_with(crate::rollup::counters::CLICK_REASON_PREFIX)
            }
            Fields::Scalars => Counters::SCALAR_FIELDS.contains(&name),
        }
    }
}

/// Attribute-name prefix of the latency histogram's buckets (`lat_{bucket}`).
pub const LATENCY_PREFIX: &str = "lat_";

/// The most DynamoDB requests each kind of read makes, so that a route's maximum is
/// the sum of its reads' (see `x-beacon-max-dynamodb-calls` in the stats OpenAPI
/// file). Retries of throttled requests by the SDK, and of unprocessed BatchGetItem
/// keys, come on top.
pub mod cost {
    /// GetItem: a directory entry, a segment snapshot.
    pub const GET_ITEM: u32 = 1;
    /// A recipient's marks: one BatchGetItem of its [`crate::audience::engagement::MARK_PAGES`]
    /// items (at most 6.4 MB, under the 16 MB one call returns).
    pub const MARKS: u32 = 1;
    /// A page of the directory: one Query with `Limit` (at most 1,000 items of at most
    /// 1.1 KB, under the 1 MB a Query page holds).
    pub const DIRECTORY_PAGE: u32 = 1;
    /// Counters of at most 401 days or 744 hours of one partition, read by Query: two
    /// 1 MB pages. Day items read with [`super::Fields::Counts`] hold counters, the
    /// latency histogram and the reason counters (at most 125 numbers, under 4 KB: 401
    /// of them are 1.6 MB); hours are read with [`super::Fields::Scalars`] (17 numbers).
    /// Links live in items of their own ([`LINKS`]).
    pub const RANGE: u32 = 2;
    /// Whether a partition has an item in a key range: one Query with `Limit` 1.
    pub const PROBE: u32 = 1;
    /// A campaign's unique set, read by key: one BatchGetItem of every bucket's page 0,
    /// then one per further page of the deepest bucket, and one that finds nothing. So
    /// 16 while no bucket holds more than 15 pages (2.4 million members in all).
    pub const UNIQUE_SET: u32 = crate::rollup::Aggregate::UNIQUE_BUCKETS;
    /// A daily series through month packs ([`crate::rollup::month_pack`]): BatchGetItem of at
    /// most 15 packs and 401 open days in chunks of 100, then for each month whose pack
    /// is missing or stale one Query of its days and one UpdateItem.
    pub const DAILY_SERIES: u32 = 5 + 2 * crate::rollup::month_pack::MAX_MONTHS as u32;
    /// A page of the suppression list
    /// ([`crate::audience::reader::MAX_QUERIES_PER_PAGE`] Queries).
    pub const AUDIENCE_PAGE: u32 = crate::audience::reader::MAX_QUERIES_PER_PAGE as u32;
    /// A page of recipients with their marks: as many Queries, and one BatchGetItem of
    /// the last recipient's pages when the Queries stop inside them.
    pub const MARKS_PAGE: u32 = AUDIENCE_PAGE + 1;
    /// A recipient's recent trails: one Query of the recipient index (keys only), one
    /// BatchGetItem of the trails (at most [`crate::stats::MAX_RECENT_MESSAGES`]), and one
    /// of the checkpoints of the shards that staged any of them.
    pub const RECENT_TRAILS: u32 = 3;
    /// Storing a segment snapshot: one UpdateItem.
    pub const UPDATE_ITEM: u32 = 1;
    /// A campaign's link items beside its counters (a read with [`super::Fields::All`]):
    /// at most [`super::MAX_LINK_ITEMS`] in Query pages of 1 MB.
    pub const LINKS: u32 = 10;
}

/// Link items one read of a campaign's periods takes at most (each under 2.3 KB: 1 MB
/// Query pages hold at least 430, so [`cost::LINKS`] pages). A campaign whose periods
/// hold more link items is answered from the first ones (the earliest periods' links).
pub const MAX_LINK_ITEMS: usize = 4_000;

/// A page of the directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryPage {
    pub items: Vec<DirectoryItem>,
    /// More items may follow the last one.
    pub more: bool,
}

/// The largest page [`RollupReader::directory_page`] reads.
pub const MAX_DIRECTORY_PAGE: usize = 1000;

#[derive(Debug, Error)]
#[error("rollups table unavailable: {0}")]
pub struct ReadError(pub String);

/// Where the stats API reads the rollups from.
pub trait RollupReader: Send + Sync {
    /// The rollup items of `pk` with `from_sk <= sk <= to_sk`, in sort-key order,
    /// holding the `fields` asked for; with [`Fields::All`], a campaign's items hold
    /// their periods' link items' clicks and URLs too.
    fn rollups(
        &self,
        pk: &str,
        from_sk: &str,
        to_sk: &str,
        fields: Fields,
    ) -> impl Future<Output = Result<Vec<RollupItem>, ReadError>> + Send;

    /// At most `limit` rollup items of `pk` with `from_sk <= sk <= to_sk`, the latest
    /// (greatest sort key) first: the last days of a campaign, or, with `limit` 1,
    /// whether any item lies in the range.
    fn latest_rollups(
        &self,
        pk: &str,
        from_sk: &str,
        to_sk: &str,
        fields: Fields,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RollupItem>, ReadError>> + Send;

    /// The members of every item of a unique-set partition (count them with
    /// [`crate::rollup::count_unique`]).
    fn unique_members(
        &self,
        pk: &str,
    ) -> impl Future<Output = Result<Vec<String>, ReadError>> + Send;

    /// Every directory item of `pk` whose sort key starts with `sk_prefix`, however
    /// many (for scheduled jobs going through every tenant; requests page with
    /// [`Self::directory_page`]).
    fn directory(
        &self,
        pk: &str,
        sk_prefix: &str,
    ) -> impl Future<Output = Result<Vec<DirectoryItem>, ReadError>> + Send;

    /// Up to `limit` (at most [`MAX_DIRECTORY_PAGE`]) directory items of `pk` whose sort
    /// key starts with `sk_prefix`, after the sort key `after`, in sort-key order; and
    /// whether more may follow. One Query: a page can come back short (never empty)
    /// when DynamoDB's 1 MB page ends first.
    fn directory_page(
        &self,
        pk: &str,
        sk_prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<DirectoryPage, ReadError>> + Send;

    /// The trails of `recipient`'s messages that were opened or clicked, the most
    /// recently first opened first, at most `limit`, each message's id with its trail
    /// as its run counts it (a trail staged by a run that has not committed reads as it
    /// was before). Through the table's recipient index ([`crate::rollup::RECIPIENT_INDEX`]):
    /// [`cost::RECENT_TRAILS`] requests.
    fn recent_trails(
        &self,
        tenant: &str,
        recipient: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, crate::verdict::trail::Trail)>, ReadError>> + Send;

    /// The one directory item `pk`/`sk`, if it exists (a key lookup, not a Query).
    fn directory_entry(
        &self,
        pk: &str,
        sk: &str,
    ) -> impl Future<Output = Result<Option<DirectoryItem>, ReadError>> + Send;
}

/// Counters from a rollup item's attributes: every Number through
/// [`Counters::set_field`] (unknown names are ignored), and `lu_{link}` Strings as link
/// URLs. Links with a URL but no clicks are kept with zero counts.
pub fn counters_from_attributes<'a>(
    numbers: impl IntoIterator<Item = (&'a str, i64)>,
    strings: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Counters {
    let mut c = Counters::default();
    for (name, value) in numbers {
        c.set_field(name, value);
    }
    for (name, value) in strings {
        if let Some(id) = name.strip_prefix("lu_") {
            c.links.entry(id.to_string()).or_default().url = value.to_string();
        }
    }
    c
}

/// The sort key range of the link items of the periods `from_sk..=to_sk` (link sort keys
/// are `{period}#{link id}`, and link ids are hex digits, all below `~`).
pub fn link_sort_key_range(from_sk: &str, to_sk: &str) -> (String, String) {
    (from_sk.to_string(), format!("{to_sk}#~"))
}

/// One stored link item: its sort key, clicks and URL.
pub struct LinkItem<'a> {
    pub sk: &'a str,
    pub human: i64,
    pub bot: i64,
    pub url: Option<&'a str>,
}

/// Adds link items to the rollup items of their periods (a period whose rollup item was
/// not read gets one, holding only its links), keeping sort-key order.
pub fn merge_link_items<'a>(
    items: &mut Vec<RollupItem>,
    links: impl IntoIterator<Item = LinkItem<'a>>,
) {
    let mut by_period: BTreeMap<String, usize> = items
        .iter()
        .enumerate()
        .map(|(i, item)| (item.sk.clone(), i))
        .collect();
    let mut added = false;
    for link in links {
        let Some((period, id)) = crate::rollup::split_link_sort_key(link.sk) else {
            continue;
        };
        let i = *by_period.entry(period.to_string()).or_insert_with(|| {
            added = true;
            items.push(RollupItem {
                sk: period.to_string(),
                counters: Counters::default(),
            });
            items.len() - 1
        });
        items[i].counters.add_link(
            id,
            link.human.max(0) as u64,
            link.bot.max(0) as u64,
            link.url,
        );
    }
    if added {
        items.sort_by(|a, b| a.sk.cmp(&b.sk));
    }
}

/// The suppression list, engagement marks and segment snapshots live in the rollups
/// table: its readers read them too. `$check` runs before each call with its kind and
/// its most DynamoDB requests.
#[macro_export]
macro_rules! audience_through {
    ($reader:ty, $field:ident, $check:expr) => {
        impl $crate::audience::reader::AudienceReader for $reader {
            async fn suppressed(
                &self,
                tenant: &str,
                channel: &str,
                recipients: &[String],
            ) -> Result<
                std::collections::HashMap<String, $crate::audience::suppression::Entry>,
                $crate::audience::reader::AudienceError,
            > {
                // BatchGetItem, 100 keys a call.
                let calls = recipients.len().div_ceil(100) as u32;
                $check(self, "suppression check", calls)?;
                self.$field.suppressed(tenant, channel, recipients).await
            }

            async fn suppression_page(
                &self,
                tenant: &str,
                channel: &str,
                cursor: Option<&str>,
                limit: usize,
            ) -> Result<
                $crate::audience::reader::Page<$crate::audience::suppression::Entry>,
                $crate::audience::reader::AudienceError,
            > {
                $check(
                    self,
                    "suppression page",
                    $crate::rollup::reader::cost::AUDIENCE_PAGE,
                )?;
                self.$field
                    .suppression_page(tenant, channel, cursor, limit)
                    .await
            }

            async fn marks(
                &self,
                tenant: &str,
                recipient: &str,
            ) -> Result<$crate::audience::reader::Marks, $crate::audience::reader::AudienceError>
            {
                $check(self, "marks", $crate::rollup::reader::cost::MARKS)?;
                self.$field.marks(tenant, recipient).await
            }

            async fn marks_page(
                &self,
                tenant: &str,
                cursor: Option<&str>,
                limit: usize,
            ) -> Result<
                $crate::audience::reader::Page<(String, $crate::audience::reader::Marks)>,
                $crate::audience::reader::AudienceError,
            > {
                $check(self, "marks page", $crate::rollup::reader::cost::MARKS_PAGE)?;
                self.$field.marks_page(tenant, cursor, limit).await
            }
        }

        impl $crate::audience::segments::SegmentSnapshots for $reader {
            async fn segment_snapshot(
                &self,
                tenant: &str,
                consistent: bool,
            ) -> Result<
                ($crate::audience::segments::SnapshotState, i64),
                $crate::audience::reader::AudienceError,
            > {
                $check(
                    self,
                    "segment snapshot",
                    $crate::rollup::reader::cost::GET_ITEM,
                )?;
                self.$field.segment_snapshot(tenant, consistent).await
            }

            async fn store_segment_snapshot(
                &self,
                tenant: &str,
                state: &$crate::audience::segments::SnapshotState,
                version: i64,
            ) -> Result<bool, $crate::audience::reader::AudienceError> {
                $check(
                    self,
                    "store segment snapshot",
                    $crate::rollup::reader::cost::UPDATE_ITEM,
                )?;
                self.$field
                    .store_segment_snapshot(tenant, state, version)
                    .await
            }
        }
    };
}
/// The days of a read that goes through month packs: scalar counters of a daily range
/// no longer than a stats range.
pub fn packed_days(from_sk: &str, to_sk: &str, fields: Fields) -> Option<(NaiveDate, NaiveDate)> {
    let (from, to) = (
        crate::rollup::keys::day_of(from_sk)?,
        crate::rollup::keys::day_of(to_sk)?,
    );
    (fields == Fields::Scalars
        && from <= to
        && (to - from).num_days() <= crate::stats::MAX_DAY_RANGE_DAYS)
        .then_some((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::{count_unique, rollup_partition, unique_partition, Grain, UniqueKind};
    use crate::rollup::{Aggregate, Scope};
    use crate::testkit::rollups::MemoryRollupReader;
    use crate::{Event, EventType};
    use std::sync::atomic::Ordering;

    fn event(kind: EventType, recipient: &str) -> Event {
        let t = "2026-11-23T10:15:00Z".parse().unwrap();
        let mut e = Event::new(crate::event::new_event_id(), "acme".into(), kind, t, t);
        e.campaign_id = Some("spring".into());
        e.message_id = Some(format!("m-{recipient}"));
        e.recipient_id = Some(recipient.into());
        e.channel = Some("email".into());
        e.provider = Some("ses".into());
        e
    }

    #[tokio::test]
    async fn memory_reader_adds_like_the_writer_and_reads_ranges() {
        let store = MemoryRollupReader::default();
        let mut agg = Aggregate::default();
        for r in ["r1", "r2", "r1"] {
            agg.add(&event(EventType::Opened, r));
        }
        let mut d = event(EventType::Delivered, "r1");
        d.duration_ms = Some(900);
        agg.add(&d);
        let mut c = event(EventType::Clicked, "r1");
        c.link_url = Some("https://x.example/a".into());
        agg.add(&c);
        store.add_aggregate(&agg, "2026-11-23T10:15:00Z");
        store.add_aggregate(&agg, "2026-11-23T10:16:00Z");
        let spring = Scope::Campaign("spring".into());
        let days = rollup_partition("acme", &spring, Grain::Day);
        let items = store
            .rollups(&days, "D#2026-11-01", "D#2026-11-30", Fields::All)
            .await
            .unwrap();
        assert_eq!(items.len(), 1, "only the day item");
        assert_eq!(items[0].counters.opens_human, 6, "counts add up like ADD");
        assert_eq!(items[0].counters.latency_hist.len(), 1);
        assert_eq!(items[0].counters.links.len(), 1);
        let hours = rollup_partition("acme", &spring, Grain::Hour);
        let items = store
            .rollups(&hours, "H#", "H#~", Fields::Scalars)
            .await
            .unwrap();
        assert_eq!(items.len(), 1, "the hour item, in its own partition");
        let c = &items[0].counters;
        assert_eq!((c.opens_human, c.delivered, c.clicks_human), (6, 2, 2));
        assert_eq!(c.latency_count, 2, "scalars include the latency count");
        assert!(
            c.latency_hist.is_empty() && c.links.is_empty(),
            "but no histogram or links"
        );
        let members = store
            .unique_members(&unique_partition("acme", "spring", UniqueKind::Opens))
            .await
            .unwrap();
        assert_eq!(
            count_unique(members.iter().map(String::as_str)).recipients,
            2,
            "sets union"
        );
        let entry = store.directory_entry("C#acme", "c:spring").await.unwrap();
        assert_eq!(
            entry.unwrap().last_seen.as_deref(),
            Some("2026-11-23T10:16:00Z")
        );
        assert_eq!(
            store.directory_entry("C#acme", "c:spr").await.unwrap(),
            None
        );
        let dir = store.directory("C#acme", "").await.unwrap();
        let sks: Vec<&str> = dir.iter().map(|d| d.sk.as_str()).collect();
        assert_eq!(sks, vec!["c:spring", "ch:email:ses"]);
        assert_eq!(dir[0].last_seen.as_deref(), Some("2026-11-23T10:16:00Z"));
        store.failing.store(true, Ordering::Relaxed);
        assert!(store.directory("C#acme", "c:").await.is_err());
        assert_eq!(store.partitions_read().len(), 7);
    }
}
