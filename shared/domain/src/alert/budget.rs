//! The monthly budget and its notices at 75%, 90% and 100%.

use super::*;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

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
