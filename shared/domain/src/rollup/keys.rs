//! The rollups table's keys: every partition and sort key of the one DynamoDB table
//! the stream's consumers keep and the stats API reads, built here and nowhere else.
//!
//! One DynamoDB table (`pk`, `sk`, both strings) holds everything the stream's
//! consumers keep and the stats API reads. Every key is built by the function named
//! here, and nowhere else:
//!
//! | item | `pk` | `sk` | built by |
//! |---|---|---|---|
//! | counters of the tenant, a campaign or a channel | `R#{tenant}#{H\|D}#{all\|c:{campaign}\|ch:{channel}:{provider}}` | `H#{yyyy-mm-ddThh}` or `D#{yyyy-mm-dd}` | [`rollup_partition`], [`Grain::sort_key`] |
//! | a campaign's counters per channel and provider (days only) | `R#{tenant}#D#cc:{campaign}` | `D#{yyyy-mm-dd}#{channel}:{provider}` | [`rollup_partition`], [`campaign_channel_sort_key`] |
//! | a link's clicks | `R#{tenant}#{H\|D}#l:{campaign}` | `{period}#{link id}` | [`link_partition`], [`link_sort_key`] |
//! | a month's pack of day counters | the day items' | `P#{yyyy-mm}` | [`pack_sort_key`] |
//! | unique set page | `U#{tenant}#{campaign}#{kind}` | `B#{bucket}` then `B#{bucket}#{page}` | [`unique_partition`], [`bucket_page_sort_key`] |
//! | dedupe set page | `E#{tenant}#{yyyy-mm-dd}` | as unique sets | [`dedupe_partition`], [`bucket_page_sort_key`] |
//! | a shard's checkpoint | `K#{stream}/{shard}` | `checkpoint` | [`checkpoint_key`] |
//! | campaign and channel directory | `C#{tenant}` | `c:{campaign}`, `ch:{channel}:{provider}` | [`directory_partition`], [`directory_entries`] |
//! | tenants that sent events | `TENANTS` | tenant | [`TENANTS_PARTITION`] |
//! | a message's trail | `M#{tenant}#{message}` | `trail` | [`trail_partition`], [`TRAIL_SORT_KEY`] |
//! | ... indexed by recipient ([`RECIPIENT_INDEX`]) | `rcp` = `{tenant}#{recipient}` | `rcp_at` = first hit, epoch ms | [`recipient_index_key`] |
//! | suppression entry | `S#{tenant}#{channel}` | recipient | [`suppression_partition`] |
//! | engagement marks | `E#{tenant}` | recipient, then `{recipient}\u{1}{page}` | [`marks_partition`], [`marks_sort_key`] |
//! | segment snapshot | `G#{tenant}` | `segments` | [`segments_partition`], [`SEGMENTS_SORT_KEY`] |
//! | dashboard link | `A#{tenant}` | `link#{id}` | [`access_partition`], [`dashboard_link_sort_key`] |
//! | a minute of the live view | `V#{tenant}` | `m#{minutes since the epoch, 12 digits}` | [`live_partition`], [`live_sort_key`] |
//!
//! Items that expire carry their Unix expiry in [`TTL_ATTRIBUTE`], the table's TTL.
//!
//! Tenant ids are checked ([`crate::tenant::check`]) before they reach a key, so no
//! tenant's keys can reach into another's. Worst-case sizes of every item and what keeps
//! them under DynamoDB's limits: docs/rollups.md, "Item sizes".

use chrono::{DateTime, NaiveDate, Utc};
use std::collections::BTreeSet;

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

/// The directory partition of a tenant.
pub fn directory_partition(tenant: &str) -> String {
    format!("C#{tenant}")
}

/// Directory sort-key prefix of campaigns (`c:{campaign}`).
pub const CAMPAIGN_PREFIX: &str = "c:";
/// Directory sort-key prefix of channels (`ch:{channel}:{provider}`).
pub const CHANNEL_PREFIX: &str = "ch:";

/// Channel and provider of a directory sort key `ch:{channel}:{provider}` (a channel
/// has no `:`; a provider may).
pub fn parse_channel(sk: &str) -> Option<(&str, &str)> {
    sk.strip_prefix(CHANNEL_PREFIX)?
        .split_once(':')
        .filter(|(ch, p)| !ch.is_empty() && !p.is_empty())
}

