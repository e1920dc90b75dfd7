//! Alerts: rules over a tenant's hourly rollups, evaluated on a schedule, and the
//! notices they send: one when a rule starts to breach, one when it stops.
//!
//! A rule is either a **threshold** (a metric over a window compared with a value) or
//! an **anomaly** (the delivery rate over the window more than N standard deviations
//! below its hourly baseline of the 7 days before). Every tenant also has the built-in
//! rules [`defaults`] at SES's account review levels, which it may change or disable.
//! Spend is also watched against a monthly [`Budget`], at 75%, 90% and 100%.
//!
//! Metrics, over the window's hourly rollups of the tenant (all campaigns and
//! channels):
//!
//! | metric          | value                                   | volume (denominator) |
//! |-----------------|-----------------------------------------|----------------------|
//! | bounce_rate     | (hard + soft bounces) / sent            | sent                 |
//! | complaint_rate  | complaints / delivered                  | delivered            |
//! | delivery_rate   | delivered / sent                        | sent                 |
//! | open_rate       | human opens / delivered (not unique)    | delivered            |
//! | error_rate      | failed / sent                           | sent                 |
//! | spend           | cost, in the tenant's currency          | sent                 |
//!
//! The first four use the definitions of [`crate::stats::Rates`]; an open rate over a
//! window counts every human open, because unique sets are kept per campaign, not per
//! hour. A rate rule judges nothing until the window holds `min_volume` (default 100)
//! of its denominator: two bounces out of ten mails are no spike.

pub mod evaluate;
pub mod outbound;
pub mod store;

use crate::rollup::Counters;
use crate::stats::{decimal, ratio, Rates};
use chrono::{DateTime, Datelike, Duration, DurationRound, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use std::collections::BTreeMap;
use std::fmt;

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    BounceRate,
    ComplaintRate,
    DeliveryRate,
    OpenRate,
    ErrorRate,
    Spend,
}

impl Metric {
    pub const ALL: [Metric; 6] = [
        Metric::BounceRate,
        Metric::ComplaintRate,
        Metric::DeliveryRate,
        Metric::OpenRate,
        Metric::ErrorRate,
        Metric::Spend,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::BounceRate => "bounce_rate",
            Metric::ComplaintRate => "complaint_rate",
            Metric::DeliveryRate => "delivery_rate",
            Metric::OpenRate => "open_rate",
            Metric::ErrorRate => "error_rate",
            Metric::Spend => "spend",
        }
    }

    /// As people read it in a notice.
    pub fn label(self) -> &'static str {
        match self {
            Metric::BounceRate => "bounce rate",
            Metric::ComplaintRate => "complaint rate",
            Metric::DeliveryRate => "delivery rate",
            Metric::OpenRate => "open rate",
            Metric::ErrorRate => "error rate",
            Metric::Spend => "spend",
        }
    }

    pub fn parse(name: &str) -> Result<Metric, Invalid> {
        Metric::ALL
            .into_iter()
            .find(|m| m.as_str() == name)
            .ok_or_else(|| {
                Invalid(format!(
                    "unknown metric `{name}`; one of {}",
                    Metric::ALL.map(Metric::as_str).join(", ")
                ))
            })
    }

    pub fn is_rate(self) -> bool {
        self != Metric::Spend
    }

    /// The metric's value over summed counters; `None` when its denominator is 0.
    pub fn value(self, c: &Counters) -> Option<f64> {
        let rates = Rates::new(c, None);
        match self {
            Metric::BounceRate => rates.bounce_rate,
            Metric::ComplaintRate => rates.complaint_rate,
            Metric::DeliveryRate => rates.delivery_rate,
            Metric::OpenRate => ratio(c.opens_human, c.delivered),
            Metric::ErrorRate => ratio(c.failed, c.sent),
            Metric::Spend => Some(decimal(c.cost_micros)),
        }
    }

    /// How much traffic the value rests on.
    pub fn volume(self, c: &Counters) -> u64 {
        match self {
            Metric::ComplaintRate | Metric::OpenRate => c.delivered,
            _ => c.sent,
        }
    }

    /// A value as a notice shows it: `5.2%` or `1,234.50`.
    pub fn show(self, v: f64) -> String {
        if self.is_rate() {
            percent(v)
        } else {
            format!("{v:.2}")
        }
    }
}

/// A fraction as a percentage with as many decimals as it needs (5%, 0.1%, 12.34%).
pub fn percent(v: f64) -> String {
    let p = v * 100.0;
    let text = format!("{p:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// How a value is compared with a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    #[serde(rename = ">")]
    Above,
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<")]
    Below,
    #[serde(rename = "<=")]
    AtMost,
}

impl Operator {
    pub fn parse(text: &str) -> Result<Operator, Invalid> {
        Ok(match text {
            ">" | "above" | "gt" => Operator::Above,
            ">=" | "at_least" | "gte" => Operator::AtLeast,
            "<" | "below" | "lt" => Operator::Below,
            "<=" | "at_most" | "lte" => Operator::AtMost,
            other => {
                return Err(Invalid(format!(
                    "unknown operator `{other}`; one of >, >=, <, <= (or above, at_least, below, at_most)"
                )))
            }
        })
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Operator::Above => ">",
            Operator::AtLeast => ">=",
            Operator::Below => "<",
            Operator::AtMost => "<=",
        }
    }

    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Operator::Above => value > threshold,
            Operator::AtLeast => value >= threshold,
            Operator::Below => value < threshold,
            Operator::AtMost => value <= threshold,
        }
    }
}

/// What a rule tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Condition {
    /// `metric operator threshold` over the window (rates as fractions).
    Threshold {
        metric: Metric,
        operator: Operator,
        threshold: f64,
    },
    /// The delivery rate over the window below `mean - sigmas × σ` of its hourly
    /// baseline (the 7 days before the window).
    Anomaly { sigmas: f64 },
}

/// One alert rule of a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub condition: Condition,
    /// The last `window_hours` whole hours and the current one.
    pub window_hours: u32,
    /// The least volume (see the table above) the window must hold to be judged.
    pub min_volume: u64,
    pub enabled: bool,
}

