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
//!   (pages), String Set `m`;
//! - the directory: `pk` `C#{tenant}`, `sk` `c:{campaign}` or `ch:{channel}:{provider}`,
//!   String `last_seen`;
//! - month packs in day partitions: `sk` `P#YYYY-MM`, Numbers `gen` and `packed_gen`,
//!   Strings `through` and `days` ([`crate::month_pack`]), written by readers only for
//!   months that have day items;
//! - segment snapshots: `pk` `G#{tenant}`, `sk` `segments` ([`crate::segment_snapshot`]).
//!
//! Every read but [`RollupReader::directory`] makes a bounded number of DynamoDB
//! requests whatever the partition holds: [`cost`] says how many.

use crate::audience_store::{
    AudienceError, AudienceReader, DynamoAudience, Marks, MemoryAudience, Page,
};
use crate::month_pack::{self, Pack};
use crate::rollup::{directory_partition, CAMPAIGN_PREFIX, CHANNEL_PREFIX};
use crate::rollup::{Aggregate, Counters, Scope};
use crate::segment_snapshot::{SegmentSnapshots, SnapshotState};
use crate::suppression::Entry;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
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
    /// The scalar counters and the latency histogram: everything but the links.
    Counts,
    /// The sort key and [`Counters::SCALAR_FIELDS`].
    Scalars,
}

impl Fields {
    /// Whether a stored attribute is among the fields.
    fn holds(self, name: &str) -> bool {
        match self {
            Fields::All => true,
            Fields::Counts => {
                Counters::SCALAR_FIELDS.contains(&name) || name.starts_with(LATENCY_PREFIX)
            }
            Fields::Scalars => Counters::SCALAR_FIELDS.contains(&name),
        }
    }
}

/// Attribute-name prefix of the latency histogram's buckets (`lat_{bucket}`).
const LATENCY_PREFIX: &str = "lat_";

/// The most DynamoDB requests each kind of read makes, so that a route's maximum is
/// the sum of its reads' (see `x-beacon-max-dynamodb-calls` in the stats OpenAPI
/// file). Retries of throttled requests by the SDK, and of unprocessed BatchGetItem
/// keys, come on top.
pub mod cost {
    /// GetItem: a directory entry, a segment snapshot.
    pub const GET_ITEM: u32 = 1;
    /// A recipient's marks: one BatchGetItem of its [`crate::engagement::MARK_PAGES`]
    /// items (at most 6.4 MB, under the 16 MB one call returns).
    pub const MARKS: u32 = 1;
    /// A page of the directory: one Query with `Limit` (at most 1,000 items of at most
    /// 1.1 KB, under the 1 MB a Query page holds).
    pub const DIRECTORY_PAGE: u32 = 1;
    /// Counters of at most 401 days or 744 hours of one partition, read by Query: two
    /// 1 MB pages while an item holds counters and the latency histogram (at most 97
    /// numbers, under 2.6 KB). Links live in items of their own ([`LINKS`]).
    pub const RANGE: u32 = 2;
    /// Whether a partition has an item in a key range: one Query with `Limit` 1.
    pub const PROBE: u32 = 1;
    /// A campaign's unique set: 16 bucket items, and every Query page holds at least one.
    pub const UNIQUE_SET: u32 = crate::rollup::Aggregate::UNIQUE_BUCKETS;
    /// A daily series through month packs ([`crate::month_pack`]): BatchGetItem of at
    /// most 15 packs and 401 open days in chunks of 100, then for each month whose pack
    /// is missing or stale one Query of its days and one UpdateItem.
    pub const DAILY_SERIES: u32 = 5 + 2 * crate::month_pack::MAX_MONTHS as u32;
    /// A page of the suppression list
    /// ([`crate::audience_store::MAX_QUERIES_PER_PAGE`] Queries).
    pub const AUDIENCE_PAGE: u32 = crate::audience_store::MAX_QUERIES_PER_PAGE as u32;
    /// A page of recipients with their marks: as many Queries, and one BatchGetItem of
    /// the last recipient's pages when the Queries stop inside them.
    pub const MARKS_PAGE: u32 = AUDIENCE_PAGE + 1;
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

/// A DynamoDB Number as an integer (the writer only adds integers).
fn number(n: &str) -> Option<i64> {
    n.parse::<i64>()
        .ok()
        .or_else(|| n.parse::<f64>().ok().map(|f| f.round() as i64))
}

fn item_counters(item: &HashMap<String, AttributeValue>) -> Counters {
    counters_from_attributes(
        item.iter().filter_map(|(k, v)| match v {
            AttributeValue::N(n) => number(n).map(|n| (k.as_str(), n)),
            _ => None,
        }),
        item.iter().filter_map(|(k, v)| match v {
            AttributeValue::S(s) => Some((k.as_str(), s.as_str())),
            _ => None,
        }),
    )
}

/// The DynamoDB adapter: Query with pagination, eventually consistent reads.
#[derive(Debug, Clone)]
pub struct DynamoRollupReader {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// The suppression list and engagement marks, in the same table.
    audience: DynamoAudience,
}

impl DynamoRollupReader {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        let table = table.into();
        DynamoRollupReader {
            audience: DynamoAudience::new(client.clone(), table.clone()),
            client,
            table,
        }
    }

