//! The numbers of a report: one period of a definition (and the period before, for the
//! deltas), added up from the hourly rollups so the period is exactly the local day,
//! week or month of the definition's zone. Reads go through [`RollupReader`], the same
//! trait the stats API uses; nothing here scans events.

use super::definition::{Breakdown, ReportDefinition};
use super::model::{
    ChannelRow, Deliverability, LinkRow, Metric, MetricKind, ReportData, ReportSeries, SeriesPoint,
    SummaryRow,
};
use super::period::{hour_range, Period};
use beacon_domain::rollup::reader::{Fields, ReadError, RollupItem, RollupReader};
use beacon_domain::rollup::{directory_partition, parse_channel, CAMPAIGN_PREFIX, CHANNEL_PREFIX};
use beacon_domain::rollup::{rollup_partition, Counters, Grain, Scope};
use beacon_domain::stats::decimal;
use chrono::{DateTime, NaiveDateTime, Utc};
use std::collections::BTreeMap;

/// The UTC hour of an hourly rollup's sort key (`H#2026-11-23T10`).
fn hour_of(sk: &str) -> Option<DateTime<Utc>> {
    let text = sk.strip_prefix("H#")?;
    NaiveDateTime::parse_from_str(&format!("{text}:00"), "%Y-%m-%dT%H:%M")
        .ok()
        .map(|t| t.and_utc())
}

/// Hour items of the partitions, between `start` and `end`.
async fn hours<R: RollupReader>(
    reader: &R,
    partitions: &[String],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    fields: Fields,
) -> Result<Vec<(DateTime<Utc>, RollupItem)>, ReadError> {
    let (first, last) = hour_range(start, end);
    let mut out = Vec::new();
    for pk in partitions {
        for item in reader.rollups(pk, &first, &last, fields).await? {
            if let Some(t) = hour_of(&item.sk) {
                out.push((t, item));
            }
        }
    }
    Ok(out)
}

/// The channel/provider pairs of the tenant's directory that the scope covers.
async fn channels_in_scope<R: RollupReader>(
    reader: &R,
    def: &ReportDefinition,
) -> Result<Vec<(String, String)>, ReadError> {
    Ok(reader
        .directory(&directory_partition(&def.tenant), CHANNEL_PREFIX)
        .await?
        .iter()
        .filter_map(|d| parse_channel(&d.sk))
        .filter(|(ch, p)| def.scope.channels.is_empty() || def.scope.has_channel(ch, p))
        .map(|(ch, p)| (ch.to_string(), p.to_string()))
        .collect())
}

/// The campaigns whose links the report lists: the chosen ones, or every campaign
/// of the tenant seen since the period began.
async fn campaigns_in_scope<R: RollupReader>(
    reader: &R,
    def: &ReportDefinition,
    since: DateTime<Utc>,
) -> Result<Vec<String>, ReadError> {
    if !def.scope.campaigns.is_empty() {
        return Ok(def.scope.campaigns.clone());
    }
    let since = since.to_rfc3339();
    Ok(reader
        .directory(&directory_partition(&def.tenant), CAMPAIGN_PREFIX)
        .await?
        .into_iter()
        .filter(|d| d.last_seen.as_deref().is_none_or(|t| t >= since.as_str()))
        .filter_map(|d| d.sk.strip_prefix(CAMPAIGN_PREFIX).map(str::to_string))
        .collect())
}

fn hour_partition(tenant: &str, scope: Scope) -> String {
    rollup_partition(tenant, &scope, Grain::Hour)
}