/// The longest window, and the anomaly baseline: the hourly rollups read are at most
/// this many hours plus the baseline's week.
pub const MAX_WINDOW_HOURS: u32 = 168;
/// Hours of history an anomaly rule compares with.
pub const BASELINE_HOURS: i64 = 168;
/// An anomaly needs this many baseline hours with traffic.
pub const MIN_BASELINE_HOURS: usize = 24;
/// The least standard deviation an anomaly rule assumes (0.5 percentage points), so a
/// perfectly steady baseline does not make every dip an anomaly.
pub const MIN_SIGMA: f64 = 0.005;
/// Default `min_volume` of rate rules.
pub const DEFAULT_MIN_VOLUME: u64 = 100;

impl Rule {
    pub fn metric(&self) -> Metric {
        match &self.condition {
            Condition::Threshold { metric, .. } => *metric,
            Condition::Anomaly { .. } => Metric::DeliveryRate,
        }
    }

    /// One line a person reads: `bounce_rate > 5% over 24 h (at least 100 sent)`.
    pub fn describe(&self) -> String {
        let metric = self.metric();
        let test = match &self.condition {
            Condition::Threshold {
                operator,
                threshold,
                ..
            } => format!(
                "{} {} {}",
                metric.as_str(),
                operator.symbol(),
                metric.show(*threshold)
            ),
            Condition::Anomaly { sigmas } => format!(
                "delivery_rate more than {sigmas} standard deviations below its 7-day hourly baseline"
            ),
        };
        let volume = if self.min_volume > 0 {
            let unit = match metric {
                Metric::ComplaintRate | Metric::OpenRate => "delivered",
                _ => "sent",
            };
            format!(", at least {} {unit}", self.min_volume)
        } else {
            String::new()
        };
        format!("{test} over {} h{volume}", self.window_hours)
    }
}

/// The built-in rules, at the levels where SES puts an account under review: bounce
/// rate 5% and complaint rate 0.1%, over a day, judged from 100 messages on.
pub fn defaults() -> Vec<Rule> {
    vec![
        Rule {
            id: "ses-bounce-rate".into(),
            condition: Condition::Threshold {
                metric: Metric::BounceRate,
                operator: Operator::AtLeast,
                threshold: 0.05,
            },
            window_hours: 24,
            min_volume: DEFAULT_MIN_VOLUME,
            enabled: true,
        },
        Rule {
            id: "ses-complaint-rate".into(),
            condition: Condition::Threshold {
                metric: Metric::ComplaintRate,
                operator: Operator::AtLeast,
                threshold: 0.001,
            },
            window_hours: 24,
            min_volume: DEFAULT_MIN_VOLUME,
            enabled: true,
        },
    ]
}

/// A tenant's rules in force: the defaults, each replaced by a stored rule of the
/// same id, then the other stored rules; disabled ones are kept (listed, not judged).
pub fn effective(stored: &[Rule]) -> Vec<Rule> {
    let mut out: Vec<Rule> = defaults()
        .into_iter()
        .map(|d| stored.iter().find(|r| r.id == d.id).cloned().unwrap_or(d))
        .collect();
    let builtin: Vec<String> = out.iter().map(|r| r.id.clone()).collect();
    out.extend(stored.iter().filter(|r| !builtin.contains(&r.id)).cloned());
    out
}

pub fn is_builtin(id: &str) -> bool {
    defaults().iter().any(|d| d.id == id)
}

/// A rule as a person writes it (`beacon alert add`, JSON). Thresholds of rates are
/// percentages (`"5%"`), of spend amounts (`250` or `"250.00"`); windows are `"1h"`
/// to `"168h"` or `"1d"` to `"7d"`; an anomaly rule gives `sigmas` instead of an
/// operator and threshold.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub id: String,
    pub metric: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigmas: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_volume: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// A rule definition that cannot be used, and why (one message per problem).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError(pub Vec<String>);

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid alert rule: {}", self.0.join("; "))
    }
}

impl std::error::Error for RuleError {}

crate::message_error!(
    /// Why an alert setting was refused: what a person reads.
    Invalid
);

/// Checks an id: 1-64 of a-z, 0-9, `-`, `_`.
pub fn validate_id(id: &str) -> Result<(), Invalid> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Invalid(format!(
            "id `{id}` must be 1-64 characters of a-z, 0-9, - and _"
        )))
    }
}

/// A window in whole hours: `"6h"`, `"2d"`, 1 to 168 hours.
pub fn parse_window(text: &str) -> Result<u32, Invalid> {
    let bad = || {
        Invalid(format!("window `{text}` must be whole hours or days from 1h to 7d, like \"1h\", \"24h\" or \"7d\""))
    };
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u32 = number.parse().map_err(|_| bad())?;
    let hours = match unit {
        "h" => n,
        "d" => n.checked_mul(24).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if (1..=MAX_WINDOW_HOURS).contains(&hours) {
        Ok(hours)
    } else {
        Err(bad())
    }
}

fn parse_threshold(metric: Metric, value: &Value) -> Result<f64, Invalid> {
    if metric.is_rate() {
        let text = value.as_str().unwrap_or_default();
        let parsed = text
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<f64>().ok())
            .filter(|p| p.is_finite() && (0.0..=100.0).contains(p));
        return parsed.map(|p| p / 100.0).ok_or_else(|| {
            Invalid(format!(
                "threshold of {} must be a percentage from 0% to 100%, like \"5%\" (got {value})",
                metric.as_str()
            ))
        });
    }
    let amount = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    amount
        .filter(|a| a.is_finite() && *a >= 0.0)
        .ok_or_else(|| {
            Invalid(format!(
                "threshold of spend must be an amount of 0 or more, like 250 (got {value})"
            ))
        })
}