    /// Every item of a Query, following `LastEvaluatedKey`.
    async fn query_all(
        &self,
        what: &str,
        condition: &str,
        values: &[(&str, &str)],
        projection: &[&str],
    ) -> Result<Vec<HashMap<String, AttributeValue>>, ReadError> {
        self.query_all_read(what, condition, values, projection, false)
            .await
    }

    /// [`Self::query_all`], strongly consistent if asked.
    async fn query_all_read(
        &self,
        what: &str,
        condition: &str,
        values: &[(&str, &str)],
        projection: &[&str],
        consistent: bool,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, ReadError> {
        let read = QueryShape {
            consistent,
            ..QueryShape::default()
        };
        let (items, _) = self
            .query(what, condition, values, projection, read)
            .await?;
        Ok(items)
    }

    /// The items of a Query in the order `read` asks for, following `LastEvaluatedKey`
    /// until `read.limit` items (or for one page only, with `read.one_page`); and
    /// whether the partition may hold more.
    async fn query(
        &self,
        what: &str,
        condition: &str,
        values: &[(&str, &str)],
        projection: &[&str],
        read: QueryShape,
    ) -> Result<(Vec<HashMap<String, AttributeValue>>, bool), ReadError> {
        let mut items = Vec::new();
        let mut start = read.start;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(condition)
                .consistent_read(read.consistent)
                .scan_index_forward(!read.newest_first)
                .set_limit(
                    read.limit
                        .map(|l| i32::try_from(l - items.len()).unwrap_or(i32::MAX)),
                )
                .expression_attribute_names("#pk", "pk")
                .set_exclusive_start_key(start.take());
            if condition.contains("#sk") {
                query = query.expression_attribute_names("#sk", "sk");
            }
            for (name, value) in values {
                query =
                    query.expression_attribute_values(*name, AttributeValue::S(value.to_string()));
            }
            if !projection.is_empty() {
                let (expression, names) = projected(projection);
                for (placeholder, name) in names {
                    query = query.expression_attribute_names(placeholder, name);
                }
                query = query.projection_expression(expression);
            }
            let page = query.send().await.map_err(read_error(what))?;
            items.extend(page.items.unwrap_or_default());
            let full = read.limit.is_some_and(|l| items.len() >= l);
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() && !full && !read.one_page => start = Some(key),
                Some(key) if !key.is_empty() => return Ok((items, true)),
                _ => return Ok((items, false)),
            }
        }
    }
}

