//! What the stats API answers, computed from rollup items alone (never from events):
//! the rates (each defined once, in [`Rates::new`]), the counts, latency, time series
//! with every period present, top links, channel breakdown, and the `from`/`to`/`grain`
//! parameters with the errors a caller sees.
//!
//! Unique human opens and clicks exist per campaign, over the campaign's whole life (the
//! unique sets are not split by time). So the rates that use them (open, click and
//! click-to-open) are given only for a campaign, and only when the range covers every
//! day the campaign has data for; everywhere else they are `null`.

use crate::rollup::{Counters, Grain, UniqueCounts};
use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::BTreeMap;
use thiserror::Error;

/// A range without `from` and `to` covers this many days, ending with the current
/// hour or day.
pub const DEFAULT_RANGE_DAYS: i64 = 30;
/// Longest range of an hourly series.
pub const MAX_HOUR_RANGE_DAYS: i64 = 31;
/// Longest range of a daily series (and of any range read from day items).
pub const MAX_DAY_RANGE_DAYS: i64 = 400;
pub const DEFAULT_LINK_LIMIT: usize = 20;
pub const MAX_LINK_LIMIT: usize = 500;
/// Campaigns per page of `GET /v1/campaigns` by default, and at most.
pub const DEFAULT_CAMPAIGN_PAGE: usize = 100;
pub const MAX_CAMPAIGN_PAGE: usize = 1000;
/// Channel/provider pairs per page of `GET /v1/channels` by default, and at most: each
/// is a read of its own.
pub const DEFAULT_CHANNEL_PAGE: usize = 20;
pub const MAX_CHANNEL_PAGE: usize = 50;

/// `numerator / denominator`, or `None` when the denominator is 0.
pub fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator != 0).then(|| numerator as f64 / denominator as f64)
}

/// Micro-units to a decimal amount.
pub fn decimal(micros: i64) -> f64 {
    micros as f64 / 1_000_000.0
}

/// Unique human openers and clickers of a campaign (whole life), from its unique sets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Uniques {
    pub opens_human: u64,
    pub clicks_human: u64,
}

impl Uniques {
    pub fn new(opens: &UniqueCounts, clicks: &UniqueCounts) -> Self {
        Uniques {
            opens_human: opens.recipients,
            clicks_human: clicks.recipients,
        }
    }
}

/// Every rate the API reports, as a fraction (0.25 is 25%), `null` when its
/// denominator is 0. Rates are not clamped: a click-to-open rate above 1 means people
/// clicked without loading images. The definitions live here and nowhere else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Rates {
    /// delivered / sent
    pub delivery_rate: Option<f64>,
    /// unique human opens / delivered
    pub open_rate: Option<f64>,
    /// unique human clicks / delivered
    pub click_rate: Option<f64>,
    /// unique human clicks / unique human opens
    pub click_to_open_rate: Option<f64>,
    /// (bounced_hard + bounced_soft) / sent
    pub bounce_rate: Option<f64>,
    /// complained / delivered
    pub complaint_rate: Option<f64>,
    /// unsubscribed / delivered
    pub unsubscribe_rate: Option<f64>,
}

impl Rates {
    /// The rates of `c`. Without `uniques` (channels, time series points, or a range
    /// that does not cover the campaign) the open, click and click-to-open rates are
    /// `None`.
    pub fn new(c: &Counters, uniques: Option<Uniques>) -> Rates {
        Rates {
            delivery_rate: ratio(c.delivered, c.sent),
            open_rate: uniques.and_then(|u| ratio(u.opens_human, c.delivered)),
            click_rate: uniques.and_then(|u| ratio(u.clicks_human, c.delivered)),
            click_to_open_rate: uniques.and_then(|u| ratio(u.clicks_human, u.opens_human)),
            bounce_rate: ratio(c.bounced_hard + c.bounced_soft, c.sent),
            complaint_rate: ratio(c.complained, c.delivered),
            unsubscribe_rate: ratio(c.unsubscribed, c.delivered),
        }
    }
}

/// The type a view gives a counter of each kind.
macro_rules! shown_type {
    (Count) => {
        u64
    };
    (Money) => {
        f64
    };
}

macro_rules! declare_counts {
    (
        shown: [$($variant:ident $field:ident: $ty:ty => $label:literal, $kind:ident $key:ident;)*]
        api_only: [$($avariant:ident $afield:ident: $aty:ty => $alabel:literal, $akind:ident $akey:ident;)*]
        internal: [$($ivariant:ident $ifield:ident: $ity:ty;)*]
    ) => {
        /// The counts of rollup items, as the API shows them: every shown counter of
        /// [`crate::rollup::counters`] under its key (money as decimals), and `bounced`.
        #[derive(Debug, Clone, Default, PartialEq, Serialize)]
        pub struct Counts {
            $(pub $key: shown_type!($kind),)*
            $(pub $akey: shown_type!($akind),)*
            /// bounced_hard + bounced_soft
            pub bounced: u64,
        }

        impl Counts {
            pub fn new(c: &Counters) -> Counts {
                Counts {
                    $($key: shown_value!($kind, c.$field),)*
                    $($akey: shown_value!($akind, c.$afield),)*
                    bounced: c.bounced_hard + c.bounced_soft,
                }
            }
        }
    };
}