/// The partition listing every tenant that has sent events (sort key: the tenant), for
/// the jobs that go through all tenants (alerts).
pub const TENANTS_PARTITION: &str = "TENANTS";

/// The directory entries of a run's rollups.
pub fn directory_entries<'a>(
    keys: impl Iterator<Item = &'a RollupKey>,
) -> BTreeSet<(String, String)> {
    keys.map(|k| match &k.scope {
        Scope::Tenant => (TENANTS_PARTITION.to_string(), k.tenant.clone()),
        Scope::Campaign(c) => (
            directory_partition(&k.tenant),
            format!("{CAMPAIGN_PREFIX}{c}"),
        ),
        Scope::Channel(ch, p) => (
            directory_partition(&k.tenant),
            format!("{CHANNEL_PREFIX}{ch}:{p}"),
        ),
        // Listed under its campaign and its channel, whose items the same events make.
        Scope::CampaignChannel { campaign, .. } => (
            directory_partition(&k.tenant),
            format!("{CAMPAIGN_PREFIX}{campaign}"),
        ),
    })
    .collect()
}

/// The key of a shard's checkpoint item: the last sequence number applied, moved by
/// each run's transaction (`crate::rollup::aggregate`).
pub fn checkpoint_key(shard: &str) -> (String, String) {
    (format!("K#{shard}"), "checkpoint".to_string())
}

/// What a rollup item is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Tenant,
    Campaign(String),
    /// Channel and provider (`-` when the event named none).
    Channel(String, String),
    /// A campaign's events of one channel and provider: day items only, every pair of
    /// the campaign in one partition, so one Query gives its breakdown over a range of
    /// days ([`campaign_channel_sort_key`]).
    CampaignChannel {
        campaign: String,
        channel: String,
        provider: String,
    },
}

/// The sort key of a campaign's day item of one channel and provider:
/// `D#2026-12-03#email:ses`. A day's pairs sort together, after the day's own key and
/// before the next day's (`#` sorts below every digit).
pub fn campaign_channel_sort_key(day_sort_key: &str, channel: &str, provider: &str) -> String {
    format!("{day_sort_key}#{channel}:{provider}")
}

/// Day, channel and provider of a [`campaign_channel_sort_key`].
pub fn parse_campaign_channel(sk: &str) -> Option<(NaiveDate, &str, &str)> {
    let (day, pair) = sk.strip_prefix("D#")?.split_once('#')?;
    let day = NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
    let (channel, provider) = pair.split_once(':')?;
    (!channel.is_empty() && !provider.is_empty()).then_some((day, channel, provider))
}

/// The last sort key of a campaign's channel items on the day `day_sort_key` (`$`
/// sorts just above `#`).
pub fn campaign_channel_day_end(day_sort_key: &str) -> String {
    format!("{day_sort_key}$")
}

/// One rollup item: partition key from [`rollup_partition`], sort key per [`Grain`].
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
        rollup_partition(&self.tenant, &self.scope, self.grain)
    }
}

/// The partition key of a scope's rollups of one grain: `R#acme#D#all`,
/// `R#acme#H#c:spring`, `R#acme#D#ch:email:ses`. Day and hour items live in separate
/// partitions so a 90-day series reads 90 items and walks past no hour items.
pub fn rollup_partition(tenant: &str, scope: &Scope, grain: Grain) -> String {
    let g = match grain {
        Grain::Hour => 'H',
        Grain::Day => 'D',
    };
    match scope {
        Scope::Tenant => format!("R#{tenant}#{g}#all"),
        Scope::Campaign(c) => format!("R#{tenant}#{g}#c:{c}"),
        Scope::Channel(ch, p) => format!("R#{tenant}#{g}#ch:{ch}:{p}"),
        // Day items only: every event of a campaign's channel items is in its day.
        Scope::CampaignChannel { campaign, .. } => campaign_channel_partition(tenant, campaign),
    }
}

