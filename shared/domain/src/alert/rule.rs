//! Rules: what a rule watches, how it compares, the built-in ones, and checking a rule
//! as a tenant writes it.

use crate::rollup::Counters;
use crate::stats::{decimal, ratio, Rates};
use serde::{Deserialize, Serialize};
use serde_json::Value;
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