/// A counter's value as a view shows it.
macro_rules! shown_value {
    (Count, $v:expr) => {
        $v
    };
    (Money, $v:expr) => {
        decimal($v)
    };
}

crate::counter_list!(declare_counts);

/// Delivery latency (from `duration_ms` of delivered events). Percentiles are the
/// upper bound of their histogram bucket (within 19% of the true value).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub avg_ms: Option<f64>,
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    pub p99_ms: Option<u64>,
}

impl Latency {
    pub fn new(c: &Counters) -> Latency {
        Latency {
            count: c.latency_count,
            avg_ms: ratio(c.latency_sum_ms, c.latency_count),
            p50_ms: c.latency_percentile(50.0),
            p95_ms: c.latency_percentile(95.0),
            p99_ms: c.latency_percentile(99.0),
        }
    }
}

/// A query parameter the API refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct ParamError {
    pub param: String,
    pub message: String,
}

impl ParamError {
    pub fn new(param: &str, message: impl Into<String>) -> Self {
        ParamError {
            param: param.to_string(),
            message: message.into(),
        }
    }
}

/// `grain`: `hour` or `day` (the default).
pub fn parse_grain(value: Option<&str>) -> Result<Grain, ParamError> {
    match value {
        None | Some("day") => Ok(Grain::Day),
        Some("hour") => Ok(Grain::Hour),
        Some(other) => Err(ParamError::new(
            "grain",
            format!("`grain` must be `hour` or `day`, not `{other}`"),
        )),
    }
}

pub fn grain_name(grain: Grain) -> &'static str {
    match grain {
        Grain::Hour => "hour",
        Grain::Day => "day",
    }
}

/// `limit` of top links: 1 to [`MAX_LINK_LIMIT`], default [`DEFAULT_LINK_LIMIT`].
pub fn parse_limit(value: Option<&str>) -> Result<usize, ParamError> {
    parse_limit_within(value, DEFAULT_LINK_LIMIT, MAX_LINK_LIMIT)
}

/// A `limit` parameter: 1 to `max`, `default` without one.
pub fn parse_limit_within(
    value: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, ParamError> {
    let Some(value) = value else {
        return Ok(default);
    };
    match value.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ParamError::new(
            "limit",
            format!("`limit` must be a whole number from 1 to {max}, not `{value}`"),
        )),
    }
}

fn step(grain: Grain) -> Duration {
    match grain {
        Grain::Hour => Duration::hours(1),
        Grain::Day => Duration::days(1),
    }
}

/// The start of the hour or UTC day holding `t`.
pub fn floor(t: DateTime<Utc>, grain: Grain) -> DateTime<Utc> {
    let secs = step(grain).num_seconds();
    DateTime::from_timestamp(t.timestamp().div_euclid(secs) * secs, 0).expect("in range")
}

/// The first period boundary at or after `t`.
pub fn ceil(t: DateTime<Utc>, grain: Grain) -> DateTime<Utc> {
    let f = floor(t, grain);
    if f == t {
        f
    } else {
        f + step(grain)
    }
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

enum Bound {
    Date(NaiveDate),
    Instant(DateTime<Utc>),
}

fn parse_bound(param: &str, value: &str) -> Result<Bound, ParamError> {
    if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        if value.len() == 10 {
            return Ok(Bound::Date(date));
        }
    }
    // A `+` of an offset arrives as a space when the client did not encode it.
    let repaired = value.replace(' ', "+");
    DateTime::parse_from_rfc3339(&repaired)
        .map(|t| Bound::Instant(t.with_timezone(&Utc)))
        .map_err(|_| {
            ParamError::new(
                param,
                format!(
                    "`{param}` must be a date (YYYY-MM-DD) or an RFC 3339 time (2026-11-23T10:00:00Z), not `{value}`"
                ),
            )
        })
}

/// A half-open time range `[from, to)` whose ends are whole periods of its grain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub grain: Grain,
}