impl DynamoRollupReader {
    /// The link items of a campaign partition's periods `from_sk..=to_sk` (at most
    /// [`MAX_LINK_ITEMS`]); nothing for other partitions or narrower fields.
    async fn link_items(
        &self,
        pk: &str,
        from_sk: &str,
        to_sk: &str,
        fields: Fields,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, ReadError> {
        let (Fields::All, Some(link_pk)) = (fields, crate::rollup::link_partition_of(pk)) else {
            return Ok(Vec::new());
        };
        let (from, to) = link_sort_key_range(from_sk, to_sk);
        let read = QueryShape {
            limit: Some(MAX_LINK_ITEMS),
            ..QueryShape::default()
        };
        let values = [(":pk", link_pk.as_str()), (":from", &from), (":to", &to)];
        let (items, _) = self
            .query(
                "reading link items",
                "#pk = :pk AND #sk BETWEEN :from AND :to",
                &values,
                &[],
                read,
            )
            .await?;
        Ok(items)
    }
}

/// A stored link item as [`merge_link_items`] takes it.
fn link_item(item: &HashMap<String, AttributeValue>) -> Option<LinkItem<'_>> {
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| number(n))
            .unwrap_or(0)
    };
    Some(LinkItem {
        sk: item.get("sk")?.as_s().ok()?,
        human: number("human"),
        bot: number("bot"),
        url: item
            .get("url")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str),
    })
}

/// How [`DynamoRollupReader::query`] reads: by default every item, oldest (smallest
/// sort key) first, eventually consistent.
#[derive(Debug, Clone, Default)]
struct QueryShape {
    consistent: bool,
    newest_first: bool,
    limit: Option<usize>,
    one_page: bool,
    /// The key to start after.
    start: Option<HashMap<String, AttributeValue>>,
}

/// A projection expression of `names` through placeholders (`sk` and the counter names
/// are fine, but reserved words would not be), and the placeholders' names.
fn projected(names: &[&str]) -> (String, HashMap<String, String>) {
    let placeholders: Vec<String> = (0..names.len()).map(|i| format!("#p{i}")).collect();
    let expression = placeholders.join(", ");
    let names = placeholders
        .into_iter()
        .zip(names.iter().map(|n| n.to_string()))
        .collect();
    (expression, names)
}

/// The sort key and the scalar counters: what a series reads of a rollup item.
fn scalar_projection() -> Vec<&'static str> {
    std::iter::once("sk")
        .chain(Counters::SCALAR_FIELDS)
        .collect()
}

/// The attributes a read of `fields` asks for (none: every attribute).
fn projection_of(fields: Fields) -> Vec<String> {
    match fields {
        Fields::All => Vec::new(),
        Fields::Scalars => scalar_projection().into_iter().map(String::from).collect(),
        Fields::Counts => scalar_projection()
            .into_iter()
            .map(String::from)
            .chain(
                (0..crate::rollup::LATENCY_BOUNDS_MS.len()).map(|b| format!("{LATENCY_PREFIX}{b}")),
            )
            .collect(),
    }
}

fn rollup_items(items: &[HashMap<String, AttributeValue>]) -> Vec<RollupItem> {
    items
        .iter()
        .filter_map(|item| {
            Some(RollupItem {
                sk: crate::dynamo::string_attribute(item, "sk")?,
                counters: item_counters(item),
            })
        })
        .collect()
}

fn read_error<E: std::error::Error + 'static>(what: &str) -> impl FnOnce(E) -> ReadError + '_ {
    move |e| {
        ReadError(format!(
            "{what}: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(&e)
        ))
    }
}

/// The days of a read that goes through month packs: scalar counters of a daily range
/// no longer than a stats range.
fn packed_days(from_sk: &str, to_sk: &str, fields: Fields) -> Option<(NaiveDate, NaiveDate)> {
    let (from, to) = (month_pack::day_of(from_sk)?, month_pack::day_of(to_sk)?);
    (fields == Fields::Scalars
        && from <= to
        && (to - from).num_days() <= crate::stats::MAX_DAY_RANGE_DAYS)
        .then_some((from, to))
}

/// A month pack from its item (a missing item is a pack never written at generation 0).
fn pack_from_item(item: Option<&HashMap<String, AttributeValue>>) -> Result<Pack, ReadError> {
    let Some(item) = item else {
        return Ok(Pack::default());
    };
    let int = |name| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| number(n))
    };
    Ok(Pack {
        gen: int("gen").unwrap_or(0),
        packed_gen: int("packed_gen"),
        through: crate::dynamo::string_attribute(item, "through").and_then(|t| t.parse().ok()),
        days: match item.get("days").and_then(|v| v.as_s().ok()) {
            Some(text) => Pack::decode_days(text).map_err(ReadError)?,
            None => Vec::new(),
        },
    })
}

