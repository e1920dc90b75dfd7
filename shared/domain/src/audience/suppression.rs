//! The suppression list: recipients a tenant must not send to again on a channel.
//!
//! The stream puts a recipient on it for a hard bounce (the address does not exist), a
//! complaint (they marked the mail as spam) or an unsubscribe; never for a soft bounce
//! (a full mailbox recovers). Entries are per tenant and channel: unsubscribing from
//! SMS does not stop email. Writing an entry is idempotent (each reason keeps the
//! time it was first seen), so a redelivered batch changes nothing.

use crate::event::{BounceType, EventType, EventView};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why a recipient is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    HardBounce,
    Complaint,
    Unsubscribe,
    /// Added by an operator (`beacon suppression add`).
    Manual,
}

impl Reason {
    pub const ALL: [Reason; 4] = [
        Reason::HardBounce,
        Reason::Complaint,
        Reason::Unsubscribe,
        Reason::Manual,
    ];

    /// The stored attribute and the name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::HardBounce => "hard_bounce",
            Reason::Complaint => "complaint",
            Reason::Unsubscribe => "unsubscribe",
            Reason::Manual => "manual",
        }
    }

    pub fn parse(name: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// One recipient going on the list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Suppression {
    pub tenant: String,
    pub channel: String,
    pub recipient: String,
    pub reason: Reason,
    /// Event time, epoch milliseconds.
    pub at_ms: i64,
    pub campaign: Option<String>,
}

impl Suppression {
    /// What an event puts on the list: hard bounces, complaints and unsubscribes of a
    /// known recipient. Message events always carry a channel (`email` by default).
    pub fn of(e: &EventView) -> Option<Suppression> {
        let reason = match (&e.kind, e.bounce_type) {
            (EventType::Bounced, Some(BounceType::Hard)) => Reason::HardBounce,
            (EventType::Complained, _) => Reason::Complaint,
            (EventType::Unsubscribed, _) => Reason::Unsubscribe,
            _ => return None,
        };
        Some(Suppression {
            tenant: e.tenant_id.to_string(),
            channel: e
                .channel
                .as_deref()
                .unwrap_or(crate::event::validate::DEFAULT_CHANNEL)
                .to_string(),
            recipient: e.recipient_id.as_deref()?.to_string(),
            reason,
            at_ms: e.event_time.timestamp_millis(),
            campaign: e.campaign_id.as_deref().map(str::to_string),
        })
    }
}

/// A recipient as the list holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub recipient: String,
    pub channel: String,
    /// When first suppressed (RFC 3339).
    pub since: String,
    /// Each reason seen, with when it was first seen (RFC 3339).
    pub reasons: BTreeMap<Reason, String>,
    /// The campaign of the first event that suppressed them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
}

impl Entry {
    /// Folds a suppression in as the store does: the first time of each reason stays.
    pub fn merge(entry: Option<Entry>, s: &Suppression) -> Entry {
        let at = crate::stats::rfc3339(
            chrono::DateTime::from_timestamp_millis(s.at_ms).unwrap_or_default(),
        );
        let mut e = entry.unwrap_or_else(|| Entry {
            recipient: s.recipient.clone(),
            channel: s.channel.clone(),
            since: at.clone(),
            reasons: BTreeMap::new(),
            campaign: s.campaign.clone(),
        });
        e.reasons.entry(s.reason).or_insert(at);
        e
    }
}

/// The most recipients one check request may ask about.
pub const MAX_CHECK: usize = 1000;

crate::message_error!(
    /// Why a suppression check request was refused: what the caller reads.
    BadCheck
);

/// Checks the recipient ids of a check request: 1-`MAX_CHECK` ids of 1-256 characters.
pub fn validate_check(recipients: &[String]) -> Result<(), BadCheck> {
    if recipients.is_empty() {
        return Err(BadCheck(
            "`recipients` must list at least one recipient id".into(),
        ));
    }
    if recipients.len() > MAX_CHECK {
        return Err(BadCheck(format!(
            "`recipients` lists {} ids; at most {MAX_CHECK} per request",
            recipients.len()
        )));
    }
    if let Some(bad) = recipients
        .iter()
        .find(|r| r.is_empty() || r.chars().count() > 256)
    {
        return Err(BadCheck(format!(
            "recipient id `{bad}` must be 1-256 characters, as events carry them"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use chrono::TimeZone;

    fn event(kind: EventType, bounce: Option<BounceType>) -> Event {
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
            .unwrap();
        let mut e = Event::new("e1".into(), "acme".into(), kind, t, t);
        e.recipient_id = Some("r-1".into());
        e.channel = Some("email".into());
        e.campaign_id = Some("spring".into());
        e.bounce_type = bounce;
        e
    }

    fn of(e: &Event) -> Option<Suppression> {
        let json = serde_json::to_vec(e).unwrap();
        let view = EventView::parse(&json).unwrap();
        Suppression::of(&view)
    }

    #[test]
    fn hard_bounces_complaints_and_unsubscribes_suppress_soft_bounces_do_not() {
        let hard = of(&event(EventType::Bounced, Some(BounceType::Hard))).unwrap();
        assert_eq!(hard.reason, Reason::HardBounce);
        assert_eq!(
            (hard.channel.as_str(), hard.recipient.as_str()),
            ("email", "r-1")
        );
        assert_eq!(
            of(&event(EventType::Complained, None)).unwrap().reason,
            Reason::Complaint
        );
        assert_eq!(
            of(&event(EventType::Unsubscribed, None)).unwrap().reason,
            Reason::Unsubscribe
        );
        assert_eq!(of(&event(EventType::Bounced, Some(BounceType::Soft))), None);
        assert_eq!(of(&event(EventType::Bounced, None)), None);
        assert_eq!(of(&event(EventType::Delivered, None)), None);
    }

    #[test]
    fn a_suppression_is_per_channel_and_needs_a_recipient() {
        let mut sms = event(EventType::Unsubscribed, None);
        sms.channel = Some("sms".into());
        assert_eq!(of(&sms).unwrap().channel, "sms");
        let mut anonymous = event(EventType::Complained, None);
        anonymous.recipient_id = None;
        assert_eq!(of(&anonymous), None);
    }

    #[test]
    fn merging_keeps_the_first_time_of_each_reason() {
        let first = of(&event(EventType::Bounced, Some(BounceType::Hard))).unwrap();
        let mut again = first.clone();
        again.at_ms += 60_000;
        let mut complaint = first.clone();
        complaint.reason = Reason::Complaint;
        complaint.at_ms += 120_000;
        let e = Entry::merge(None, &first);
        let e = Entry::merge(Some(e), &again);
        let e = Entry::merge(Some(e), &complaint);
        assert_eq!(e.since, "2026-11-23T10:00:00Z");
        assert_eq!(e.reasons[&Reason::HardBounce], "2026-11-23T10:00:00Z");
        assert_eq!(e.reasons[&Reason::Complaint], "2026-11-23T10:02:00Z");
    }

    #[test]
    fn check_requests_are_bounded() {
        assert!(validate_check(&[]).unwrap_err().contains("at least one"));
        let many = vec!["r".to_string(); MAX_CHECK + 1];
        assert!(validate_check(&many).unwrap_err().contains("at most 1000"));
        assert!(validate_check(&["".to_string()]).is_err());
        assert!(validate_check(&["r-1".to_string()]).is_ok());
    }
}