impl Range {
    /// Reads `from` and `to` (each a date `YYYY-MM-DD` or an RFC 3339 time).
    ///
    /// A date as `from` starts at its UTC midnight; a date as `to` includes that whole
    /// day. A time as `from` is rounded down, as `to` up, to whole hours or UTC days
    /// (`to` is exclusive). Without `to` the range ends with the current period;
    /// without `from` it starts [`DEFAULT_RANGE_DAYS`] before `to`. Hourly ranges may
    /// span [`MAX_HOUR_RANGE_DAYS`], daily ones [`MAX_DAY_RANGE_DAYS`].
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        grain: Grain,
        now: DateTime<Utc>,
    ) -> Result<Range, ParamError> {
        let to = match to.map(|v| parse_bound("to", v)).transpose()? {
            None => floor(now, grain) + step(grain),
            Some(Bound::Date(d)) => ceil(
                d.and_hms_opt(0, 0, 0).expect("midnight").and_utc() + Duration::days(1),
                grain,
            ),
            Some(Bound::Instant(t)) => ceil(t, grain),
        };
        let from = match from.map(|v| parse_bound("from", v)).transpose()? {
            None => to - Duration::days(DEFAULT_RANGE_DAYS),
            Some(Bound::Date(d)) => d.and_hms_opt(0, 0, 0).expect("midnight").and_utc(),
            Some(Bound::Instant(t)) => floor(t, grain),
        };
        let from = floor(from, grain);
        if from >= to {
            return Err(ParamError::new(
                "to",
                format!(
                    "`to` ({}) must be after `from` ({})",
                    rfc3339(to),
                    rfc3339(from)
                ),
            ));
        }
        let max_days = match grain {
            Grain::Hour => MAX_HOUR_RANGE_DAYS,
            Grain::Day => MAX_DAY_RANGE_DAYS,
        };
        if to - from > Duration::days(max_days) {
            return Err(ParamError::new(
                "from",
                format!(
                    "the range from {} to {} is {} days; {} series cover at most {max_days} days",
                    rfc3339(from),
                    rfc3339(to),
                    (to - from).num_hours() as f64 / 24.0,
                    grain_name(grain)
                ),
            ));
        }
        Ok(Range { from, to, grain })
    }

    /// The start of every period in the range, in order.
    pub fn periods(&self) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = self.from;
        while t < self.to {
            out.push(t);
            t += step(self.grain);
        }
        out
    }

    /// Sort keys of the first and the last period (both inclusive, for `BETWEEN`).
    pub fn sort_keys(&self) -> (String, String) {
        (
            self.grain.sort_key(self.from),
            self.grain.sort_key(self.to - step(self.grain)),
        )
    }

    pub fn contains_sort_key(&self, sk: &str) -> bool {
        let (first, last) = self.sort_keys();
        first.as_str() <= sk && sk <= last.as_str()
    }
}

/// Sort keys of every day item there can be.
pub const ALL_DAYS: (&str, &str) = ("D#0000-01-01", "D#9999-12-31");

/// The day items of a campaign added up over a range (or over its whole life).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    pub counters: Counters,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// No day with data lies outside the range, so the campaign's unique counts
    /// (whole life) belong to this range too.
    pub covers_campaign: bool,
}

/// Adds up the day items (`D#YYYY-MM-DD`, all of a campaign's) that fall in `range`,
/// or all of them without one.
pub fn select_days<'a>(
    items: impl IntoIterator<Item = (&'a str, &'a Counters)>,
    range: Option<&Range>,
) -> Selection {
    let mut sel = Selection {
        covers_campaign: true,
        from: range.map(|r| r.from),
        to: range.map(|r| r.to),
        ..Default::default()
    };
    let mut first: Option<NaiveDate> = None;
    let mut last: Option<NaiveDate> = None;
    for (sk, counters) in items {
        let Some(day) = sk
            .strip_prefix("D#")
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        else {
            continue;
        };
        match range {
            Some(r) if !r.contains_sort_key(sk) => sel.covers_campaign = false,
            _ => {
                sel.counters.merge(counters);
                first = Some(first.map_or(day, |f| f.min(day)));
                last = Some(last.map_or(day, |l| l.max(day)));
            }
        }
    }
    if range.is_none() {
        sel.from = first.map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
        sel.to =
            last.map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc() + Duration::days(1));
    }
    sel
}

/// A campaign's numbers over a range: `GET /v1/campaigns/{campaign}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overview {
    pub campaign_id: String,
    /// Start of the range (UTC midnight); the first day with data when no range was given.
    pub from: Option<String>,
    /// End of the range (exclusive).
    pub to: Option<String>,
    /// Whether the range holds every day the campaign has data for: only then are
    /// the open, click and click-to-open rates given.
    pub range_covers_campaign: bool,
    pub counts: Counts,
    /// Unique human openers and clickers over the campaign's whole life.
    pub unique: Uniques,
    pub latency: Latency,
    pub rates: Rates,
    /// Machine opens and bot clicks by the reason of their verdict
    /// ([`crate::verdict::MACHINE_REASONS`]), only reasons with a count.
    pub machine_opens_by_reason: BTreeMap<&'static str, u64>,
    pub bot_clicks_by_reason: BTreeMap<&'static str, u64>,
}

impl Overview {
    pub fn new(campaign_id: &str, sel: &Selection, unique: Uniques) -> Overview {
        Overview {
            campaign_id: campaign_id.to_string(),
            from: sel.from.map(rfc3339),
            to: sel.to.map(rfc3339),
            range_covers_campaign: sel.covers_campaign,
            counts: Counts::new(&sel.counters),
            unique,
            latency: Latency::new(&sel.counters),
            rates: Rates::new(&sel.counters, sel.covers_campaign.then_some(unique)),
            machine_opens_by_reason: nonzero(&sel.counters.open_reasons),
            bot_clicks_by_reason: nonzero(&sel.counters.click_reasons),
        }
    }
}

fn nonzero(m: &BTreeMap<&'static str, u64>) -> BTreeMap<&'static str, u64> {
    m.iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| (*r, *n))
        .collect()
}

/// One period of a series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// The period's start (UTC).
    pub start: String,
    pub counts: Counts,
    /// Rates of the period (open, click and click-to-open are always `null` here).
    pub rates: Rates,
}

/// `GET /v1/timeseries` and `GET /v1/campaigns/{campaign}/timeseries`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    pub grain: &'static str,
    pub from: String,
    pub to: String,
    /// One per period of the range, in order; periods without data are zeros.
    pub points: Vec<Point>,
    pub totals: Counts,
    pub rates: Rates,
}

