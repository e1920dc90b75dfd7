//! What a rendered report shows: the numbers of one period of one definition, with the
//! previous period beside them. Built from the rollups by [`super::data`]; every
//! renderer reads only this, so all formats show the same numbers.

use beacon_domain::rollup::counters::{Counter, Kind};
use beacon_domain::rollup::Counters;
use beacon_domain::stats::decimal;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

macro_rules! declare_metrics {
    (
        shown: [$($variant:ident $field:ident: $ty:ty => $label:literal, $kind:ident $key:ident;)*]
        api_only: [$($avariant:ident $afield:ident: $aty:ty => $alabel:literal, $akind:ident $akey:ident;)*]
        internal: [$($ivariant:ident $ifield:ident: $ity:ty;)*]
    ) => {
        /// A number a report can show: every counter the rollups show
        /// ([`beacon_domain::rollup::counters`]), bounces of either kind, and the rates of
        /// [`beacon_domain::stats::Rates`], computed from the same counters here.
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(rename_all = "snake_case")]
        pub enum Metric {
            $($variant,)*
            Bounced,
            DeliveryRate,
            BounceRate,
            ComplaintRate,
            UnsubscribeRate,
        }

        impl Metric {
            pub const ALL: [Metric; [$(stringify!($variant),)*].len() + 5] = [
                $(Metric::$variant,)*
                Metric::Bounced,
                Metric::DeliveryRate,
                Metric::BounceRate,
                Metric::ComplaintRate,
                Metric::UnsubscribeRate,
            ];

            /// The rollup counter a metric shows, if it is one.
            pub fn counter(self) -> Option<Counter> {
                match self {
                    $(Metric::$variant => Some(Counter::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

beacon_domain::counter_list!(declare_metrics);

/// How a metric's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A whole number of events.
    Count,
    /// A decimal amount (conversion value, cost).
    Money,
    /// A fraction: 0.25 is 25%.
    Rate,
}

impl Metric {
    /// What a definition asks for when it names no metrics.
    pub const DEFAULT: [Metric; 10] = [
        Metric::Sent,
        Metric::Delivered,
        Metric::Bounced,
        Metric::Complained,
        Metric::Unsubscribed,
        Metric::OpensHuman,
        Metric::ClicksHuman,
        Metric::DeliveryRate,
        Metric::BounceRate,
        Metric::ComplaintRate,
    ];

    /// The stored name (`opens_human`), as in definitions, CSV and JSON.
    pub fn key(self) -> &'static str {
        if let Some(counter) = self.counter() {
            return counter.key();
        }
        match self {
            Metric::Bounced => "bounced",
            Metric::DeliveryRate => "delivery_rate",
            Metric::BounceRate => "bounce_rate",
            Metric::ComplaintRate => "complaint_rate",
            Metric::UnsubscribeRate => "unsubscribe_rate",
            _ => unreachable!("every other metric is a counter"),
        }
    }

    pub fn parse(key: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.key() == key)
    }

    /// The label a person reads (`Human opens`).
    pub fn label(self) -> &'static str {
        if let Some(counter) = self.counter() {
            return counter.label();
        }
        match self {
            Metric::Bounced => "Bounced",
            Metric::DeliveryRate => "Delivery rate",
            Metric::BounceRate => "Bounce rate",
            Metric::ComplaintRate => "Complaint rate",
            Metric::UnsubscribeRate => "Unsubscribe rate",
            _ => unreachable!("every other metric is a counter"),
        }
    }

    pub fn kind(self) -> MetricKind {
        match self.counter().map(Counter::kind) {
            Some(Kind::Money) => MetricKind::Money,
            Some(_) => MetricKind::Count,
            None if self == Metric::Bounced => MetricKind::Count,
            None => MetricKind::Rate,
        }
    }

    /// The metric's value over `c`; `None` for a rate whose denominator is 0. The
    /// rates are those of [`beacon_domain::stats::Rates`] (bounce rate over sent, the others
    /// over delivered).
    pub fn value(self, c: &Counters) -> Option<f64> {
        let rates = || beacon_domain::stats::Rates::new(c, None);
        if let Some(counter) = self.counter() {
            let v = counter.get(c);
            return Some(match counter.kind() {
                Kind::Money => decimal(v),
                _ => v as f64,
            });
        }
        Some(match self {
            Metric::Bounced => (c.bounced_hard + c.bounced_soft) as f64,
            Metric::DeliveryRate => return rates().delivery_rate,
            Metric::BounceRate => return rates().bounce_rate,
            Metric::ComplaintRate => return rates().complaint_rate,
            Metric::UnsubscribeRate => return rates().unsubscribe_rate,
            _ => unreachable!("every other metric is a counter"),
        })
    }
}

/// A file a report is rendered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The email body itself (also stored as a file).
    Html,
    Csv,
    Json,
    Xlsx,
    Pdf,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Html,
        Format::Csv,
        Format::Json,
        Format::Xlsx,
        Format::Pdf,
    ];

    pub fn extension(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Xlsx => "xlsx",
            Format::Pdf => "pdf",
        }
    }

    pub fn parse(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.extension() == name)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html; charset=utf-8",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Format::Pdf => "application/pdf",
        }
    }
}