impl DynamoRollupReader {
    /// A daily series of scalar counters: closed days from month packs (packed here when
    /// missing or stale), open days by key. One BatchGetItem when the packs are fresh.
    async fn daily_scalars(
        &self,
        pk: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<RollupItem>, ReadError> {
        let plan = month_pack::plan(from, to, chrono::Utc::now());
        let key = |sk: String| {
            HashMap::from([
                ("pk".to_string(), AttributeValue::S(pk.to_string())),
                ("sk".to_string(), AttributeValue::S(sk)),
            ])
        };
        let keys: Vec<_> = plan
            .months
            .iter()
            .map(|(m, _, _)| key(month_pack::sort_key(m)))
            .chain(plan.open.iter().map(|d| key(month_pack::day_sk(*d))))
            .collect();
        // Packs' attributes and days' counters: one request reads both kinds of item.
        let mut wanted = scalar_projection();
        wanted.extend(["gen", "packed_gen", "through", "days"]);
        let (projection, names) = projected(&wanted);
        let mut found: HashMap<String, HashMap<String, AttributeValue>> = HashMap::new();
        for chunk in keys.chunks(100) {
            let request = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .projection_expression(&projection)
                .set_expression_attribute_names(Some(names.clone()))
                .build()
                .expect("keys are set");
            let items = crate::dynamo::batch_get_request(&self.client, &self.table, request)
                .await
                .map_err(read_error("reading a daily series"))?;
            for item in items {
                if let Some(sk) = crate::dynamo::string_attribute(&item, "sk") {
                    found.insert(sk, item);
                }
            }
        }
        let (from_sk, to_sk) = (month_pack::day_sk(from), month_pack::day_sk(to));
        let mut out = Vec::new();
        for (month, first, needed) in &plan.months {
            let pack = pack_from_item(found.get(&month_pack::sort_key(month)))?;
            let days = if pack.covers(*needed) {
                pack.days
            } else {
                self.repack(pk, month, *first, *needed, pack.gen).await?
            };
            out.extend(
                days.into_iter()
                    .filter(|(sk, _)| from_sk <= *sk && *sk <= to_sk)
                    .map(|(sk, counters)| RollupItem { sk, counters }),
            );
        }
        for day in &plan.open {
            if let Some(item) = found.get(&month_pack::day_sk(*day)) {
                out.push(RollupItem {
                    sk: month_pack::day_sk(*day),
                    counters: item_counters(item),
                });
            }
        }
        out.sort_by(|a, b| a.sk.cmp(&b.sk));
        Ok(out)
    }

    /// Reads a month's closed days (strongly consistent, after `gen` was read) and stores
    /// them as its pack, unless a closed day changed meanwhile (`gen` moved on).
    async fn repack(
        &self,
        pk: &str,
        month: &str,
        first: NaiveDate,
        through: NaiveDate,
        gen: i64,
    ) -> Result<Vec<(String, Counters)>, ReadError> {
        let scalars = scalar_projection();
        let (from_sk, to_sk) = (month_pack::day_sk(first), month_pack::day_sk(through));
        let items = self
            .query_all_read(
                "reading days to pack",
                "#pk = :pk AND #sk BETWEEN :from AND :to",
                &[(":pk", pk), (":from", &from_sk), (":to", &to_sk)],
                &scalars,
                true,
            )
            .await?;
        let days: Vec<(String, Counters)> = items
            .iter()
            .filter_map(|item| {
                Some((
                    crate::dynamo::string_attribute(item, "sk")?,
                    item_counters(item),
                ))
            })
            .collect();
        // A month without data is not packed: a read of a campaign that does not exist,
        // or of years before the tenant's first event, must not create items. (Reading
        // such a month again costs one Query of nothing.)
        if days.is_empty() {
            return Ok(days);
        }
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_string()))
            .key("sk", AttributeValue::S(month_pack::sort_key(month)))
            .update_expression("SET #days = :days, #through = :through, packed_gen = :gen")
            .expression_attribute_names("#days", "days")
            .expression_attribute_names("#through", "through")
            .expression_attribute_values(":days", AttributeValue::S(Pack::encode_days(&days)))
            .expression_attribute_values(
                ":through",
                AttributeValue::S(through.format("%Y-%m-%d").to_string()),
            )
            .expression_attribute_values(":gen", AttributeValue::N(gen.to_string()));
        let update = crate::dynamo::only_at_version(update, "gen", gen);
        // The days read are right either way; a pack not stored is packed next time.
        if let Err(e) = update.send().await {
            let moved_on = e
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception());
            if !moved_on {
                tracing::warn!(
                    pk,
                    month,
                    error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e),
                    "storing a month pack failed"
                );
            }
        }
        Ok(days)
    }
}