impl Series {
    /// The series of `range` from rollup items of its grain (`H#...` or `D#...`);
    /// items outside the range are ignored.
    pub fn new<'a>(
        campaign_id: Option<&str>,
        range: &Range,
        items: impl IntoIterator<Item = (&'a str, &'a Counters)>,
    ) -> Series {
        let mut by_period: BTreeMap<&str, Counters> = BTreeMap::new();
        for (sk, c) in items {
            by_period.entry(sk).or_default().merge(c);
        }
        let mut totals = Counters::default();
        let zero = Counters::default();
        let points = range
            .periods()
            .into_iter()
            .map(|start| {
                let c = by_period
                    .get(range.grain.sort_key(start).as_str())
                    .unwrap_or(&zero);
                totals.merge(c);
                Point {
                    start: rfc3339(start),
                    counts: Counts::new(c),
                    rates: Rates::new(c, None),
                }
            })
            .collect();
        Series {
            campaign_id: campaign_id.map(str::to_string),
            grain: grain_name(range.grain),
            from: rfc3339(range.from),
            to: rfc3339(range.to),
            points,
            totals: Counts::new(&totals),
            rates: Rates::new(&totals, None),
        }
    }
}

/// One link of a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkStats {
    pub link_id: String,
    pub url: String,
    pub clicks_human: u64,
    pub clicks_bot: u64,
    /// Distinct people who clicked it, over the campaign's whole life.
    pub unique_clickers_human: u64,
}

/// `GET /v1/campaigns/{campaign}/links`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopLinks {
    pub campaign_id: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub range_covers_campaign: bool,
    /// Links clicked in the range, before `limit`.
    pub links_total: usize,
    /// Most human clicks first (then most unique clickers, most bot clicks, URL).
    pub links: Vec<LinkStats>,
}

impl TopLinks {
    pub fn new(campaign_id: &str, sel: &Selection, clicks: &UniqueCounts, limit: usize) -> Self {
        let mut links: Vec<LinkStats> = sel
            .counters
            .links
            .iter()
            .filter(|(_, l)| l.human + l.bot > 0)
            .map(|(id, l)| LinkStats {
                link_id: id.clone(),
                url: l.url.clone(),
                clicks_human: l.human,
                clicks_bot: l.bot,
                unique_clickers_human: clicks.per_link.get(id).copied().unwrap_or(0),
            })
            .collect();
        links.sort_by(|a, b| {
            (
                Reverse(a.clicks_human),
                Reverse(a.unique_clickers_human),
                Reverse(a.clicks_bot),
                &a.url,
                &a.link_id,
            )
                .cmp(&(
                    Reverse(b.clicks_human),
                    Reverse(b.unique_clickers_human),
                    Reverse(b.clicks_bot),
                    &b.url,
                    &b.link_id,
                ))
        });
        let links_total = links.len();
        links.truncate(limit);
        TopLinks {
            campaign_id: campaign_id.to_string(),
            from: sel.from.map(rfc3339),
            to: sel.to.map(rfc3339),
            range_covers_campaign: sel.covers_campaign,
            links_total,
            links,
        }
    }
}

/// One channel/provider over a range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelStats {
    pub channel: String,
    /// `null` for events that named no provider.
    pub provider: Option<String>,
    pub last_seen: Option<String>,
    pub counts: Counts,
    pub latency: Latency,
    /// Open, click and click-to-open are always `null` here (uniques are per campaign).
    pub rates: Rates,
}

impl ChannelStats {
    pub fn new(channel: &str, provider: &str, last_seen: Option<String>, c: &Counters) -> Self {
        ChannelStats {
            channel: channel.to_string(),
            provider: (provider != "-").then(|| provider.to_string()),
            last_seen,
            counts: Counts::new(c),
            latency: Latency::new(c),
            rates: Rates::new(c, None),
        }
    }
}

/// `GET /v1/channels`: a page of the tenant's channel/provider pairs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Channels {
    pub from: String,
    pub to: String,
    /// By channel, then provider (as the directory keeps them).
    pub channels: Vec<ChannelStats>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl Channels {
    pub fn new(range: &Range, channels: Vec<ChannelStats>, next_cursor: Option<String>) -> Self {
        Channels {
            from: rfc3339(range.from),
            to: rfc3339(range.to),
            channels,
            next_cursor,
        }
    }
}

/// Channel items one read of a campaign's breakdown takes at most: scalar counters,
/// each item under 500 bytes, so two 1 MB Query pages.
pub const MAX_CAMPAIGN_CHANNEL_ITEMS: usize = 4_000;

/// One channel and provider of a campaign over whole UTC days.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignChannel {
    pub channel: String,
    /// `null` for events that named no provider.
    pub provider: Option<String>,
    pub counts: Counts,
    /// Open, click and click-to-open are always `null` here (uniques are per campaign).
    pub rates: Rates,
}