/// The report of `def` for `period`, read at `now`.
pub async fn build<R: RollupReader>(
    reader: &R,
    def: &ReportDefinition,
    period: Period,
    now: DateTime<Utc>,
) -> Result<ReportData, ReadError> {
    let previous = period.previous();
    let tenant = def.tenant.as_str();
    let channels = if def.scope.channels.is_empty() && !def.wants(Breakdown::Channels) {
        Vec::new()
    } else {
        channels_in_scope(reader, def).await?
    };
    // The partitions whose hour items make the summary and the series.
    let summary_partitions: Vec<String> = if !def.scope.campaigns.is_empty() {
        def.scope
            .campaigns
            .iter()
            .map(|c| hour_partition(tenant, Scope::Campaign(c.clone())))
            .collect()
    } else if !def.scope.channels.is_empty() {
        channels
            .iter()
            .map(|(ch, p)| hour_partition(tenant, Scope::Channel(ch.clone(), p.clone())))
            .collect()
    } else {
        vec![hour_partition(tenant, Scope::Tenant)]
    };
    let items = hours(
        reader,
        &summary_partitions,
        previous.start(),
        period.end(),
        Fields::Scalars,
    )
    .await?;
    let points = period.points();
    let (mut current, mut before) = (Counters::default(), Counters::default());
    let mut per_point = vec![Counters::default(); points.len()];
    let boundary = points.first().map(|p| p.1).unwrap_or(period.start());
    for (t, item) in &items {
        if *t < boundary {
            before.merge(&item.counters);
            continue;
        }
        current.merge(&item.counters);
        if let Some(i) = points.iter().position(|(_, s, e)| s <= t && t < e) {
            per_point[i].merge(&item.counters);
        }
    }
    let summary = def
        .metrics
        .iter()
        .map(|m| SummaryRow {
            metric: *m,
            value: m.value(&current),
            previous: m.value(&before),
        })
        .collect();
    let series = def.wants(Breakdown::Series).then(|| {
        // The chart and the series sheet show counts; rates of an hour say little.
        let metrics: Vec<Metric> = def
            .metrics
            .iter()
            .copied()
            .filter(|m| m.kind() != MetricKind::Rate)
            .collect();
        ReportSeries {
            grain: match period.cadence {
                super::period::Cadence::Daily => "hour",
                _ => "day",
            },
            points: points
                .iter()
                .zip(&per_point)
                .map(|((label, start, _), c)| SeriesPoint {
                    label: label.clone(),
                    start: *start,
                    values: metrics.iter().map(|m| m.value(c)).collect(),
                })
                .collect(),
            metrics,
        }
    });
    let top_links = if def.wants(Breakdown::TopLinks) {
        Some(top_links(reader, def, period).await?)
    } else {
        None
    };
    let channel_rows = if def.wants(Breakdown::Channels) {
        let mut rows = Vec::new();
        for (ch, p) in &channels {
            let pk = hour_partition(tenant, Scope::Channel(ch.clone(), p.clone()));
            let mut c = Counters::default();
            for (_, item) in hours(
                reader,
                std::slice::from_ref(&pk),
                period.start(),
                period.end(),
                Fields::Scalars,
            )
            .await?
            {
                c.merge(&item.counters);
            }
            if c != Counters::default() {
                rows.push(ChannelRow {
                    channel: ch.clone(),
                    provider: p.clone(),
                    sent: c.sent,
                    delivered: c.delivered,
                    bounced: c.bounced_hard + c.bounced_soft,
                    complained: c.complained,
                    opens_human: c.opens_human,
                    clicks_human: c.clicks_human,
                    cost: decimal(c.cost_micros),
                });
            }
        }
        rows.sort_by(|a, b| b.sent.cmp(&a.sent).then(a.channel.cmp(&b.channel)));
        Some(rows)
    } else {
        None
    };
    Ok(ReportData {
        tenant: def.tenant.clone(),
        report_id: def.id.clone(),
        name: def.name.clone(),
        scope: def.scope.describe(),
        timezone: def.timezone.clone(),
        period: period.info(),
        previous: previous.info(),
        generated_at: now,
        summary,
        series,
        top_links,
        channels: channel_rows,
        deliverability: def
            .wants(Breakdown::Deliverability)
            .then(|| Deliverability::new(&current)),
    })
}