impl RollupReader for DynamoRollupReader {
    async fn rollups(
        &self,
        pk: &str,
        from_sk: &str,
        to_sk: &str,
        fields: Fields,
    ) -> Result<Vec<RollupItem>, ReadError> {
        // A daily series of a stats-sized range reads packs; anything wider (every day
        // there can be) is one Query.
        if let Some((from, to)) = packed_days(from_sk, to_sk, fields) {
            return self.daily_scalars(pk, from, to).await;
        }
        let projection = projection_of(fields);
        let projection: Vec<&str> = projection.iter().map(String::as_str).collect();
        let values = [(":pk", pk), (":from", from_sk), (":to", to_sk)];
        let (items, links) = tokio::join!(
            self.query_all(
                "reading rollups",
                "#pk = :pk AND #sk BETWEEN :from AND :to",
                &values,
                &projection,
            ),
            self.link_items(pk, from_sk, to_sk, fields),
        );
        let mut out = rollup_items(&items?);
        merge_link_items(&mut out, links?.iter().filter_map(link_item));
        Ok(out)
    }

    async fn latest_rollups(
        &self,
        pk: &str,
        from_sk: &str,
        to_sk: &str,
        fields: Fields,
        limit: usize,
    ) -> Result<Vec<RollupItem>, ReadError> {
        // DynamoDB refuses a BETWEEN whose bounds are the wrong way round.
        if from_sk > to_sk || limit == 0 {
            return Ok(Vec::new());
        }
        let projection = projection_of(fields);
        let projection: Vec<&str> = projection.iter().map(String::as_str).collect();
        let read = QueryShape {
            newest_first: true,
            limit: Some(limit),
            ..QueryShape::default()
        };
        let (items, _) = self
            .query(
                "reading the latest rollups",
                "#pk = :pk AND #sk BETWEEN :from AND :to",
                &[(":pk", pk), (":from", from_sk), (":to", to_sk)],
                &projection,
                read,
            )
            .await?;
        let mut out = rollup_items(&items);
        // The links of the periods read (newest first: the last is the oldest).
        if let Some(oldest) = out.last().map(|i| i.sk.clone()) {
            let links = self.link_items(pk, &oldest, to_sk, fields).await?;
            let periods: BTreeSet<String> = out.iter().map(|i| i.sk.clone()).collect();
            merge_link_items(
                &mut out,
                links.iter().filter_map(link_item).filter(|l| {
                    crate::rollup::split_link_sort_key(l.sk)
                        .is_some_and(|(period, _)| periods.contains(period))
                }),
            );
            out.reverse();
        }
        Ok(out)
    }

    async fn unique_members(&self, pk: &str) -> Result<Vec<String>, ReadError> {
        let items = self
            .query_all("reading unique sets", "#pk = :pk", &[(":pk", pk)], &["m"])
            .await?;
        Ok(items
            .into_iter()
            .filter_map(|mut item| match item.remove("m") {
                Some(AttributeValue::Ss(members)) => Some(members),
                _ => None,
            })
            .flatten()
            .collect())
    }

