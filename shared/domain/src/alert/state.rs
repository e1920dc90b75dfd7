//! Whether a rule is breaching, and the notices a change of state sends.

use super::*;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// The latest changes of status, oldest first, at most [`MAX_HISTORY`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Change>,
    /// Times stored; the write is conditional on it.
    #[serde(skip)]
    pub version: u64,
}

/// One change of a rule's status: what the dashboard's alert history shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub status: Status,
    /// RFC 3339.
    pub at: String,
    /// The reading that changed it (`None`: too little traffic to judge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// Changes kept per rule (the oldest go first).
pub const MAX_HISTORY: usize = 20;

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
    next.history.push(Change {
        status: next.status,
        at: at.clone(),
        value: reading.value,
    });
    if next.history.len() > MAX_HISTORY {
        next.history.drain(..next.history.len() - MAX_HISTORY);
    }
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