impl RuleInput {
    /// The rule, or every problem with the definition.
    pub fn validate(&self) -> Result<Rule, RuleError> {
        let mut problems: Vec<String> = Vec::new();
        if let Err(e) = validate_id(&self.id) {
            problems.push(e.to_string());
        }
        let metric = Metric::parse(&self.metric)
            .map_err(|e| problems.push(e.to_string()))
            .ok();
        let window_hours = match &self.window {
            None => Some(if self.sigmas.is_some() { 1 } else { 24 }),
            Some(w) => parse_window(w)
                .map_err(|e| problems.push(e.to_string()))
                .ok(),
        };
        let condition = match (self.sigmas, metric) {
            (Some(sigmas), metric) => {
                if metric.is_some_and(|m| m != Metric::DeliveryRate) {
                    problems.push(format!(
                        "anomaly rules (sigmas) watch delivery_rate only, not {}",
                        self.metric
                    ));
                }
                if self.operator.is_some() || self.threshold.is_some() {
                    problems
                        .push("an anomaly rule takes sigmas, not an operator or threshold".into());
                }
                if !(sigmas.is_finite() && sigmas > 0.0 && sigmas <= 10.0) {
                    problems.push(format!(
                        "sigmas must be above 0 and at most 10 (got {sigmas})"
                    ));
                }
                Some(Condition::Anomaly { sigmas })
            }
            (None, Some(metric)) => {
                let operator = match &self.operator {
                    None => {
                        problems.push("operator is missing: one of >, >=, <, <=".into());
                        None
                    }
                    Some(o) => Operator::parse(o)
                        .map_err(|e| problems.push(e.to_string()))
                        .ok(),
                };
                let threshold = match &self.threshold {
                    None => {
                        problems.push(format!(
                            "threshold is missing ({})",
                            if metric.is_rate() {
                                "a percentage like \"5%\""
                            } else {
                                "an amount like 250"
                            }
                        ));
                        None
                    }
                    Some(t) => parse_threshold(metric, t)
                        .map_err(|e| problems.push(e.to_string()))
                        .ok(),
                };
                operator
                    .zip(threshold)
                    .map(|(operator, threshold)| Condition::Threshold {
                        metric,
                        operator,
                        threshold,
                    })
            }
            (None, None) => {
                // Still say what else is wrong with it.
                if let Some(Err(e)) = self.operator.as_deref().map(Operator::parse) {
                    problems.push(e.to_string());
                }
                None
            }
        };
        match (condition, window_hours) {
            (Some(condition), Some(window_hours)) if problems.is_empty() => {
                let rate = !matches!(
                    condition,
                    Condition::Threshold {
                        metric: Metric::Spend,
                        ..
                    }
                );
                Ok(Rule {
                    id: self.id.clone(),
                    condition,
                    window_hours,
                    min_volume: self.min_volume.unwrap_or(if rate {
                        DEFAULT_MIN_VOLUME
                    } else {
                        0
                    }),
                    enabled: self.enabled.unwrap_or(true),
                })
            }
            _ => Err(RuleError(problems)),
        }
    }
}

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

/// Whether a rule is breaching, as last notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Ok,
    Firing,
}

/// A rule's state, stored between evaluations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    /// When the current status began (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Breaches so far (numbers each breach's notices).
    #[serde(default)]
    pub breaches: u64,
    /// The last reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Reading>,
    /// Notices not yet delivered everywhere (tried again on the next evaluation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsent: Vec<Pending>,
    /// Times stored; the write is conditional on it.
    #[serde(skip)]
    pub version: u64,
}

/// A notice and the destinations it has yet to reach.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub notice: Notice,
    #[serde(default)]
    pub email: bool,
    #[serde(default)]
    pub webhook: bool,
}

impl Pending {
    /// A new notice, for every destination the tenant has (`None`: it has none).
    pub fn new(notice: Notice, to: &Destinations) -> Option<Pending> {
        let p = Pending {
            notice,
            email: !to.emails.is_empty(),
            webhook: to.webhook.is_some(),
        };
        (p.email || p.webhook).then_some(p)
    }

    pub fn is_done(&self) -> bool {
        !self.email && !self.webhook
    }
}

/// Adds a pending notice, keeping at most [`MAX_UNSENT`] (the oldest go first).
pub fn queue(unsent: &mut Vec<Pending>, pending: Pending) {
    unsent.push(pending);
    if unsent.len() > MAX_UNSENT {
        unsent.drain(..unsent.len() - MAX_UNSENT);
    }
}

/// Notices left unsent are kept up to this many (the oldest go first).
pub const MAX_UNSENT: usize = 10;

/// What a notice says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    Firing,
    Resolved,
    Budget,
}

/// One notice, as the webhook's JSON body carries it (and the email shows it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// `alert.firing`, `alert.resolved` or `budget.threshold`.
    #[serde(rename = "type")]
    pub kind: NoticeKind,
    pub tenant: String,
    /// The rule id, or `budget`.
    pub rule: String,
    /// The rule in words.
    pub description: String,
    pub metric: Metric,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    pub volume: u64,
    /// When the breach began (RFC 3339).
    pub since: String,
    /// When this notice was made (RFC 3339).
    pub at: String,
    /// `{tenant}/{rule}/{breach}`: the firing and resolved notices of one breach
    /// share it (the budget's: `{tenant}/budget/{month}/{percent}`).
    pub breach_id: String,
    pub summary: String,
}

impl Notice {
    pub fn event_type(&self) -> &'static str {
        match self.kind {
            NoticeKind::Firing => "alert.firing",
            NoticeKind::Resolved => "alert.resolved",
            NoticeKind::Budget => "budget.threshold",
        }
    }

    /// The email subject.
    pub fn subject(&self) -> String {
        let tag = match self.kind {
            NoticeKind::Firing => "FIRING",
            NoticeKind::Resolved => "RESOLVED",
            NoticeKind::Budget => "BUDGET",
        };
        format!("[Beacon] {tag} {}: {}", self.tenant, self.summary)
    }

    /// The webhook body: `{"type": ..., ...}` (the notice itself).
    pub fn body(&self) -> Vec<u8> {
        let mut v = serde_json::to_value(self).expect("a notice serializes");
        v["type"] = Value::from(self.event_type());
        serde_json::to_vec(&v).expect("a value serializes")
    }

    /// The email's plain-text body.
    pub fn text(&self) -> String {
        let mut lines = vec![
            self.summary.clone(),
            String::new(),
            format!("Tenant:    {}", self.tenant),
            format!("Rule:      {} ({})", self.rule, self.description),
        ];
        if let Some(v) = self.value {
            lines.push(format!("Value:     {}", self.metric.show(v)));
        }
        if let Some(t) = self.threshold {
            lines.push(format!("Threshold: {}", self.metric.show(t)));
        }
        lines.push(format!("Volume:    {}", self.volume));
        lines.push(format!("Since:     {}", self.since));
        lines.push(format!("Breach:    {}", self.breach_id));
        lines.push(String::new());
        lines.push(match self.kind {
            NoticeKind::Firing => {
                "You get one notice when this rule starts to breach and one when it stops.".into()
            }
            NoticeKind::Resolved => "The rule is no longer breaching.".into(),
            NoticeKind::Budget => {
                "You get one notice per threshold (75%, 90%, 100%) per month.".into()
            }
        });
        lines.join("\n")
    }
}