    async fn directory(&self, pk: &str, sk_prefix: &str) -> Result<Vec<DirectoryItem>, ReadError> {
        let items = if sk_prefix.is_empty() {
            self.query_all("reading the directory", "#pk = :pk", &[(":pk", pk)], &[])
                .await?
        } else {
            self.query_all(
                "reading the directory",
                "#pk = :pk AND begins_with(#sk, :prefix)",
                &[(":pk", pk), (":prefix", sk_prefix)],
                &[],
            )
            .await?
        };
        Ok(items
            .iter()
            .filter_map(|item| {
                Some(DirectoryItem {
                    sk: crate::dynamo::string_attribute(item, "sk")?,
                    last_seen: crate::dynamo::string_attribute(item, "last_seen"),
                })
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
        let limit = limit.clamp(1, MAX_DIRECTORY_PAGE);
        // One more than asked for tells whether more follow (a page the 1 MB limit cut
        // short says so by its LastEvaluatedKey).
        let read = QueryShape {
            limit: Some(limit + 1),
            one_page: true,
            ..QueryShape::default()
        };
        // DynamoDB starts after any key given, whether or not an item has it.
        let start = after.map(|sk| {
            HashMap::from([
                ("pk".to_string(), AttributeValue::S(pk.to_string())),
                ("sk".to_string(), AttributeValue::S(sk.to_string())),
            ])
        });
        let (items, more) = self
            .query(
                "reading the directory",
                "#pk = :pk AND begins_with(#sk, :prefix)",
                &[(":pk", pk), (":prefix", sk_prefix)],
                &[],
                QueryShape { start, ..read },
            )
            .await?;
        let mut items: Vec<DirectoryItem> = items
            .iter()
            .filter_map(|item| {
                Some(DirectoryItem {
                    sk: crate::dynamo::string_attribute(item, "sk")?,
                    last_seen: crate::dynamo::string_attribute(item, "last_seen"),
                })
            })
            .collect();
        let more = more || items.len() > limit;
        items.truncate(limit);
        Ok(DirectoryPage { items, more })
    }

    async fn directory_entry(
        &self,
        pk: &str,
        sk: &str,
    ) -> Result<Option<DirectoryItem>, ReadError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_string()))
            .key("sk", AttributeValue::S(sk.to_string()))
            .send()
            .await
            .map_err(read_error("reading the directory"))?;
        Ok(out.item.map(|item| DirectoryItem {
            sk: sk.to_string(),
            last_seen: crate::dynamo::string_attribute(&item, "last_seen"),
        }))
    }
}

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

    /// Adds members to a unique-set item.
    pub fn add_unique<'a>(&self, pk: &str, sk: &str, members: impl IntoIterator<Item = &'a str>) {
        self.uniques
            .lock()
            .unwrap()
            .entry((pk.to_string(), sk.to_string()))
            .or_default()
            .extend(members.into_iter().map(str::to_string));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::{
        count_unique, link_id, rollup_partition, unique_partition, Grain, UniqueKind,
    };
    use crate::{Event, EventType};

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

    /// What the DynamoDB writer stores for `c`, as attribute values.
    fn as_item(c: &Counters) -> HashMap<String, AttributeValue> {
        let mut item: HashMap<String, AttributeValue> = c
            .numeric_fields()
            .into_iter()
            .map(|(k, v)| (k, AttributeValue::N(v.to_string())))
            .collect();
        item.insert("pk".into(), AttributeValue::S("R#acme#D#c:spring".into()));
        item.insert("sk".into(), AttributeValue::S("D#2026-11-23".into()));
        item.insert("future_counter".into(), AttributeValue::N("7".into()));
        item.insert("note".into(), AttributeValue::S("ignored".into()));
        item
    }

    #[test]
    fn a_dynamodb_item_reads_back_as_the_counters_written() {
        let mut agg = Aggregate::default();
        let mut d = event(EventType::Delivered, "r1");
        d.duration_ms = Some(1200);
        d.cost = Some(0.25);
        let mut c = event(EventType::Clicked, "r1");
        c.link_url = Some("https://x.example/a".into());
        let mut v = event(EventType::Conversion, "r1");
        v.value = Some(12.5);
        for e in [&d, &c, &v] {
            agg.add(e);
        }
        let rollups = agg.rollups();
        let written = rollups
            .iter()
            .find(|(k, _)| matches!(k.scope, Scope::Campaign(_)))
            .unwrap()
            .1;
        let mut scalars = written.clone();
        scalars.links.clear();
        assert_eq!(
            item_counters(&as_item(written)),
            scalars,
            "links live apart"
        );
        assert_eq!(
            written.links[&link_id("https://x.example/a")].url,
            "https://x.example/a"
        );
        // A campaign item written before links had items of their own still reads back.
        let mut legacy = as_item(written);
        let id = link_id("https://x.example/a");
        legacy.insert(format!("lc_{id}_h"), AttributeValue::N("1".into()));
        legacy.insert(
            format!("lu_{id}"),
            AttributeValue::S("https://x.example/a".into()),
        );
        assert_eq!(&item_counters(&legacy), written);
        assert_eq!(number("12"), Some(12));
        assert_eq!(number("12.0"), Some(12));
        assert_eq!(number("x"), None);
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

/// The suppression list, engagement marks and segment snapshots live in the rollups
/// table: its readers read them too. `$check` runs before each call with its kind and
/// its most DynamoDB requests.
macro_rules! audience_through {
    ($reader:ty, $field:ident, $check:expr) => {
        impl AudienceReader for $reader {
            async fn suppressed(
                &self,
                tenant: &str,
                channel: &str,
                recipients: &[String],
            ) -> Result<HashMap<String, Entry>, AudienceError> {
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
            ) -> Result<Page<Entry>, AudienceError> {
                $check(self, "suppression page", cost::AUDIENCE_PAGE)?;
                self.$field
                    .suppression_page(tenant, channel, cursor, limit)
                    .await
            }

            async fn marks(&self, tenant: &str, recipient: &str) -> Result<Marks, AudienceError> {
                $check(self, "marks", cost::MARKS)?;
                self.$field.marks(tenant, recipient).await
            }

            async fn marks_page(
                &self,
                tenant: &str,
                cursor: Option<&str>,
                limit: usize,
            ) -> Result<Page<(String, Marks)>, AudienceError> {
                $check(self, "marks page", cost::MARKS_PAGE)?;
                self.$field.marks_page(tenant, cursor, limit).await
            }
        }

        impl SegmentSnapshots for $reader {
            async fn segment_snapshot(
                &self,
                tenant: &str,
                consistent: bool,
            ) -> Result<(SnapshotState, i64), AudienceError> {
                $check(self, "segment snapshot", cost::GET_ITEM)?;
                self.$field.segment_snapshot(tenant, consistent).await
            }

            async fn store_segment_snapshot(
                &self,
                tenant: &str,
                state: &SnapshotState,
                version: i64,
            ) -> Result<bool, AudienceError> {
                $check(self, "store segment snapshot", cost::UPDATE_ITEM)?;
                self.$field
                    .store_segment_snapshot(tenant, state, version)
                    .await
            }
        }
    };
}

audience_through!(DynamoRollupReader, audience, |_, _, _| Ok::<
    (),
    AudienceError,
>(()));
audience_through!(
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

/// Snapshots in memory, versioned like the table's.
impl SegmentSnapshots for Mutex<MemoryAudience> {
    async fn segment_snapshot(
        &self,
        tenant: &str,
        _consistent: bool,
    ) -> Result<(SnapshotState, i64), AudienceError> {
        let state = self.lock().unwrap();
        Ok(state
            .segment_snapshots
            .get(tenant)
            .cloned()
            .unwrap_or_default())
    }

    async fn store_segment_snapshot(
        &self,
        tenant: &str,
        snapshot: &SnapshotState,
        version: i64,
    ) -> Result<bool, AudienceError> {
        let mut state = self.lock().unwrap();
        let stored = state
            .segment_snapshots
            .entry(tenant.to_string())
            .or_default();
        if stored.1 != version {
            return Ok(false);
        }
        *stored = (snapshot.clone(), version + 1);
        Ok(true)
    }
}