/// One line of the summary: this period against the previous one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryRow {
    pub metric: Metric,
    pub value: Option<f64>,
    pub previous: Option<f64>,
}

impl SummaryRow {
    /// `value - previous`, when both exist.
    pub fn delta(&self) -> Option<f64> {
        Some(self.value? - self.previous?)
    }

    /// The change relative to the previous period (0.1 is +10%); `None` when the
    /// previous value is 0 or missing.
    pub fn delta_ratio(&self) -> Option<f64> {
        let (value, previous) = (self.value?, self.previous?);
        (previous != 0.0).then(|| (value - previous) / previous)
    }
}

/// The period a report covers, in the definition's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeriodInfo {
    /// `2026-11-22`, `2026-W47`, `2026-11`: also the run key and the file name stem.
    pub key: String,
    /// `Sunday 22 November 2026`, `Week of 16 November 2026`, `November 2026`.
    pub label: String,
    /// First instant, inclusive (UTC).
    pub start: DateTime<Utc>,
    /// Last instant, exclusive (UTC).
    pub end: DateTime<Utc>,
}

/// One point of the series (an hour for a daily report, a local day otherwise).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesPoint {
    /// `2026-11-22 09:00` or `2026-11-22`, local time.
    pub label: String,
    /// Start of the point (UTC).
    pub start: DateTime<Utc>,
    /// One value per [`ReportSeries::metrics`] entry.
    pub values: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportSeries {
    /// `hour` or `day`.
    pub grain: &'static str,
    pub metrics: Vec<Metric>,
    pub points: Vec<SeriesPoint>,
}

/// A link of the period, with its campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkRow {
    pub campaign: String,
    pub url: String,
    pub clicks_human: u64,
    pub clicks_bot: u64,
}

/// A channel and provider of the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelRow {
    pub channel: String,
    pub provider: String,
    pub sent: u64,
    pub delivered: u64,
    pub bounced: u64,
    pub complained: u64,
    pub opens_human: u64,
    pub clicks_human: u64,
    pub cost: f64,
}

impl ChannelRow {
    /// The counts every channel table shows, in column order: sent, delivered, bounced,
    /// complained, human opens, human clicks (cost follows as money).
    pub fn counts(&self) -> [u64; 6] {
        [
            self.sent,
            self.delivered,
            self.bounced,
            self.complained,
            self.opens_human,
            self.clicks_human,
        ]
    }
}

