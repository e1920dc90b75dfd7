//! A deterministic report for the renderers' tests and benchmarks.

/// A month-long report of a newsletter program for the report renderers' tests and
/// benchmarks: December 2026 in Europe/Berlin with `days` daily points (31 is the whole
/// month), all metrics in the summary against November, `links` top links (long URLs
/// with UTM parameters) over four campaigns, three channels and the deliverability box.
/// Deterministic: the same arguments give the same report.
pub fn report_data(days: usize, links: usize) -> crate::model::ReportData {
    use crate::model::{
        ChannelRow, Deliverability, LinkRow, Metric, PeriodInfo, ReportData, ReportSeries,
        SeriesPoint, SummaryRow,
    };
    use beacon_domain::rollup::Counters;
    use chrono::{DateTime, Duration, NaiveDate, Utc};

    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n.max(1)
    };
    // One day of sending: a base load, campaign sends on Tuesdays and Thursdays.
    let mut day_counters = |campaign_day: bool, scale: f64| {
        let sent =
            ((18_000 + next(4_000) + if campaign_day { 85_000 } else { 0 }) as f64 * scale) as u64;
        let bounced_hard = sent / 180 + next(20);
        let bounced_soft = sent / 110 + next(30);
        let failed = next(12);
        let delivered = sent - bounced_hard - bounced_soft - failed;
        let opens_human = delivered / 4 + next(delivered / 20 + 1);
        let clicks_human = delivered / 26 + next(delivered / 200 + 1);
        let conversions = clicks_human / 18 + next(10);
        Counters {
            sent,
            delivered,
            bounced_hard,
            bounced_soft,
            complained: delivered / 2_600 + next(4),
            failed,
            unsubscribed: delivered / 480 + next(8),
            opens_human,
            opens_machine: delivered / 7 + next(500),
            clicks_human,
            clicks_bot: clicks_human / 6 + next(40),
            conversions,
            conversion_value_micros: conversions as i64 * 47_350_000 + next(990_000) as i64,
            cost_micros: sent as i64 * 850,
            ..Default::default()
        }
    };
    fn add(total: &mut Counters, c: &Counters) {
        total.sent += c.sent;
        total.delivered += c.delivered;
        total.bounced_hard += c.bounced_hard;
        total.bounced_soft += c.bounced_soft;
        total.complained += c.complained;
        total.failed += c.failed;
        total.unsubscribed += c.unsubscribed;
        total.opens_human += c.opens_human;
        total.opens_machine += c.opens_machine;
        total.clicks_human += c.clicks_human;
        total.clicks_bot += c.clicks_bot;
        total.conversions += c.conversions;
        total.conversion_value_micros += c.conversion_value_micros;
        total.cost_micros += c.cost_micros;
    }

    // Berlin is UTC+1 all of December and November.
    let start: DateTime<Utc> = "2026-11-30T23:00:00Z".parse().expect("valid instant");
    let previous_start: DateTime<Utc> = "2026-10-31T23:00:00Z".parse().expect("valid instant");
    let first_day = NaiveDate::from_ymd_opt(2026, 12, 1).expect("valid date");
    let series_metrics = vec![
        Metric::Sent,
        Metric::Delivered,
        Metric::OpensHuman,
        Metric::ClicksHuman,
        Metric::Bounced,
        Metric::DeliveryRate,
    ];
    let mut total = Counters::default();
    let points = (0..days)
        .map(|d| {
            let date = first_day + Duration::days(d as i64);
            // 2026-12-01 is a Tuesday.
            let c = day_counters(d % 7 == 0 || d % 7 == 2, 1.0);
            add(&mut total, &c);
            SeriesPoint {
                label: date.format("%Y-%m-%d").to_string(),
                start: start + Duration::days(d as i64),
                values: series_metrics.iter().map(|m| m.value(&c)).collect(),
            }
        })
        .collect();
    let mut previous = Counters::default();
    for d in 0..30 {
        add(&mut previous, &day_counters(d % 7 == 1 || d % 7 == 3, 0.92));
    }

    let campaigns = [
        "winter-sale",
        "advent-calendar",
        "newsletter-2026-12",
        "year-in-review",
    ];
    let sections = ["collections", "products", "blog", "gift-guides", "stores"];
    let mut top_links: Vec<LinkRow> = (0..links)
        .map(|i| {
            let campaign = campaigns[i % campaigns.len()];
            let clicks_human = 40_000 / (i as u64 + 2) + next(25);
            LinkRow {
                campaign: campaign.to_string(),
                url: format!(
                    "https://shop.example.com/{}/{}-item-{i:04}?utm_source=beacon&utm_medium=email&utm_campaign={campaign}&utm_content=link-{i}",
                    sections[i % sections.len()],
                    campaign,
                ),
                clicks_human,
                clicks_bot: clicks_human / 7 + next(5),
            }
        })
        .collect();
    top_links.sort_by_key(|l| std::cmp::Reverse(l.clicks_human));

    // Channels share the month's totals: 70% SES, 25% SendGrid, the rest by SMS.
    let share = |v: u64, part: u64| v * part / 100;
    let channels = [
        ("email", "ses", 70),
        ("email", "sendgrid", 25),
        ("sms", "twilio", 5),
    ]
    .into_iter()
    .map(|(channel, provider, part)| ChannelRow {
        channel: channel.to_string(),
        provider: provider.to_string(),
        sent: share(total.sent, part),
        delivered: share(total.delivered, part),
        bounced: share(total.bounced_hard + total.bounced_soft, part),
        complained: share(total.complained, part),
        opens_human: if channel == "sms" {
            0
        } else {
            share(total.opens_human, part)
        },
        clicks_human: share(total.clicks_human, part),
        cost: beacon_domain::stats::decimal(total.cost_micros) * part as f64 / 100.0,
    })
    .collect();

    ReportData {
        tenant: "acme".into(),
        report_id: "rpt-monthly-newsletter".into(),
        name: "Monthly newsletter performance".into(),
        scope: "All campaigns".into(),
        timezone: "Europe/Berlin".into(),
        period: PeriodInfo {
            key: "2026-12".into(),
            label: "December 2026".into(),
            start,
            end: start + Duration::days(days as i64),
        },
        previous: PeriodInfo {
            key: "2026-11".into(),
            label: "November 2026".into(),
            start: previous_start,
            end: start,
        },
        generated_at: start + Duration::days(days as i64) + Duration::minutes(95),
        summary: Metric::ALL
            .into_iter()
            .map(|metric| SummaryRow {
                metric,
                value: metric.value(&total),
                previous: metric.value(&previous),
            })
            .collect(),
        series: Some(ReportSeries {
            grain: "day",
            metrics: series_metrics,
            points,
        }),
        top_links: Some(top_links),
        channels: Some(channels),
        deliverability: Some(Deliverability::new(&total)),
    }
}
