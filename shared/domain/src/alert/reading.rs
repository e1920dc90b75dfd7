//! Reading a rule over a tenant's hourly rollups: the window, the baseline, the value.

use super::*;

use crate::rollup::Counters;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A tenant's hourly rollups (tenant scope), by hour.
#[derive(Debug, Clone, Default)]
pub struct Hours(pub BTreeMap<DateTime<Utc>, Counters>);

impl Hours {
    /// From rollup items' sort keys (`H#2026-11-23T10`) and counters.
    pub fn from_items<'a>(items: impl IntoIterator<Item = (&'a str, &'a Counters)>) -> Hours {
        let mut out = BTreeMap::new();
        for (sk, c) in items {
            let Some(text) = sk.strip_prefix("H#") else {
                continue;
            };
            if let Ok(t) =
                chrono::NaiveDateTime::parse_from_str(&format!("{text}:00"), "%Y-%m-%dT%H:%M")
            {
                out.insert(t.and_utc(), c.clone());
            }
        }
        Hours(out)
    }

    /// The sum over `[from, to]` (hour starts).
    pub fn sum(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Counters {
        let mut total = Counters::default();
        for (_, c) in self.0.range(from..=to) {
            total.merge_counts(c, false);
        }
        total
    }
}

/// The hour `now` falls in.
pub fn hour_of(now: DateTime<Utc>) -> DateTime<Utc> {
    now.duration_trunc(Duration::hours(1)).unwrap_or(now)
}

/// The hour starts a rule's window covers: the last `window_hours` whole hours and the
/// current one.
pub fn window(now: DateTime<Utc>, window_hours: u32) -> (DateTime<Utc>, DateTime<Utc>) {
    let current = hour_of(now);
    (current - Duration::hours(window_hours as i64), current)
}

/// The first hour an evaluation at `now` needs (windows and baselines).
pub fn history_start(now: DateTime<Utc>) -> DateTime<Utc> {
    hour_of(now) - Duration::hours(MAX_WINDOW_HOURS as i64 + BASELINE_HOURS)
}

/// What a rule saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// The metric over the window (`None`: no denominator).
    pub value: Option<f64>,
    pub volume: u64,
    /// Breaching; `None` when there was too little traffic (or history) to judge.
    pub breached: Option<bool>,
    /// The threshold the value was compared with (for anomalies, the baseline's
    /// lower bound).
    pub threshold: Option<f64>,
    /// How the threshold came about, for anomalies: `baseline 98.2% ± 0.4% over 120 h`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Judges a rule at `now` over the tenant's hours.
pub fn read(rule: &Rule, hours: &Hours, now: DateTime<Utc>) -> Reading {
    let (from, to) = window(now, rule.window_hours);
    let total = hours.sum(from, to);
    let metric = rule.metric();
    let value = metric.value(&total);
    let volume = metric.volume(&total);
    let enough = volume >= rule.min_volume && value.is_some();
    match &rule.condition {
        Condition::Threshold {
            operator,
            threshold,
            ..
        } => Reading {
            value,
            volume,
            breached: enough.then(|| operator.holds(value.unwrap_or(0.0), *threshold)),
            threshold: Some(*threshold),
            detail: String::new(),
        },
        Condition::Anomaly { sigmas } => {
            let rates: Vec<f64> = hours
                .0
                .range(from - Duration::hours(BASELINE_HOURS)..from)
                .filter_map(|(_, c)| Metric::DeliveryRate.value(c))
                .collect();
            if rates.len() < MIN_BASELINE_HOURS {
                return Reading {
                    value,
                    volume,
                    breached: None,
                    threshold: None,
                    detail: format!(
                        "{} hours of baseline, {MIN_BASELINE_HOURS} needed",
                        rates.len()
                    ),
                };
            }
            let n = rates.len() as f64;
            let mean = rates.iter().sum::<f64>() / n;
            let sigma = (rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n)
                .sqrt()
                .max(MIN_SIGMA);
            let bound = mean - sigmas * sigma;
            Reading {
                value,
                volume,
                breached: enough.then(|| value.unwrap_or(1.0) < bound),
                threshold: Some(bound),
                detail: format!(
                    "baseline {} ± {} over {} h",
                    percent(mean),
                    percent(sigma),
                    rates.len()
                ),
            }
        }
    }
}