/// Bounces and complaints of the period against the levels at which SES reviews a
/// sending account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deliverability {
    pub sent: u64,
    pub delivered: u64,
    pub bounced_hard: u64,
    pub bounced_soft: u64,
    pub complained: u64,
    pub bounce_rate: Option<f64>,
    pub complaint_rate: Option<f64>,
    /// SES puts an account under review at a 5% bounce rate.
    pub bounce_review_level: f64,
    /// ... and at a 0.1% complaint rate.
    pub complaint_review_level: f64,
}

impl Deliverability {
    pub const BOUNCE_REVIEW_LEVEL: f64 = 0.05;
    pub const COMPLAINT_REVIEW_LEVEL: f64 = 0.001;

    pub fn new(c: &Counters) -> Deliverability {
        let rates = beacon_domain::stats::Rates::new(c, None);
        Deliverability {
            sent: c.sent,
            delivered: c.delivered,
            bounced_hard: c.bounced_hard,
            bounced_soft: c.bounced_soft,
            complained: c.complained,
            bounce_rate: rates.bounce_rate,
            complaint_rate: rates.complaint_rate,
            bounce_review_level: Self::BOUNCE_REVIEW_LEVEL,
            complaint_review_level: Self::COMPLAINT_REVIEW_LEVEL,
        }
    }

    /// True when either rate is at or above its review level.
    pub fn at_risk(&self) -> bool {
        self.bounce_rate
            .is_some_and(|r| r >= self.bounce_review_level)
            || self
                .complaint_rate
                .is_some_and(|r| r >= self.complaint_review_level)
    }
}

/// Everything a renderer needs. Sections the definition did not ask for are `None`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportData {
    pub tenant: String,
    pub report_id: String,
    /// The definition's name: the title.
    pub name: String,
    /// `All campaigns`, `Campaigns: spring, fall`, `Channels: email/ses`.
    pub scope: String,
    /// IANA name (`Europe/Berlin`).
    pub timezone: String,
    pub period: PeriodInfo,
    pub previous: PeriodInfo,
    pub generated_at: DateTime<Utc>,
    pub summary: Vec<SummaryRow>,
    pub series: Option<ReportSeries>,
    /// Most human clicks first.
    pub top_links: Option<Vec<LinkRow>>,
    pub channels: Option<Vec<ChannelRow>>,
    pub deliverability: Option<Deliverability>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_keys_round_trip_and_rates_match_the_stats_api() {
        for m in Metric::ALL {
            assert_eq!(Metric::parse(m.key()), Some(m));
        }
        assert_eq!(Metric::parse("opens"), None);
        let c = Counters {
            sent: 200,
            delivered: 150,
            bounced_hard: 8,
            bounced_soft: 2,
            complained: 3,
            cost_micros: 1_500_000,
            ..Default::default()
        };
        let rates = beacon_domain::stats::Rates::new(&c, None);
        assert_eq!(Metric::BounceRate.value(&c), rates.bounce_rate);
        assert_eq!(Metric::BounceRate.value(&c), Some(0.05));
        assert_eq!(Metric::ComplaintRate.value(&c), Some(0.02));
        assert_eq!(Metric::Bounced.value(&c), Some(10.0));
        assert_eq!(Metric::Cost.value(&c), Some(1.5));
        assert_eq!(Metric::DeliveryRate.value(&Counters::default()), None);
        assert!(Deliverability::new(&c).at_risk());
        assert!(!Deliverability::new(&Counters {
            sent: 100,
            delivered: 100,
            ..Default::default()
        })
        .at_risk());
    }

    #[test]
    fn deltas_are_absolute_and_relative() {
        let row = SummaryRow {
            metric: Metric::Sent,
            value: Some(110.0),
            previous: Some(100.0),
        };
        assert_eq!(row.delta(), Some(10.0));
        assert!((row.delta_ratio().unwrap() - 0.1).abs() < 1e-12);
        let new = SummaryRow {
            previous: Some(0.0),
            ..row.clone()
        };
        assert_eq!(new.delta_ratio(), None);
        assert_eq!(new.delta(), Some(110.0));
    }
}