/// Moves a rule's state on from a reading: a notice when a rule starts to breach, and
/// one when it stops (or when its window no longer holds enough traffic to judge);
/// nothing while it stays as it was, so a long breach is one notice, not a flood.
pub fn step(
    tenant: &str,
    rule: &Rule,
    state: &State,
    reading: &Reading,
    now: DateTime<Utc>,
) -> (State, Option<Notice>) {
    let mut next = state.clone();
    next.last = Some(reading.clone());
    let at = crate::stats::rfc3339(now);
    let metric = rule.metric();
    let kind = match (state.status, reading.breached) {
        (Status::Ok, Some(true)) => NoticeKind::Firing,
        (Status::Firing, Some(false) | None) => NoticeKind::Resolved,
        _ => return (next, None),
    };
    let since = match kind {
        NoticeKind::Firing => at.clone(),
        _ => state.since.clone().unwrap_or_else(|| at.clone()),
    };
    if kind == NoticeKind::Firing {
        next.breaches += 1;
    }
    next.status = if kind == NoticeKind::Firing {
        Status::Firing
    } else {
        Status::Ok
    };
    next.since = Some(at.clone());
    let shown = reading
        .value
        .map_or_else(|| "no data".to_string(), |v| metric.show(v));
    let summary = match (kind, reading.breached) {
        (NoticeKind::Firing, _) => format!(
            "{} is {shown} over the last {} h ({})",
            metric.label(),
            rule.window_hours,
            rule.describe()
        ),
        (_, None) => format!(
            "{} resolved: too little traffic in the last {} h to judge ({shown}, volume {})",
            rule.id, rule.window_hours, reading.volume
        ),
        _ => format!(
            "{} is back to {shown} over the last {} h",
            metric.label(),
            rule.window_hours
        ),
    };
    let notice = Notice {
        kind,
        tenant: tenant.to_string(),
        rule: rule.id.clone(),
        description: rule.describe(),
        metric,
        value: reading.value,
        threshold: reading.threshold,
        volume: reading.volume,
        since,
        at,
        breach_id: format!("{tenant}/{}/{}", rule.id, next.breaches),
        summary,
    };
    (next, Some(notice))
}

/// A tenant's monthly budget, in the currency its events' costs are in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    pub monthly: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// The shares of the budget that send a notice.
pub const BUDGET_LEVELS: [u32; 3] = [75, 90, 100];

impl Budget {
    pub fn new(monthly: f64, currency: Option<String>) -> Result<Budget, Invalid> {
        if !(monthly.is_finite() && monthly > 0.0) {
            return Err(Invalid(format!(
                "the monthly budget must be an amount above 0 (got {monthly})"
            )));
        }
        if let Some(c) = &currency {
            if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(Invalid(format!(
                    "currency `{c}` must be a three-letter ISO 4217 code like USD"
                )));
            }
        }
        Ok(Budget { monthly, currency })
    }
}

/// How far the month's budget notices have gone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetState {
    /// `YYYY-MM` the level is of.
    pub month: String,
    /// The highest level notified this month (0: none).
    pub level: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsent: Vec<Pending>,
    #[serde(skip)]
    pub version: u64,
}

/// The first and last day sort keys of `now`'s month (`D#2026-11-01`, `D#2026-11-31`).
pub fn month_days(now: DateTime<Utc>) -> (String, String) {
    let month = now.format("%Y-%m");
    (format!("D#{month}-01"), format!("D#{month}-31"))
}

/// Moves the budget's state on from the month's spend so far: one notice when spend
/// first reaches 75%, 90% and 100% of the budget in a month (the highest level
/// reached, if it jumps past several at once).
pub fn budget_step(
    tenant: &str,
    budget: &Budget,
    state: &BudgetState,
    spent: f64,
    now: DateTime<Utc>,
) -> (BudgetState, Option<Notice>) {
    let month = format!("{:04}-{:02}", now.year(), now.month());
    let mut next = state.clone();
    if next.month != month {
        next.month = month.clone();
        next.level = 0;
    }
    let share = spent / budget.monthly;
    let reached = BUDGET_LEVELS
        .into_iter()
        .filter(|l| share * 100.0 >= *l as f64 - 1e-9)
        .max()
        .unwrap_or(0);
    if reached <= next.level {
        return (next, None);
    }
    next.level = reached;
    let at = crate::stats::rfc3339(now);
    let currency = budget
        .currency
        .as_deref()
        .map(|c| format!(" {c}"))
        .unwrap_or_default();
    let notice = Notice {
        kind: NoticeKind::Budget,
        tenant: tenant.to_string(),
        rule: "budget".into(),
        description: format!("monthly budget of {:.2}{currency}", budget.monthly),
        metric: Metric::Spend,
        value: Some(spent),
        threshold: Some(budget.monthly * reached as f64 / 100.0),
        volume: 0,
        since: format!("{month}-01T00:00:00Z"),
        at,
        breach_id: format!("{tenant}/budget/{month}/{reached}"),
        summary: format!(
            "{reached}% of the {month} budget used: spent {spent:.2}{currency} of {:.2}{currency}",
            budget.monthly
        ),
    };
    (next, Some(notice))
}

/// Where a tenant's notices go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Destinations {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
}

/// A webhook: every notice is POSTed to `url` with its body signed by `secret`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub url: String,
    pub secret: String,
}