/// The partition of a campaign's day items per channel and provider:
/// `R#acme#D#cc:spring` ([`Scope::CampaignChannel`]).
pub fn campaign_channel_partition(tenant: &str, campaign: &str) -> String {
    format!("R#{tenant}#D#cc:{campaign}")
}

/// The partition of a campaign's link items of one grain: `R#acme#D#l:spring`. Each
/// clicked link has its own item per hour and day (sort key [`link_sort_key`]) holding
/// its `human` and `bot` clicks and its `url`, so no item's size depends on how many
/// distinct links a campaign has: a campaign item holds scalar counters and latency
/// buckets only, and a link item at most one URL (2,048 characters, checked at the edge).
pub fn link_partition(tenant: &str, campaign: &str, grain: Grain) -> String {
    let g = match grain {
        Grain::Hour => 'H',
        Grain::Day => 'D',
    };
    format!("R#{tenant}#{g}#l:{campaign}")
}

/// A link item's sort key: the period, then the link id (`D#2026-11-23#9f86d081884c7d65`),
/// so one Query of a period range reads every link of those periods.
pub fn link_sort_key(period: &str, link_id: &str) -> String {
    format!("{period}#{link_id}")
}

/// Period and link id of a link item's sort key.
pub fn split_link_sort_key(sk: &str) -> Option<(&str, &str)> {
    sk.rsplit_once('#')
        .filter(|(period, _)| period.contains('#'))
}

/// The link partition beside a campaign's rollup partition (`R#acme#D#c:spring` →
/// `R#acme#D#l:spring`); `None` for any other partition. Tenant ids hold no `#`.
pub fn link_partition_of(rollup_pk: &str) -> Option<String> {
    let mut parts = rollup_pk.splitn(4, '#');
    let (Some("R"), Some(tenant), Some(grain), Some(rest)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let campaign = rest.strip_prefix("c:")?;
    Some(format!("R#{tenant}#{grain}#l:{campaign}"))
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
        self.page_sort_key(0)
    }

    /// The sort key of one page of the bucket: `B#07`, then `B#07#1`, `B#07#2`, ...
    /// A page takes members while it holds at most [`UNIQUE_PAGE_MEMBERS`]; the next is
    /// started only when one is full, so pages are contiguous. Readers union every item
    /// of the partition, so a member written to two pages (a retry after a page filled)
    /// still counts once.
    pub fn page_sort_key(&self, page: u32) -> String {
        bucket_page_sort_key(self.bucket, page)
    }
}

/// The sort key of one page of a bucketed set (unique sets, dedupe sets): `B#07` for the
/// first page, then `B#07#1`, `B#07#2`, ... so every page of every bucket sits in the
/// set's partition, where one Query reads them all.
pub fn bucket_page_sort_key(bucket: u32, page: u32) -> String {
    if page == 0 {
        format!("B#{bucket:02}")
    } else {
        format!("B#{bucket:02}#{page}")
    }
}

/// Members one unique-set page holds at most. A member is at most 33 bytes (a link id,
/// `:` and a fingerprint), so a full page stays under 340 KB, below DynamoDB's 400 KB
/// per item, however many recipients click however many links.
pub const UNIQUE_PAGE_MEMBERS: usize = 10_000;

/// Members added to a page in one update: the page's condition leaves room for them.
pub const UNIQUE_ADD_CHUNK: usize = 1_000;

pub fn unique_partition(tenant: &str, campaign: &str, kind: UniqueKind) -> String {
    let kind = match kind {
        UniqueKind::Opens => "opens",
        UniqueKind::Clicks => "clicks",
    };
    format!("U#{tenant}#{campaign}#{kind}")
}

/// The partition of a tenant's suppression list for one channel; the sort key is the
/// recipient id.
pub fn suppression_partition(tenant: &str, channel: &str) -> String {
    format!("S#{tenant}#{channel}")
}

/// The partition of a tenant's engagement marks; the sort keys are [`marks_sort_key`]s.
pub fn marks_partition(tenant: &str) -> String {
    format!("E#{tenant}")
}

/// Between a recipient id and a page number in a sort key: below every character a
/// recipient id may hold (ids are printable), so one recipient's items sort together,
/// before any other id that begins with this one.
const PAGE_SEPARATOR: char = '\u{1}';