/// `GET /v1/campaigns/{campaign}/channels`: the campaign's numbers per channel and
/// provider, added up over a range of days (or its whole life).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignChannels {
    pub campaign_id: String,
    /// The days added up; `null` when nothing was sent through a named channel.
    pub from: Option<String>,
    pub to: Option<String>,
    /// The campaign has more channel items in the range than one request reads
    /// ([`MAX_CAMPAIGN_CHANNEL_ITEMS`]): the days before `from` were left out (ask for
    /// them with `to`).
    pub truncated: bool,
    /// By channel, then provider.
    pub channels: Vec<CampaignChannel>,
}

impl CampaignChannels {
    /// From the campaign's channel items (sort keys from
    /// [`crate::rollup::campaign_channel_sort_key`]) read latest first, at most `limit`
    /// of them, within `range` if one was asked for. When the read stopped at `limit`
    /// its earliest day may be partial, so that day is left out and `truncated` set.
    pub fn new<'a>(
        campaign: &str,
        items: impl IntoIterator<Item = (&'a str, &'a Counters)>,
        range: Option<&Range>,
        limit: usize,
    ) -> Self {
        let items: Vec<(NaiveDate, &str, &str, &Counters)> = items
            .into_iter()
            .filter_map(|(sk, c)| {
                let (day, channel, provider) = crate::rollup::parse_campaign_channel(sk)?;
                Some((day, channel, provider, c))
            })
            .collect();
        let truncated = items.len() >= limit;
        let cut = truncated.then(|| items.iter().map(|i| i.0).min()).flatten();
        let mut pairs: BTreeMap<(&str, &str), Counters> = BTreeMap::new();
        let (mut first, mut last): (Option<NaiveDate>, Option<NaiveDate>) = (None, None);
        for (day, channel, provider, c) in items {
            if cut.is_some_and(|cut| day <= cut) {
                continue;
            }
            pairs.entry((channel, provider)).or_default().merge(c);
            first = Some(first.map_or(day, |f| f.min(day)));
            last = Some(last.map_or(day, |l| l.max(day)));
        }
        let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        let (from, to) = match (range, cut) {
            (Some(r), None) => (Some(r.from), Some(r.to)),
            (Some(r), Some(cut)) => (Some(midnight(cut + Duration::days(1))), Some(r.to)),
            (None, _) => (
                first.map(midnight),
                last.map(|l| midnight(l + Duration::days(1))),
            ),
        };
        CampaignChannels {
            campaign_id: campaign.to_string(),
            from: from.map(rfc3339),
            to: to.map(rfc3339),
            truncated,
            channels: pairs
                .into_iter()
                .map(|((channel, provider), c)| CampaignChannel {
                    channel: channel.to_string(),
                    provider: (provider != "-").then(|| provider.to_string()),
                    counts: Counts::new(&c),
                    rates: Rates::new(&c, None),
                })
                .collect(),
        }
    }
}

/// Messages a recipient lookup shows by default, and at most.
pub const DEFAULT_RECENT_MESSAGES: usize = 10;
pub const MAX_RECENT_MESSAGES: usize = 25;

/// One open or click of a message, with the verdict it is counted under now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HitView {
    pub at: String,
    /// `open` or `click`.
    pub kind: &'static str,
    /// The clicked link's id (64 bits of SHA-256 of its URL, as the link items name it).
    pub link: Option<String>,
    /// A click on the invisible honeypot link.
    pub honeypot: bool,
    /// Counted as a machine open or a bot click.
    pub machine: bool,
    /// Why: a machine reason ([`crate::verdict::MACHINE_REASONS`]), or what made the
    /// request a person's (`default`, `gmail_image_proxy`, ...).
    pub reason: String,
}

/// One of a recipient's messages with its opens and clicks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecentMessage {
    pub message_id: String,
    pub campaign_id: Option<String>,
    pub delivered_at: Option<String>,
    /// In time order.
    pub hits: Vec<HitView>,
}

/// `GET /v1/recipients/{recipient}/messages`: the recipient's messages that were opened
/// or clicked, the most recently first opened first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientMessages {
    pub recipient_id: String,
    pub messages: Vec<RecentMessage>,
}

impl RecipientMessages {
    /// From the messages' trails, newest first as read.
    pub fn new(recipient: &str, trails: &[(String, crate::verdict::trail::Trail)]) -> Self {
        use crate::verdict::trail::{is_honeypot, HitKind};
        let time = |ms: i64| DateTime::from_timestamp_millis(ms).map(rfc3339);
        RecipientMessages {
            recipient_id: recipient.to_string(),
            messages: trails
                .iter()
                .map(|(message, trail)| {
                    let mut hits: Vec<_> = trail.hits.iter().collect();
                    hits.sort_by_key(|h| h.at_ms);
                    RecentMessage {
                        message_id: message.clone(),
                        campaign_id: hits.iter().find_map(|h| h.campaign.clone()),
                        delivered_at: trail.delivered_ms.and_then(time),
                        hits: hits
                            .into_iter()
                            .map(|h| HitView {
                                at: time(h.at_ms).unwrap_or_default(),
                                kind: match h.kind {
                                    HitKind::Open => "open",
                                    HitKind::Click => "click",
                                },
                                link: h.link.clone(),
                                honeypot: h.url.as_deref().is_some_and(is_honeypot),
                                machine: h.machine,
                                reason: h.reason.clone(),
                            })
                            .collect(),
                    }
                })
                .collect(),
        }
    }
}

