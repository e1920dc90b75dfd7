//! Human or machine: every open and click gets a verdict. At the edge, from the request
//! alone ([`classify`]: the user agent and the IP's network, from the range lists of
//! [`networks`]); in the aggregate, again from what else happened to the message
//! ([`trail`]: an open on delivery, a click before any open, the honeypot link), which
//! may overturn a verdict already counted.

pub mod classify;
pub mod networks;
pub mod trail;

/// Every reason a machine open or bot click can be counted for, as the rollups name
/// them: the request's own ([`classify`]) and the trail's ([`trail`]). The list is closed
/// so a rollup item holds a bounded number of reason counters and the stats API a
/// stable set of keys; a reason not listed (a trail stored by an older version) counts
/// as [`OTHER_REASON`].
pub const MACHINE_REASONS: [&str; 14] = [
    "apple_proxy",
    "apple_mpp_agent",
    "scanner_network",
    "scanner_agent",
    "machine_agent",
    "provider_flagged",
    "bot_device",
    "honeypot",
    "near_honeypot",
    "click_burst",
    "clicked_on_delivery",
    "opened_on_delivery",
    "opened_with_scan",
    OTHER_REASON,
];

/// What a machine verdict with a reason outside [`MACHINE_REASONS`] counts as.
pub const OTHER_REASON: &str = "other";

/// The listed name of a machine verdict's reason ([`OTHER_REASON`] if it is not listed).
pub fn machine_reason(reason: &str) -> &'static str {
    MACHINE_REASONS
        .iter()
        .find(|r| **r == reason)
        .copied()
        .unwrap_or(OTHER_REASON)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_machine_verdict_of_a_request_has_a_listed_reason() {
        use crate::event::{DeviceClass, Event, EventType, EventView};
        let mut cases = Vec::new();
        for kind in [EventType::Opened, EventType::Clicked] {
            for (ua, network, device) in [
                ("Mozilla/5.0", Some(networks::APPLE_PROXY), None),
                ("Mozilla/5.0", None, None),
                ("Mozilla/5.0 (X11)", Some(networks::SCANNERS), None),
                ("Mozilla/5.0 (X11)", Some(networks::PROVIDER_FLAGGED), None),
                ("python-requests/2.31", None, None),
                ("Mozilla/5.0 (X11)", None, Some(DeviceClass::Bot)),
            ] {
                let now = chrono::Utc::now();
                let mut e = Event::new("e".into(), "t".into(), kind.clone(), now, now);
                e.context.user_agent = Some(ua.into());
                e.context.network = network.map(str::to_string);
                e.context.device_class = device;
                e.link_url = Some("https://example.com/a#beacon-honeypot".into());
                cases.push(e);
            }
        }
        let mut classifier = classify::Classifier::default();
        for e in &cases {
            let (machine, reason) = classifier.machine(&EventView::from(e)).unwrap();
            assert!(machine, "{e:?}");
            assert_ne!(
                machine_reason(reason),
                OTHER_REASON,
                "{reason} is not listed"
            );
        }
    }

    #[test]
    fn an_unlisted_reason_counts_as_other() {
        assert_eq!(machine_reason("click_burst"), "click_burst");
        assert_eq!(machine_reason("found_by_a_future_rule"), OTHER_REASON);
    }
}