impl Destinations {
    pub fn is_empty(&self) -> bool {
        self.emails.is_empty() && self.webhook.is_none()
    }

    /// `ops@acme.example, webhook https://...` (or `no email`), for people.
    pub fn describe(&self) -> String {
        let emails = if self.emails.is_empty() {
            "no email".to_string()
        } else {
            self.emails.join(", ")
        };
        let webhook = self
            .webhook
            .as_ref()
            .map(|w| format!(", webhook {}", w.url))
            .unwrap_or_default();
        format!("{emails}{webhook}")
    }
}

/// Checks a webhook URL as a tenant sets it: https to a public address, checked after
/// resolving its name ([`crate::alert::outbound::validate`]; `http` to this machine only with
/// the local-development switch). Returns the URL as it is to be stored, and why its
/// name could not be checked yet, if it could not.
pub async fn validate_webhook_url(
    text: &str,
    policy: crate::alert::outbound::Policy,
    lookup: &dyn crate::alert::outbound::Lookup,
) -> Result<crate::alert::outbound::Checked, Invalid> {
    crate::alert::outbound::validate(text, policy, lookup)
        .await
        .map_err(|e| Invalid(format!("webhook URL {e}")))
}

/// Checks an email address for notices.
pub fn validate_email(address: &str) -> Result<(), Invalid> {
    if email_address::EmailAddress::is_valid(address) {
        Ok(())
    } else {
        Err(Invalid(format!("`{address}` is not an email address")))
    }
}

/// A fresh webhook signing secret: `whsec_` and 32 random bytes, base64url.
pub fn new_secret() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The header a webhook request carries its signature in.
pub const SIGNATURE_HEADER: &str = "Beacon-Signature";