/// The period's links of the campaigns in scope, most human clicks first.
async fn top_links<R: RollupReader>(
    reader: &R,
    def: &ReportDefinition,
    period: Period,
) -> Result<Vec<LinkRow>, ReadError> {
    let mut links: BTreeMap<(String, String), LinkRow> = BTreeMap::new();
    for campaign in campaigns_in_scope(reader, def, period.start()).await? {
        let pk = hour_partition(&def.tenant, Scope::Campaign(campaign.clone()));
        for (_, item) in hours(
            reader,
            std::slice::from_ref(&pk),
            period.start(),
            period.end(),
            Fields::All,
        )
        .await?
        {
            for (id, l) in &item.counters.links {
                let row = links
                    .entry((campaign.clone(), id.clone()))
                    .or_insert_with(|| LinkRow {
                        campaign: campaign.clone(),
                        url: String::new(),
                        clicks_human: 0,
                        clicks_bot: 0,
                    });
                if row.url.is_empty() {
                    row.url = l.url.clone();
                }
                row.clicks_human += l.human;
                row.clicks_bot += l.bot;
            }
        }
    }
    let mut rows: Vec<LinkRow> = links
        .into_values()
        .filter(|l| l.clicks_human + l.clicks_bot > 0)
        .collect();
    rows.sort_by(|a, b| {
        b.clicks_human
            .cmp(&a.clicks_human)
            .then(b.clicks_bot.cmp(&a.clicks_bot))
            .then(a.url.cmp(&b.url))
    });
    rows.truncate(def.top_links);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::DefinitionInput;
    use crate::period::{parse_tz, utc, Cadence};
    use beacon_domain::rollup::Aggregate;
    use beacon_domain::testkit::rollups::MemoryRollupReader;
    use beacon_domain::{Event, EventType};

    fn event(kind: EventType, at: DateTime<Utc>, campaign: &str, provider: &str) -> Event {
        let mut e = Event::new(
            beacon_domain::event::new_event_id(),
            "acme".into(),
            kind,
            at,
            at,
        );
        e.campaign_id = Some(campaign.into());
        e.recipient_id = Some("r1".into());
        e.message_id = Some("m1".into());
        e.channel = Some("email".into());
        e.provider = Some(provider.into());
        e
    }

    fn store(events: &[Event]) -> MemoryRollupReader {
        let store = MemoryRollupReader::default();
        let mut agg = Aggregate::default();
        for e in events {
            agg.add(e);
        }
        store.add_aggregate(&agg, "2026-11-22T23:59:00Z");
        store
    }

    fn definition(extra: impl FnOnce(&mut DefinitionInput)) -> ReportDefinition {
        let mut i = DefinitionInput {
            id: "daily".into(),
            name: "Daily".into(),
            cadence: "daily".into(),
            timezone: "Europe/Berlin".into(),
            recipients: vec!["ops@example.com".into()],
            metrics: vec!["sent".into(), "delivered".into(), "bounce_rate".into()],
            ..Default::default()
        };
        extra(&mut i);
        i.validate("acme", utc(2026, 1, 1, 0)).unwrap()
    }

    fn value(data: &ReportData, m: Metric) -> (Option<f64>, Option<f64>) {
        let row = data.summary.iter().find(|r| r.metric == m).unwrap();
        (row.value, row.previous)
    }

    #[tokio::test]
    async fn a_local_day_adds_up_exactly_its_utc_hours() {
        // Berlin's 22 November is 21 Nov 23:00 UTC to 22 Nov 23:00 UTC.
        let at = |d, h| utc(2026, 11, d, h);
        let events = vec![
            event(EventType::Sent, at(21, 22), "spring", "ses"), // 21st in Berlin (previous)
            event(EventType::Sent, at(21, 23), "spring", "ses"), // 22nd 00:xx Berlin
            event(EventType::Sent, at(22, 12), "fall", "ses"),
            event(EventType::Delivered, at(22, 22), "spring", "ses"), // 22nd 23:xx Berlin
            event(EventType::Sent, at(22, 23), "spring", "ses"),      // 23rd: outside
        ];
        let def = definition(|_| {});
        let tz = parse_tz("Europe/Berlin").unwrap();
        let period = Period::parse_key(Cadence::Daily, tz, "2026-11-22").unwrap();
        let data = build(&store(&events), &def, period, at(23, 6))
            .await
            .unwrap();
        assert_eq!(value(&data, Metric::Sent), (Some(2.0), Some(1.0)));
        assert_eq!(value(&data, Metric::Delivered), (Some(1.0), Some(0.0)));
        assert_eq!(value(&data, Metric::BounceRate), (Some(0.0), Some(0.0)));
        let series = data.series.as_ref().unwrap();
        assert_eq!(series.grain, "hour");
        assert_eq!(series.metrics, vec![Metric::Sent, Metric::Delivered]);
        assert_eq!(series.points.len(), 24);
        assert_eq!(series.points[0].label, "2026-11-22 00:00");
        assert_eq!(series.points[0].values, vec![Some(1.0), Some(0.0)]);
        assert_eq!(series.points[23].values, vec![Some(0.0), Some(1.0)]);
        assert_eq!(data.period.key, "2026-11-22");
        assert_eq!(data.previous.key, "2026-11-21");
        assert_eq!(data.scope, "All campaigns");
    }

    #[tokio::test]
    async fn campaign_and_channel_scopes_add_up_only_their_items() {
        let at = |h| utc(2026, 11, 22, h);
        let mut click = event(EventType::Clicked, at(10), "spring", "ses");
        click.link_url = Some("https://shop.example/a".into());
        let mut click_b = event(EventType::Clicked, at(11), "spring", "ses");
        click_b.link_url = Some("https://shop.example/b".into());
        let mut click_b2 = click_b.clone();
        click_b2.event_id = beacon_domain::event::new_event_id();
        let events = vec![
            event(EventType::Sent, at(9), "spring", "ses"),
            event(EventType::Sent, at(9), "fall", "postmark"),
            event(EventType::Sent, at(9), "fall", "postmark"),
            click,
            click_b,
            click_b2,
        ];
        let s = store(&events);
        let tz = parse_tz("Europe/Berlin").unwrap();
        let period = Period::parse_key(Cadence::Daily, tz, "2026-11-22").unwrap();
        let spring = definition(|i| i.campaigns = vec!["spring".into()]);
        let data = build(&s, &spring, period, at(23)).await.unwrap();
        assert_eq!(value(&data, Metric::Sent).0, Some(1.0));
        assert_eq!(
            data.channels, None,
            "no channel breakdown for a campaign scope"
        );
        let links = data.top_links.unwrap();
        assert_eq!(links.len(), 2);
        assert_eq!(
            (links[0].url.as_str(), links[0].clicks_human),
            ("https://shop.example/b", 2)
        );
        let postmark = definition(|i| i.channels = vec!["email/postmark".into()]);
        let data = build(&s, &postmark, period, at(23)).await.unwrap();
        assert_eq!(value(&data, Metric::Sent).0, Some(2.0));
        let all = definition(|_| {});
        let data = build(&s, &all, period, at(23)).await.unwrap();
        assert_eq!(value(&data, Metric::Sent).0, Some(3.0));
        let rows = data.channels.unwrap();
        assert_eq!(
            rows.iter()
                .map(|r| (r.provider.as_str(), r.sent))
                .collect::<Vec<_>>(),
            vec![("postmark", 2), ("ses", 1)]
        );
        assert_eq!(data.top_links.unwrap().len(), 2, "links of every campaign");
    }
}