/// The sort key of one page of a recipient's marks: the id itself for page 0, then
/// `{recipient}\u{1}{page:x}`.
pub fn marks_sort_key(recipient: &str, page: u32) -> String {
    if page == 0 {
        recipient.to_string()
    } else {
        format!("{recipient}{PAGE_SEPARATOR}{page:x}")
    }
}

/// The recipient and page of a marks item's sort key.
pub fn split_marks_sort_key(sort_key: &str) -> (&str, u32) {
    match sort_key.split_once(PAGE_SEPARATOR) {
        Some((recipient, page)) => (recipient, u32::from_str_radix(page, 16).unwrap_or(0)),
        None => (sort_key, 0),
    }
}

/// A sort key past every page of `recipient` and before the next recipient's.
pub fn past_recipient(recipient: &str) -> String {
    format!("{recipient}\u{2}")
}

/// The partition of a tenant's segment snapshot.
pub fn segments_partition(tenant: &str) -> String {
    format!("G#{tenant}")
}

/// The segment snapshot's sort key.
pub const SEGMENTS_SORT_KEY: &str = "segments";

/// The partition of a tenant's dashboard links.
pub fn access_partition(tenant: &str) -> String {
    format!("A#{tenant}")
}

/// Sort-key prefix of dashboard links.
pub const DASHBOARD_LINK_PREFIX: &str = "link#";

/// A dashboard link's sort key.
pub fn dashboard_link_sort_key(id: &str) -> String {
    format!("{DASHBOARD_LINK_PREFIX}{id}")
}

/// The attribute holding an item's expiry (Unix seconds): the table's TTL attribute.
pub const TTL_ATTRIBUTE: &str = "ttl";

/// The partition of a tenant's live view.
pub fn live_partition(tenant: &str) -> String {
    format!("V#{tenant}")
}

/// The sort key of one minute of the live view (minutes since the epoch).
pub fn live_sort_key(minute: i64) -> String {
    format!("m#{minute:012}")
}

/// The partition of a message's trail.
pub fn trail_partition(tenant: &str, message: &str) -> String {
    format!("M#{tenant}#{message}")
}

/// A trail's sort key.
pub const TRAIL_SORT_KEY: &str = "trail";

/// The partition of a tenant's dedupe set of one day of receipt (`yyyy-mm-dd`).
pub fn dedupe_partition(tenant: &str, day: &str) -> String {
    format!("E#{tenant}#{day}")
}

/// Sort-key prefix of month packs; outside every day range (`D#...`).
pub const PACK_PREFIX: &str = "P#";

/// The sort key of a month's pack (`2026-08`), in the partition of the day items.
pub fn pack_sort_key(month: &str) -> String {
    format!("{PACK_PREFIX}{month}")
}

/// A day item's sort key.
pub fn day_sort_key(day: NaiveDate) -> String {
    format!("D#{}", day.format("%Y-%m-%d"))
}

/// The day of a day item's sort key (`D#2026-08-03`).
pub fn day_of(sk: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(sk.strip_prefix("D#")?, "%Y-%m-%d").ok()
}

/// The rollups table's global secondary index of trails by recipient (keys only): a
/// trail with a recipient carries [`RECIPIENT_INDEX_KEY`] ([`recipient_index_key`]) and
/// [`RECIPIENT_INDEX_SORT`] (its first hit, epoch ms), both set once when it is first
/// stored, so later updates of the trail never write the index again.
pub const RECIPIENT_INDEX: &str = "by-recipient";
pub const RECIPIENT_INDEX_KEY: &str = "rcp";
pub const RECIPIENT_INDEX_SORT: &str = "rcp_at";

/// A recipient's key in [`RECIPIENT_INDEX`]: `acme#r-1` (tenant ids hold no `#`).
pub fn recipient_index_key(tenant: &str, recipient: &str) -> String {
    format!("{tenant}#{recipient}")
}

/// The message of a trail's partition key of `tenant` ([`trail_partition`]).
pub fn trail_message<'a>(pk: &'a str, tenant: &str) -> Option<&'a str> {
    pk.strip_prefix("M#")?
        .strip_prefix(tenant)?
        .strip_prefix('#')
}
