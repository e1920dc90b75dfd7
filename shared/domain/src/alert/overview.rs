//! A tenant's alerting at a glance (`GET /v1/alerts`, the dashboard's deliverability
//! page): every rule in force with its state, last reading and recent changes.

use super::store::TenantAlerts;
use super::{effective, Change, Metric, Reading, Status};
use serde::Serialize;

/// One rule and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleStatus {
    pub id: String,
    pub description: String,
    pub metric: Metric,
    pub enabled: bool,
    pub builtin: bool,
    pub status: Status,
    /// When the current status began (RFC 3339); `None` if it never changed.
    pub since: Option<String>,
    pub breaches: u64,
    /// The last evaluation's reading.
    pub last: Option<Reading>,
    /// Newest first.
    pub history: Vec<Change>,
}

/// The rules in force (defaults, then the tenant's own), each with its stored state.
pub fn overview(alerts: &TenantAlerts) -> Vec<RuleStatus> {
    effective(&alerts.rules)
        .into_iter()
        .map(|rule| {
            let state = alerts.states.get(&rule.id).cloned().unwrap_or_default();
            RuleStatus {
                description: rule.describe(),
                metric: rule.metric(),
                enabled: rule.enabled,
                builtin: super::is_builtin(&rule.id),
                status: state.status,
                since: state.since,
                breaches: state.breaches,
                last: state.last,
                history: state.history.into_iter().rev().collect(),
                id: rule.id,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::State;

    #[test]
    fn every_rule_in_force_with_its_state_newest_change_first() {
        let mut alerts = TenantAlerts::default();
        let first = crate::alert::defaults()[0].id.clone();
        alerts.states.insert(
            first.clone(),
            State {
                status: Status::Firing,
                since: Some("2026-12-03T08:00:00Z".into()),
                breaches: 2,
                history: vec![
                    Change {
                        status: Status::Firing,
                        at: "2026-12-02T08:00:00Z".into(),
                        value: Some(0.07),
                    },
                    Change {
                        status: Status::Ok,
                        at: "2026-12-02T10:00:00Z".into(),
                        value: Some(0.01),
                    },
                ],
                ..State::default()
            },
        );
        let all = overview(&alerts);
        assert_eq!(all.len(), crate::alert::defaults().len());
        let shown = all.iter().find(|r| r.id == first).unwrap();
        assert_eq!(shown.status, Status::Firing);
        assert!(shown.builtin);
        assert_eq!(shown.history[0].at, "2026-12-02T10:00:00Z");
        assert!(all
            .iter()
            .filter(|r| r.id != first)
            .all(|r| r.status == Status::Ok && r.history.is_empty()));
    }
}