/// `t={unix seconds},v1={hex HMAC-SHA256 of "{t}.{body}" keyed by the secret}`. The
/// time is signed too, so a captured request cannot be replayed later.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, timestamp, body))
    )
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Verifies a signature header as a receiver would: the MAC matches (in constant
/// time) and the time is within `tolerance_secs` of `now`.
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), Invalid> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", s)) => signatures.push(s.to_string()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(|| Invalid("the signature has no t= timestamp".into()))?;
    // Checked: the header is the sender's (or an attacker's) to choose.
    let age = now.checked_sub(timestamp).ok_or_else(|| {
        Invalid(format!(
            "the signature's time t={timestamp} is out of range"
        ))
    })?;
    if age.checked_abs().is_none_or(|a| a > tolerance_secs) {
        return Err(Invalid(format!(
            "the signature is {age} s old; at most {tolerance_secs} s allowed"
        )));
    }
    let expected = hex::encode(mac(secret, timestamp, body));
    let matched = signatures.iter().any(|s| {
        use subtle::ConstantTimeEq;
        s.len() == expected.len() && bool::from(s.as_bytes().ct_eq(expected.as_bytes()))
    });
    if matched {
        Ok(())
    } else {
        Err(Invalid("the signature does not match the body".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(t: &str) -> DateTime<Utc> {
        t.parse().unwrap()
    }

    fn input(v: Value) -> RuleInput {
        serde_json::from_value(v).unwrap()
    }

    fn hours(spec: &[(&str, u64, u64, u64)]) -> Hours {
        // (hour, sent, delivered, bounced)
        let mut h = Hours::default();
        for (t, sent, delivered, bounced) in spec {
            let c = Counters {
                sent: *sent,
                delivered: *delivered,
                bounced_hard: *bounced,
                ..Default::default()
            };
            h.0.insert(at(t), c);
        }
        h
    }

    #[test]
    fn a_breach_fires_once_and_resolves_once() {
        let rule = input(json!({"id": "bounces", "metric": "bounce_rate", "operator": ">", "threshold": "5%", "window": "1h"}))
            .validate()
            .unwrap();
        let mut state = State::default();
        let mut notices = Vec::new();
        // 10:xx: 8% bounces; stays so at 10:30 and 11:10 (window 10:00-11:59); then clean.
        let traffic = hours(&[
            ("2026-11-23T10:00:00Z", 500, 460, 40),
            ("2026-11-23T12:00:00Z", 500, 495, 5),
            ("2026-11-23T13:00:00Z", 500, 495, 5),
        ]);
        for now in [
            "2026-11-23T10:10:00Z",
            "2026-11-23T10:30:00Z",
            "2026-11-23T11:10:00Z",
            "2026-11-23T12:10:00Z",
            "2026-11-23T13:10:00Z",
            "2026-11-23T13:20:00Z",
        ] {
            let reading = read(&rule, &traffic, at(now));
            let (next, notice) = step("acme", &rule, &state, &reading, at(now));
            state = next;
            notices.extend(notice);
        }
        let kinds: Vec<NoticeKind> = notices.iter().map(|n| n.kind).collect();
        assert_eq!(kinds, vec![NoticeKind::Firing, NoticeKind::Resolved]);
        assert_eq!(notices[0].value, Some(0.08));
        assert_eq!(notices[0].breach_id, "acme/bounces/1");
        assert_eq!(notices[1].breach_id, "acme/bounces/1", "one breach, one id");
        assert_eq!(notices[1].since, "2026-11-23T10:10:00Z");
        assert!(
            notices[0].summary.contains("bounce rate is 8%"),
            "{}",
            notices[0].summary
        );
        assert_eq!(state.status, Status::Ok);
        // A second breach is a new one.
        let spike = hours(&[("2026-11-23T15:00:00Z", 200, 150, 50)]);
        let reading = read(&rule, &spike, at("2026-11-23T15:05:00Z"));
        let (_, notice) = step("acme", &rule, &state, &reading, at("2026-11-23T15:05:00Z"));
        assert_eq!(notice.unwrap().breach_id, "acme/bounces/2");
    }

    #[test]
    fn too_little_traffic_judges_nothing_and_ends_a_breach() {
        let rule = input(json!({"id": "b", "metric": "bounce_rate", "operator": ">=", "threshold": "5%", "window": "1h"}))
            .validate()
            .unwrap();
        assert_eq!(rule.min_volume, 100);
        let few = hours(&[("2026-11-23T10:00:00Z", 20, 10, 10)]);
        let reading = read(&rule, &few, at("2026-11-23T10:30:00Z"));
        assert_eq!((reading.breached, reading.value), (None, Some(0.5)));
        let (state, notice) = step(
            "acme",
            &rule,
            &State::default(),
            &reading,
            at("2026-11-23T10:30:00Z"),
        );
        assert_eq!((state.status, notice), (Status::Ok, None));
        let firing = State {
            status: Status::Firing,
            ..Default::default()
        };
        let (state, notice) = step("acme", &rule, &firing, &reading, at("2026-11-23T10:30:00Z"));
        assert_eq!(state.status, Status::Ok);
        let notice = notice.unwrap();
        assert_eq!(notice.kind, NoticeKind::Resolved);
        assert!(notice.summary.contains("too little traffic"));
    }

    #[test]
    fn an_anomaly_is_a_delivery_rate_far_below_its_baseline() {
        let rule = input(json!({"id": "dip", "metric": "delivery_rate", "sigmas": 3}))
            .validate()
            .unwrap();
        assert_eq!(rule.window_hours, 1);
        // A week of hours alternating 98% and 99% (mean 98.5%, σ 0.5 pp): bound 97%.
        let mut spec = Vec::new();
        let start = at("2026-11-16T10:00:00Z");
        let times: Vec<String> = (0..168)
            .map(|i| crate::stats::rfc3339(start + Duration::hours(i)))
            .collect();
        for (i, t) in times.iter().enumerate() {
            spec.push((t.as_str(), 1000, if i % 2 == 0 { 980 } else { 990 }, 0));
        }
        let mut traffic = hours(&spec);
        let now = at("2026-11-23T11:20:00Z");
        let window = |delivered: u64| Counters {
            sent: 1000,
            delivered,
            ..Default::default()
        };
        traffic.0.insert(at("2026-11-23T10:00:00Z"), window(970));
        traffic.0.insert(at("2026-11-23T11:00:00Z"), window(970));
        let r = read(&rule, &traffic, now);
        assert!((r.threshold.unwrap() - 0.97).abs() < 1e-9, "{r:?}");
        assert_eq!(r.breached, Some(false), "97% is at the bound, not below");
        traffic.0.insert(at("2026-11-23T11:00:00Z"), window(900));
        let r = read(&rule, &traffic, now);
        assert_eq!(r.breached, Some(true));
        assert_eq!(r.detail, "baseline 98.5% ± 0.5% over 168 h");
        // Without a day of history there is nothing to compare with.
        let young = hours(&[("2026-11-23T11:00:00Z", 1000, 500, 0)]);
        assert_eq!(read(&rule, &young, now).breached, None);
    }

    #[test]
    fn budget_notices_come_at_75_90_and_100_percent_once_a_month() {
        let budget = Budget::new(500.0, Some("USD".into())).unwrap();
        let mut state = BudgetState::default();
        let mut levels = Vec::new();
        for (now, spent) in [
            ("2026-11-05T10:00:00Z", 300.0), // 60%
            ("2026-11-10T10:00:00Z", 375.0), // 75%
            ("2026-11-11T10:00:00Z", 400.0), // 80%: already told
            ("2026-11-20T10:00:00Z", 520.0), // 104%: jumps past 90
            ("2026-11-21T10:00:00Z", 530.0), // nothing new
            ("2026-12-01T10:00:00Z", 460.0), // new month, 92%
        ] {
            let (next, notice) = budget_step("acme", &budget, &state, spent, at(now));
            state = next;
            if let Some(n) = notice {
                levels.push((n.breach_id.clone(), n.summary.clone()));
            }
        }
        let ids: Vec<&str> = levels.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            ids,
            vec![
                "acme/budget/2026-11/75",
                "acme/budget/2026-11/100",
                "acme/budget/2026-12/90"
            ]
        );
        assert_eq!(
            levels[1].1,
            "100% of the 2026-11 budget used: spent 520.00 USD of 500.00 USD"
        );
        assert!(Budget::new(0.0, None).is_err());
        assert!(Budget::new(10.0, Some("usd".into()))
            .unwrap_err()
            .contains("ISO 4217"));
    }

    #[test]
    fn webhook_signatures_verify_and_tampering_fails() {
        let secret = new_secret();
        assert!(secret.starts_with("whsec_"));
        let body = br#"{"type":"alert.firing"}"#;
        let header = sign(&secret, 1_795_000_000, body);
        assert!(header.starts_with("t=1795000000,v1="));
        assert_eq!(verify(&secret, &header, body, 1_795_000_100, 300), Ok(()));
        assert!(verify(&secret, &header, b"{}", 1_795_000_100, 300)
            .unwrap_err()
            .contains("does not match"));
        assert!(verify("whsec_other", &header, body, 1_795_000_100, 300).is_err());
        assert!(verify(&secret, &header, body, 1_795_001_000, 300)
            .unwrap_err()
            .contains("old"));
        // Hand-checked: HMAC-SHA256("k", "1.x").
        assert_eq!(
            sign("k", 1, b"x"),
            format!(
                "t=1,v1={}",
                hex::encode(&{
                    let mut m = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
                    m.update(b"1.x");
                    m.finalize().into_bytes().to_vec()
                })
            )
        );
    }

    #[test]
    fn hostile_signature_headers_are_refused_without_panicking() {
        let body = b"{}";
        let now = 1_795_000_000;
        for header in [
            "t=-9223372036854775808,v1=00",
            "t=9223372036854775807,v1=00",
            "t=-1,v1=00",
            "t=99999999999999999999999,v1=00",
            "t=,v1=",
            "t=abc",
            "v1=deadbeef",
            "",
            ",,,===,t",
            "t=1795000000,v1=\u{fffd}\u{0}",
        ] {
            assert!(verify("k", header, body, now, 300).is_err(), "{header:?}");
            // The receiver's clock at either end of the range, too.
            assert!(
                verify("k", header, body, i64::MIN, 300).is_err(),
                "{header:?}"
            );
            assert!(
                verify("k", header, body, i64::MAX, i64::MAX).is_err(),
                "{header:?}"
            );
        }
        let e = verify("k", "t=-9223372036854775808,v1=00", body, now, 300).unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        // A genuine signature at the extremes still verifies.
        for t in [i64::MIN, i64::MAX] {
            assert_eq!(verify("k", &sign("k", t, body), body, t, 0), Ok(()));
        }
        assert!(verify("k", &sign("k", i64::MAX, body), body, -1, i64::MAX).is_err());
    }

    #[test]
    fn bad_rule_definitions_are_refused_with_every_problem_named() {
        let err = |v: Value| input(v).validate().unwrap_err().to_string();
        let e = err(json!({"id": "Bad Id", "metric": "bounces", "window": "2w"}));
        assert!(e.contains("id `Bad Id` must be 1-64 characters"), "{e}");
        assert!(
            e.contains("unknown metric `bounces`; one of bounce_rate"),
            "{e}"
        );
        assert!(e.contains("window `2w` must be whole hours or days"), "{e}");
        let e = err(json!({"id": "b", "metric": "bounce_rate", "operator": "~", "threshold": 5}));
        assert!(e.contains("unknown operator `~`"), "{e}");
        assert!(
            e.contains("must be a percentage from 0% to 100%, like \"5%\" (got 5)"),
            "{e}"
        );
        let e = err(json!({"id": "b", "metric": "complaint_rate", "operator": ">"}));
        assert!(e.contains("threshold is missing"), "{e}");
        let e =
            err(json!({"id": "b", "metric": "bounce_rate", "threshold": "150%", "operator": ">"}));
        assert!(e.contains("(got \"150%\")"), "{e}");
        let e = err(json!({"id": "b", "metric": "open_rate", "sigmas": 0, "operator": "<"}));
        assert!(e.contains("watch delivery_rate only"), "{e}");
        assert!(e.contains("takes sigmas, not an operator"), "{e}");
        assert!(e.contains("sigmas must be above 0"), "{e}");
        let e = err(json!({"id": "s", "metric": "spend", "operator": ">", "threshold": -1}));
        assert!(e.contains("amount of 0 or more"), "{e}");
        assert!(err(
            json!({"id": "w", "metric": "spend", "operator": ">", "threshold": 1, "window": "8d"})
        )
        .contains("from 1h to 7d"));
        // Unknown fields are refused by the reader.
        assert!(serde_json::from_value::<RuleInput>(
            json!({"id": "x", "metric": "spend", "treshold": 1})
        )
        .is_err());
        // And good ones are read as meant.
        let spend = input(json!({"id": "spend", "metric": "spend", "operator": ">", "threshold": "250.50", "window": "1d"}))
            .validate()
            .unwrap();
        assert_eq!((spend.window_hours, spend.min_volume), (24, 0));
        assert_eq!(spend.describe(), "spend > 250.50 over 24 h");
        assert_eq!(parse_window("7d"), Ok(168));
    }

    /// Resolves the test's names: a public receiver, names that lead inside, and
    /// nothing else (no real DNS in tests).
    fn names() -> crate::testkit::memory::StaticLookup {
        let lookup = crate::testkit::memory::StaticLookup::default();
        let ip = |t: &str| -> std::net::IpAddr { t.parse().unwrap() };
        lookup.set(
            "hooks.acme.example",
            &[
                ip("93.184.215.14"),
                ip("2606:2800:21f:cb07:6820:80da:af6b:8b2c"),
            ],
        );
        lookup.set("metadata.google.internal", &[ip("169.254.169.254")]);
        lookup.set("intranet.acme.example", &[ip("10.20.30.40")]);
        lookup.set(
            "half.acme.example",
            &[ip("93.184.215.14"), ip("192.168.1.1")],
        );
        lookup.set("v6.acme.example", &[ip("fd00:ec2::254")]);
        lookup.set("localhost", &[ip("127.0.0.1"), ip("::1")]);
        lookup
    }

    #[tokio::test]
    async fn webhook_urls_reach_public_addresses_only_in_every_spelling() {
        use crate::alert::outbound::Policy;
        let lookup = names();
        let check = |url: &'static str, policy: Policy| {
            let lookup = &lookup;
            async move { validate_webhook_url(url, policy, lookup).await }
        };
        // (URL, what the refusal says)
        let refused = [
            // The metadata service, as the url crate reads every IPv4 spelling.
            ("https://169.254.169.254/latest/meta-data/", "goes to 169.254.169.254, the cloud instance metadata service"),
            ("https://2852039166/", "goes to 169.254.169.254, the cloud instance metadata service"),
            ("https://0xA9FEA9FE/", "goes to 169.254.169.254, the cloud instance metadata service"),
            ("https://0xa9.0xfe.0xa9.0xfe/", "goes to 169.254.169.254"),
            ("https://0251.0376.0251.0376/", "goes to 169.254.169.254"),
            ("https://169.254.43518/", "goes to 169.254.169.254"),
            ("https://%31%36%39.254.169.254/", "goes to 169.254.169.254"),
            ("https://\u{ff11}\u{ff16}\u{ff19}.254.169.254/", "goes to 169.254.169.254"),
            ("https://169.254.170.2/v2/credentials", "goes to 169.254.170.2, the container credentials service"),
            ("https://[fd00:ec2::254]/", "goes to fd00:ec2::254, the cloud instance metadata service"),
            ("https://[::ffff:169.254.169.254]/", "goes to ::ffff:169.254.169.254, the cloud instance metadata service"),
            ("https://[::ffff:a9fe:a9fe]/", "the cloud instance metadata service"),
            ("https://[64:ff9b::a9fe:a9fe]/", "goes to 64:ff9b::a9fe:a9fe, the cloud instance metadata service"),
            ("https://[::a9fe:a9fe]/", "an IPv4-compatible address"),
            // This machine: the Lambda Runtime API on 127.0.0.1:9001, short forms, IPv6.
            ("https://127.0.0.1:9001/2018-06-01/runtime/invocation/next", "goes to 127.0.0.1, a loopback address"),
            ("https://127.1/", "goes to 127.0.0.1, a loopback address"),
            ("https://0x7f.1/", "goes to 127.0.0.1"),
            ("https://017700000001/", "goes to 127.0.0.1"),
            ("https://127.0.0.1./", "goes to 127.0.0.1"),
            ("https://0x7f000001./", "goes to 127.0.0.1"),
            ("https://[0:0:0:0:0:ffff:7f00:1]/", "a loopback address"),
            ("https://0/", "goes to 0.0.0.0"),
            ("https://[::1]/", "goes to ::1, a loopback address"),
            ("https://[::]/", "the unspecified address"),
            ("https://localhost/hook", "goes to this machine (localhost)"),
            ("https://api.localhost./hook", "goes to this machine (localhost)"),
            // Networks inside.
            ("https://10.0.0.8/", "a private address (RFC 1918)"),
            ("https://172.16.5.4/", "a private address (RFC 1918)"),
            ("https://192.168.1.1/", "a private address (RFC 1918)"),
            ("https://100.100.100.200/", "carrier-grade NAT"),
            ("https://[fe80::1]/", "a link-local address"),
            ("https://[fc00::5]/", "a unique local (private) address"),
            ("https://224.0.0.1/", "a multicast address"),
            ("https://255.255.255.255/", "the broadcast address"),
            ("https://192.0.2.10/", "a documentation address"),
            ("https://198.18.0.1/", "a benchmarking address"),
            // Names are judged by what they resolve to, every address of them.
            ("https://metadata.google.internal/computeMetadata/v1/", "metadata.google.internal resolves to 169.254.169.254, the cloud instance metadata service"),
            ("https://intranet.acme.example/hook", "intranet.acme.example resolves to 10.20.30.40, a private address"),
            ("https://half.acme.example/hook", "half.acme.example resolves to 192.168.1.1"),
            ("https://v6.acme.example/hook", "v6.acme.example resolves to fd00:ec2::254"),
            // Plain http, other schemes, credentials, control characters.
            ("http://hooks.acme.example/x", "must use https"),
            ("http://127.0.0.1:9000/hook", "http to this machine only with BEACON_ALLOW_LOCAL_WEBHOOKS=1"),
            ("ftp://hooks.acme.example/x", "must use https"),
            ("file:///etc/passwd", "must use https"),
            ("gopher://127.0.0.1:6379/_INFO", "must use https"),
            ("https://user:secret@hooks.acme.example/x", "carries credentials"),
            ("https://token@hooks.acme.example/x", "carries credentials"),
            ("https://hooks.acme.example/x\r\nX-Injected: 1", "contains the control character '\\r'"),
            ("https://hooks.acme.example/x\ny", "contains the control character '\\n'"),
            ("https://hooks.acme.example/\tx", "contains the control character '\\t'"),
            ("https://hooks.acme.example/\u{0}", "control character"),
            ("https://hooks.acme.example/\u{85}", "control character"),
            ("not a url", "is not a URL"),
        ];
        for (url, says) in refused {
            let e = check(url, Policy::PUBLIC_ONLY).await.unwrap_err();
            assert!(e.starts_with("webhook URL `"), "{url}: {e}");
            assert!(e.contains(says), "{url}: {e}");
            assert!(!e.contains("secret@") && !e.contains("token@"), "{e}");
        }
        // The error never echoes a raw control character.
        let e = check("https://a.example/\r\n", Policy::PUBLIC_ONLY)
            .await
            .unwrap_err();
        assert!(!e.contains('\r') && !e.contains('\n'), "{e:?}");

        // Allowed, and stored as the url crate writes them.
        for (url, stored) in [
            ("https://93.184.215.14/hook", "https://93.184.215.14/hook"),
            (
                "https://[2606:4700::1111]/hook",
                "https://[2606:4700::1111]/hook",
            ),
            (
                "https://hooks.acme.example/beacon",
                "https://hooks.acme.example/beacon",
            ),
            (
                "HTTPS://Hooks.ACME.example:443/b?x=1",
                "https://hooks.acme.example/b?x=1",
            ),
            (
                "https://hooks.acme.example/a b",
                "https://hooks.acme.example/a%20b",
            ),
        ] {
            let ok = check(url, Policy::PUBLIC_ONLY).await.unwrap();
            assert_eq!((ok.url.as_str(), ok.unresolved), (stored, None), "{url}");
        }
        // A name that does not resolve now is taken, and said so: deliveries check it.
        let later = check("https://not-yet.acme.example/hook", Policy::PUBLIC_ONLY)
            .await
            .unwrap();
        assert!(later
            .unresolved
            .unwrap()
            .contains("not-yet.acme.example does not resolve"));

        // The local switch: http and https to this machine, and nothing more.
        let local = Policy::LOCAL_DEVELOPMENT;
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://localhost:9000/hook",
            "http://[::1]:9000/",
            "https://127.0.0.1/",
        ] {
            assert!(check(url, local).await.is_ok(), "{url}");
        }
        for (url, says) in [
            ("http://hooks.acme.example/x", "must use https"),
            ("http://10.0.0.8/", "must use https"),
            (
                "https://169.254.169.254/",
                "the cloud instance metadata service",
            ),
            ("https://intranet.acme.example/", "a private address"),
        ] {
            let e = check(url, local).await.unwrap_err();
            assert!(e.contains(says), "{url}: {e}");
        }
    }

    #[test]
    fn stored_rules_replace_the_defaults_of_their_id() {
        assert_eq!(
            defaults()[0].describe(),
            "bounce_rate >= 5% over 24 h, at least 100 sent"
        );
        assert_eq!(
            defaults()[1].describe(),
            "complaint_rate >= 0.1% over 24 h, at least 100 delivered"
        );
        let mut off = defaults()[0].clone();
        off.enabled = false;
        let extra = input(
            json!({"id": "errors", "metric": "error_rate", "operator": ">", "threshold": "2%"}),
        )
        .validate()
        .unwrap();
        let rules = effective(&[off, extra]);
        let ids: Vec<(&str, bool)> = rules.iter().map(|r| (r.id.as_str(), r.enabled)).collect();
        assert_eq!(
            ids,
            vec![
                ("ses-bounce-rate", false),
                ("ses-complaint-rate", true),
                ("errors", true)
            ]
        );
    }
}