/// One of the tenant's campaigns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignEntry {
    pub campaign_id: String,
    /// Time of the latest event of the last batch that touched the campaign.
    pub last_seen: Option<String>,
}

/// `GET /v1/campaigns`: a page of the tenant's campaigns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Campaigns {
    /// By campaign id (as the directory keeps them).
    pub campaigns: Vec<CampaignEntry>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn counters(f: impl FnOnce(&mut Counters)) -> Counters {
        let mut c = Counters::default();
        f(&mut c);
        c
    }

    #[test]
    fn a_campaign_adds_up_per_channel_and_leaves_out_a_partial_day() {
        let sent = |n| counters(|c| c.sent = n);
        let (a, b, c, d) = (sent(10), sent(5), sent(7), sent(1));
        // Latest first, as read.
        let items = [
            ("D#2026-11-24#sms:-", &d),
            ("D#2026-11-24#email:ses", &c),
            ("D#2026-11-23#email:ses", &b),
            ("D#2026-11-22#email:ses", &a),
            ("D#2026-11-22", &a), // not a channel item
        ];
        let all = CampaignChannels::new("spring", items, None, 100);
        assert!(!all.truncated);
        assert_eq!(
            (all.from.as_deref(), all.to.as_deref()),
            (Some("2026-11-22T00:00:00Z"), Some("2026-11-25T00:00:00Z"))
        );
        let got: Vec<_> = all
            .channels
            .iter()
            .map(|c| (c.channel.as_str(), c.provider.as_deref(), c.counts.sent))
            .collect();
        assert_eq!(got, [("email", Some("ses"), 22), ("sms", None, 1)]);
        // The read stopped at its limit: the earliest day read may lack pairs.
        let cut = CampaignChannels::new("spring", items, None, 4);
        assert!(cut.truncated);
        assert_eq!(cut.from.as_deref(), Some("2026-11-23T00:00:00Z"));
        assert_eq!(cut.channels[0].counts.sent, 12);
        let range = Range {
            from: at("2026-11-20T00:00:00Z"),
            to: at("2026-11-25T00:00:00Z"),
            grain: Grain::Day,
        };
        let asked = CampaignChannels::new("spring", items, Some(&range), 100);
        assert_eq!(asked.from.as_deref(), Some("2026-11-20T00:00:00Z"));
        let none = CampaignChannels::new("spring", [], None, 100);
        assert_eq!((none.from, none.channels.len()), (None, 0));
    }

    const U: Uniques = Uniques {
        opens_human: 40,
        clicks_human: 10,
    };

    #[test]
    fn delivery_rate_is_delivered_over_sent() {
        let c = counters(|c| {
            c.sent = 200;
            c.delivered = 190;
        });
        assert_eq!(Rates::new(&c, None).delivery_rate, Some(0.95));
        assert_eq!(Rates::new(&Counters::default(), None).delivery_rate, None);
    }

    #[test]
    fn open_rate_is_unique_human_opens_over_delivered() {
        let c = counters(|c| {
            c.delivered = 100;
            c.opens_human = 999; // every open, not people: not used
            c.opens_machine = 50;
        });
        assert_eq!(Rates::new(&c, Some(U)).open_rate, Some(0.4));
        assert_eq!(Rates::new(&c, None).open_rate, None, "no uniques, no rate");
        assert_eq!(Rates::new(&Counters::default(), Some(U)).open_rate, None);
    }

    #[test]
    fn click_rate_is_unique_human_clicks_over_delivered() {
        let c = counters(|c| {
            c.delivered = 100;
            c.clicks_human = 70;
            c.clicks_bot = 30;
        });
        assert_eq!(Rates::new(&c, Some(U)).click_rate, Some(0.1));
        assert_eq!(Rates::new(&Counters::default(), Some(U)).click_rate, None);
    }

    #[test]
    fn click_to_open_rate_is_unique_clicks_over_unique_opens() {
        let c = counters(|c| c.delivered = 100);
        assert_eq!(Rates::new(&c, Some(U)).click_to_open_rate, Some(0.25));
        let no_opens = Uniques {
            opens_human: 0,
            clicks_human: 3,
        };
        assert_eq!(Rates::new(&c, Some(no_opens)).click_to_open_rate, None);
        let images_off = Uniques {
            opens_human: 2,
            clicks_human: 3,
        };
        assert_eq!(
            Rates::new(&c, Some(images_off)).click_to_open_rate,
            Some(1.5),
            "not clamped"
        );
    }

    #[test]
    fn bounce_rate_counts_hard_and_soft_over_sent() {
        let c = counters(|c| {
            c.sent = 50;
            c.bounced_hard = 3;
            c.bounced_soft = 2;
        });
        assert_eq!(Rates::new(&c, None).bounce_rate, Some(0.1));
        let c = counters(|c| c.bounced_hard = 3);
        assert_eq!(
            Rates::new(&c, None).bounce_rate,
            None,
            "bounces, nothing sent"
        );
    }

    #[test]
    fn complaint_and_unsubscribe_rates_are_over_delivered() {
        let c = counters(|c| {
            c.sent = 1000;
            c.delivered = 800;
            c.complained = 2;
            c.unsubscribed = 8;
        });
        let r = Rates::new(&c, None);
        assert_eq!(r.complaint_rate, Some(0.0025));
        assert_eq!(r.unsubscribe_rate, Some(0.01));
        let c = counters(|c| {
            c.sent = 10;
            c.complained = 1;
            c.unsubscribed = 1;
        });
        let r = Rates::new(&c, None);
        assert_eq!((r.complaint_rate, r.unsubscribe_rate), (None, None));
    }

    #[test]
    fn all_zero_means_all_null() {
        let r = Rates::new(&Counters::default(), Some(Uniques::default()));
        assert_eq!(r, Rates::default());
        let json = serde_json::to_value(r).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 7);
        assert!(json.as_object().unwrap().values().all(|v| v.is_null()));
    }

    #[test]
    fn counts_show_money_as_decimals_and_latency_from_the_histogram() {
        let mut c = counters(|c| {
            c.conversion_value_micros = 19_990_000;
            c.cost_micros = 100;
            c.bounced_hard = 1;
            c.bounced_soft = 2;
        });
        for ms in [100, 200, 300, 400] {
            c.latency_count += 1;
            c.latency_sum_ms += ms;
            *c.latency_hist
                .entry(crate::rollup::latency_bucket(ms as i64))
                .or_default() += 1;
        }
        let counts = Counts::new(&c);
        assert_eq!(
            (counts.conversion_value, counts.cost, counts.bounced),
            (19.99, 0.0001, 3)
        );
        let l = Latency::new(&c);
        assert_eq!((l.count, l.avg_ms), (4, Some(250.0)));
        assert!((200..=240).contains(&l.p50_ms.unwrap()), "{l:?}");
        assert!((400..=480).contains(&l.p99_ms.unwrap()), "{l:?}");
        assert_eq!(Latency::new(&Counters::default()), Latency::default());
    }

    #[test]
    fn default_range_is_the_last_30_days_through_the_current_period() {
        let now = at("2026-11-23T10:15:00Z");
        let r = Range::parse(None, None, Grain::Day, now).unwrap();
        assert_eq!(
            (r.from, r.to),
            (at("2026-10-25T00:00:00Z"), at("2026-11-24T00:00:00Z"))
        );
        assert_eq!(r.periods().len(), 30);
        let r = Range::parse(None, None, Grain::Hour, now).unwrap();
        assert_eq!(r.to, at("2026-11-23T11:00:00Z"));
        assert_eq!(r.periods().len(), 720);
        assert_eq!(
            r.sort_keys(),
            ("H#2026-10-24T11".to_string(), "H#2026-11-23T10".to_string())
        );
        // Exactly on a boundary, the current period is the one starting now.
        let r = Range::parse(None, None, Grain::Hour, at("2026-11-23T10:00:00Z")).unwrap();
        assert_eq!(r.to, at("2026-11-23T11:00:00Z"));
    }

    #[test]
    fn dates_include_the_whole_day_and_times_round_outwards() {
        let now = at("2026-12-01T00:00:00Z");
        let r = Range::parse(Some("2026-11-01"), Some("2026-11-30"), Grain::Day, now).unwrap();
        assert_eq!(
            (r.from, r.to),
            (at("2026-11-01T00:00:00Z"), at("2026-12-01T00:00:00Z"))
        );
        assert_eq!(r.periods().len(), 30);
        let r = Range::parse(
            Some("2026-11-23T10:30:00Z"),
            Some("2026-11-23T12:00:00Z"),
            Grain::Hour,
            now,
        )
        .unwrap();
        assert_eq!(
            (r.from, r.to),
            (at("2026-11-23T10:00:00Z"), at("2026-11-23T12:00:00Z"))
        );
        // A local day in UTC+02:00, as hours; the unencoded `+` arrives as a space.
        let r = Range::parse(
            Some("2026-11-23T00:00:00 02:00"),
            Some("2026-11-24T00:00:00+02:00"),
            Grain::Hour,
            now,
        )
        .unwrap();
        assert_eq!(
            (r.from, r.to),
            (at("2026-11-22T22:00:00Z"), at("2026-11-23T22:00:00Z"))
        );
        assert_eq!(r.periods().len(), 24);
        // Only `from`: through the current period.
        let r = Range::parse(Some("2026-11-20"), None, Grain::Day, now).unwrap();
        assert_eq!(r.to, at("2026-12-02T00:00:00Z"));
    }

    #[test]
    fn bad_ranges_name_the_parameter() {
        let now = at("2026-11-23T10:15:00Z");
        let err = Range::parse(Some("yesterday"), None, Grain::Day, now).unwrap_err();
        assert_eq!(err.param, "from");
        assert!(err.message.contains("YYYY-MM-DD"), "{err}");
        let err = Range::parse(None, Some("2026-13-01"), Grain::Day, now).unwrap_err();
        assert_eq!(err.param, "to");
        let err =
            Range::parse(Some("2026-11-10"), Some("2026-11-01"), Grain::Day, now).unwrap_err();
        assert_eq!(err.param, "to");
        assert!(err.message.contains("after"), "{err}");
        let err =
            Range::parse(Some("2026-10-01"), Some("2026-11-10"), Grain::Hour, now).unwrap_err();
        assert_eq!(err.param, "from");
        assert!(err.message.contains("at most 31 days"), "{err}");
        assert!(Range::parse(Some("2026-10-24"), Some("2026-11-23"), Grain::Hour, now).is_ok());
        let err =
            Range::parse(Some("2025-01-01"), Some("2026-11-10"), Grain::Day, now).unwrap_err();
        assert!(err.message.contains("at most 400 days"), "{err}");
        assert!(Range::parse(Some("2025-11-01"), Some("2026-11-10"), Grain::Day, now).is_ok());
        assert_eq!(parse_grain(Some("week")).unwrap_err().param, "grain");
        assert_eq!(parse_grain(None).unwrap(), Grain::Day);
        assert_eq!(parse_limit(None).unwrap(), 20);
        assert_eq!(parse_limit(Some("500")).unwrap(), 500);
        for bad in ["0", "501", "-1", "ten"] {
            assert_eq!(parse_limit(Some(bad)).unwrap_err().param, "limit", "{bad}");
        }
    }

    #[test]
    fn series_fill_missing_periods_with_zeros() {
        let r = Range::parse(
            Some("2026-11-23T08:00:00Z"),
            Some("2026-11-23T12:00:00Z"),
            Grain::Hour,
            at("2026-11-24T00:00:00Z"),
        )
        .unwrap();
        let a = counters(|c| {
            c.sent = 5;
            c.delivered = 4;
        });
        let b = counters(|c| c.sent = 1);
        let outside = counters(|c| c.sent = 100);
        let items = [
            ("H#2026-11-23T09".to_string(), a),
            ("H#2026-11-23T11".to_string(), b),
            ("H#2026-11-23T12".to_string(), outside),
        ];
        let s = Series::new(None, &r, items.iter().map(|(k, c)| (k.as_str(), c)));
        let sent: Vec<u64> = s.points.iter().map(|p| p.counts.sent).collect();
        assert_eq!(sent, vec![0, 5, 0, 1]);
        assert_eq!(s.points[0].start, "2026-11-23T08:00:00Z");
        assert_eq!(s.points[1].rates.delivery_rate, Some(0.8));
        assert_eq!(s.points[0].rates.delivery_rate, None);
        assert_eq!(s.totals.sent, 6);
        assert_eq!(s.grain, "hour");
    }

    #[test]
    fn a_selection_knows_whether_it_covers_the_campaign() {
        let day = |n| counters(|c| c.delivered = n);
        let items = [
            ("D#2026-11-20".to_string(), day(1)),
            ("D#2026-11-21".to_string(), day(2)),
            ("D#2026-11-25".to_string(), day(4)),
        ];
        let iter = || items.iter().map(|(k, c)| (k.as_str(), c));
        let all = select_days(iter(), None);
        assert!(all.covers_campaign);
        assert_eq!(all.counters.delivered, 7);
        assert_eq!(all.from, Some(at("2026-11-20T00:00:00Z")));
        assert_eq!(all.to, Some(at("2026-11-26T00:00:00Z")));
        let now = at("2026-12-01T00:00:00Z");
        let part = Range::parse(Some("2026-11-21"), Some("2026-11-30"), Grain::Day, now).unwrap();
        let sel = select_days(iter(), Some(&part));
        assert!(!sel.covers_campaign);
        assert_eq!(sel.counters.delivered, 6);
        let o = Overview::new("c", &sel, U);
        assert_eq!(o.rates.open_rate, None, "lifetime uniques over part of it");
        assert!(o.rates.delivery_rate.is_none() && o.rates.complaint_rate == Some(0.0));
        let wide = Range::parse(Some("2026-11-01"), Some("2026-11-30"), Grain::Day, now).unwrap();
        let sel = select_days(iter(), Some(&wide));
        assert!(sel.covers_campaign);
        let o = Overview::new("c", &sel, U);
        assert_eq!(o.rates.open_rate, Some(40.0 / 7.0));
        let empty = select_days(std::iter::empty(), None);
        assert_eq!((empty.from, empty.to), (None, None));
    }

    #[test]
    fn top_links_sort_by_human_clicks_and_keep_the_limit() {
        let mut c = Counters::default();
        for (id, url, human, bot) in [
            ("a", "https://x.example/a", 5, 0),
            ("b", "https://x.example/b", 9, 1),
            ("c", "https://x.example/c", 5, 7),
            ("d", "https://x.example/d", 0, 0),
        ] {
            c.links.insert(
                id.into(),
                crate::rollup::LinkCounters {
                    url: url.into(),
                    human,
                    bot,
                },
            );
        }
        let sel = Selection {
            counters: c,
            covers_campaign: true,
            ..Default::default()
        };
        let uniques = UniqueCounts {
            recipients: 9,
            per_link: BTreeMap::from([("a".to_string(), 4), ("b".to_string(), 6)]),
        };
        let top = TopLinks::new("spring", &sel, &uniques, 2);
        assert_eq!(top.links_total, 3, "a link without clicks is not listed");
        let ids: Vec<&str> = top.links.iter().map(|l| l.link_id.as_str()).collect();
        assert_eq!(ids, vec!["b", "a"]);
        assert_eq!(top.links[1].unique_clickers_human, 4);
        let all = TopLinks::new("spring", &sel, &uniques, 10);
        assert_eq!(all.links[2].link_id, "c");
        assert_eq!(all.links[2].unique_clickers_human, 0);
    }
}
