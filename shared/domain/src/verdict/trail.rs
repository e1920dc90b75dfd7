//! The trail of one message: when it was delivered, and the opens and clicks it got,
//! each with the class the rollups count it in. It is what lets a verdict come late.
//!
//! A request alone often can't tell a scanner from a person: a gateway that sends a
//! browser's agent from an unlisted network looks human until its next click lands in
//! the same second on another link, or until it follows the invisible honeypot link.
//! So every open and click of a message is kept on its trail, and each time the trail
//! grows (or its delivery time becomes known) every hit's class is worked out again
//! from the whole trail by [`Trail::settle`]. A hit whose class changes is reported,
//! and the aggregate moves its count from the human to the machine column (or back)
//! in the rollup items it was first counted in; the trail with its new classes counts
//! exactly when that run's transaction does (it is staged, see [`crate::rollup::aggregate`]).
//! The trail is the record of what has been counted, so a verdict moves a count
//! exactly once, however often a trail is settled.
//!
//! The rules, on top of the request's own verdict ([`crate::verdict::classify`]):
//! - **honeypot**: a click on the invisible link `beacon-instrument` can insert is a
//!   scanner's, and so is every click of the message within [`HONEYPOT_WINDOW`] of it;
//! - **burst**: clicks on two or more different links of one message within
//!   [`CLICK_BURST`] of each other are a scanner's (a person reads between clicks);
//! - **on delivery**: a click within [`CLICK_ON_DELIVERY`] of delivery, or an open
//!   within [`OPEN_ON_DELIVERY`] of it (Gmail's proxy excepted), is a gateway's;
//! - **scan**: an open within [`SCAN_WINDOW`] of clicks found to be a scanner's is the
//!   same gateway rendering the message.

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

/// Hits kept per message: a scanner clicks every link, a person a few. Older hits keep
/// their counted class but stop taking part in later verdicts.
pub const MAX_HITS: usize = 64;
/// Clicks on different links closer than this are a burst.
pub const CLICK_BURST: TimeDelta = TimeDelta::seconds(2);
/// A click sooner than this after delivery is a gateway's.
pub const CLICK_ON_DELIVERY: TimeDelta = TimeDelta::seconds(10);
/// An open sooner than this after delivery is a gateway's.
pub const OPEN_ON_DELIVERY: TimeDelta = TimeDelta::seconds(10);
/// Clicks this close to a honeypot click are the same scanner's.
pub const HONEYPOT_WINDOW: TimeDelta = TimeDelta::seconds(60);
/// Opens this close to a scanner's clicks are the same gateway's.
pub const SCAN_WINDOW: TimeDelta = TimeDelta::seconds(60);
/// The fragment that marks the honeypot link's destination.
pub const HONEYPOT_FRAGMENT: &str = "beacon-honeypot";

/// Whether a click's destination is the honeypot link.
pub fn is_honeypot(url: &str) -> bool {
    url.rsplit_once('#')
        .is_some_and(|(_, fragment)| fragment == HONEYPOT_FRAGMENT)
}

/// The request verdict that a Gmail proxy open carries: exempt from the delivery rule,
/// since Gmail fetches when the person opens.
pub const GMAIL_PROXY_REASON: &str = "gmail_image_proxy";

/// Which trail: one per message of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrailKey {
    pub tenant: String,
    pub message: String,
}

impl TrailKey {
    pub fn partition_key(&self) -> String {
        crate::rollup::keys::trail_partition(&self.tenant, &self.message)
    }

    pub const SORT_KEY: &'static str = crate::rollup::keys::TRAIL_SORT_KEY;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HitKind {
    #[serde(rename = "o")]
    Open,
    #[serde(rename = "c")]
    Click,
}

/// One open or click of the message. Field names are short: a trail is stored whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hit {
    /// Event time, epoch milliseconds.
    #[serde(rename = "t")]
    pub at_ms: i64,
    #[serde(rename = "k")]
    pub kind: HitKind,
    /// Link id and URL of a click.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// `#beacon-honeypot` for a click on the honeypot link, else nothing: the only
    /// thing a verdict needs of the URL (the link id names the link), and what keeps a
    /// hit's size independent of URL length.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Campaign, channel and provider: with the hour, the rollup cell it was counted
    /// in; with the recipient, the unique sets it is a member of.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    #[serde(rename = "rc", default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    #[serde(rename = "ch", default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// What the request alone said ([`crate::verdict::classify`]).
    #[serde(rename = "rm")]
    pub request_machine: bool,
    #[serde(rename = "rr")]
    pub request_reason: String,
    /// The class the rollups count it in now, and why.
    #[serde(rename = "m")]
    pub machine: bool,
    #[serde(rename = "r")]
    pub reason: String,
}

impl Hit {
    /// An open or click as its trail holds it, with the request's own verdict
    /// ([`crate::verdict::classify::machine_verdict`]) and its link id; `None` for other events.
    pub fn of(
        e: &crate::event::EventView,
        link: Option<String>,
        (request_machine, request_reason): (bool, &str),
    ) -> Option<Hit> {
        let kind = match e.kind {
            crate::event::EventType::Opened => HitKind::Open,
            crate::event::EventType::Clicked => HitKind::Click,
            _ => return None,
        };
        let owned = |s: &Option<std::borrow::Cow<str>>| s.as_deref().map(str::to_string);
        Some(Hit {
            at_ms: e.event_time.timestamp_millis(),
            kind,
            link,
            url: e
                .link_url
                .as_deref()
                .filter(|u| is_honeypot(u))
                .map(|_| format!("#{HONEYPOT_FRAGMENT}")),
            campaign: owned(&e.campaign_id),
            recipient: owned(&e.recipient_id),
            channel: owned(&e.channel),
            provider: owned(&e.provider),
            request_machine,
            request_reason: request_reason.to_string(),
            machine: false,
            reason: String::new(),
        })
    }
}

/// A verdict on one hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict<'a> {
    pub machine: bool,
    pub reason: &'a str,
}

/// A hit whose verdict changed when the trail was settled: its class, or the reason of
/// a machine verdict (the rollups count machine opens and bot clicks by reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The hit with its new verdict.
    pub hit: Hit,
    /// The class it moved to.
    pub to_machine: bool,
    /// The class and reason it was counted with before.
    pub from_machine: bool,
    pub from_reason: String,
}

impl Moved {
    /// Whether the hit changed column (human and machine), not only its reason.
    pub fn changed_class(&self) -> bool {
        self.from_machine != self.to_machine
    }
}

/// Sets a hit's verdict; the move, if what is counted changed.
fn judge_hit(hit: &mut Hit, machine: bool, reason: String) -> Option<Moved> {
    let changed = hit.machine != machine
        || (machine
            && crate::verdict::machine_reason(&hit.reason)
                != crate::verdict::machine_reason(&reason));
    let from_machine = std::mem::replace(&mut hit.machine, machine);
    let from_reason = std::mem::replace(&mut hit.reason, reason);
    changed.then(|| Moved {
        hit: hit.clone(),
        to_machine: machine,
        from_machine,
        from_reason,
    })
}

/// One message's trail. `version` and `delivered_ms` are stored beside the body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trail {
    /// Times the trail was stored (0: never); the write is conditional on it.
    #[serde(skip)]
    pub version: u64,
    /// When the message was delivered (epoch ms), once a delivery event arrived.
    #[serde(skip)]
    pub delivered_ms: Option<i64>,
    #[serde(rename = "h", default)]
    pub hits: Vec<Hit>,
}

impl Trail {
    /// The recipient its hits name (the first that names one: a message has one).
    pub fn recipient(&self) -> Option<&str> {
        self.hits.iter().find_map(|h| h.recipient.as_deref())
    }

    /// When its earliest hit happened (epoch ms): where it sorts in its recipient's
    /// index ([`crate::rollup::keys::RECIPIENT_INDEX`]), set once and never moved.
    pub fn first_hit_ms(&self) -> Option<i64> {
        self.hits.iter().map(|h| h.at_ms).min()
    }

    /// Records the delivery time, the earliest if several arrive (as the store does);
    /// whether it changed.
    pub fn deliver(&mut self, at_ms: i64) -> bool {
        if self.delivered_ms.is_some_and(|d| d <= at_ms) {
            return false;
        }
        self.delivered_ms = Some(at_ms);
        true
    }

    /// Adds a hit (its `machine`/`reason` are set here) and settles the trail: returns
    /// the new hit's verdict and the earlier hits whose verdict changed.
    pub fn add(&mut self, mut hit: Hit) -> (bool, String, Vec<Moved>) {
        if self.hits.len() >= MAX_HITS {
            self.hits.remove(0);
        }
        hit.machine = hit.request_machine;
        hit.reason = hit.request_reason.clone();
        self.hits.push(hit);
        let last = self.hits.len() - 1;
        let verdicts = self.verdicts();
        let mut moved = Vec::new();
        for (i, (machine, reason)) in verdicts.into_iter().enumerate() {
            let change = judge_hit(&mut self.hits[i], machine, reason);
            if let (Some(change), true) = (change, i != last) {
                moved.push(change);
            }
        }
        let new = &self.hits[last];
        (new.machine, new.reason.clone(), moved)
    }

    /// Works every hit's verdict out again (after the delivery time became known);
    /// returns the hits whose verdict changed.
    pub fn settle(&mut self) -> Vec<Moved> {
        let verdicts = self.verdicts();
        let mut moved = Vec::new();
        for (hit, (machine, reason)) in self.hits.iter_mut().zip(verdicts) {
            moved.extend(judge_hit(hit, machine, reason));
        }
        moved
    }

    /// Every hit's class from the whole trail; it depends on the set of hits and the
    /// delivery time only, not on the order they arrived in.
    fn verdicts(&self) -> Vec<(bool, String)> {
        let clicks: Vec<&Hit> = self
            .hits
            .iter()
            .filter(|h| h.kind == HitKind::Click)
            .collect();
        let near = |a: i64, b: i64, window: TimeDelta| (a - b).abs() <= window.num_milliseconds();
        let honeypots: Vec<i64> = clicks
            .iter()
            .filter(|h| h.url.as_deref().is_some_and(is_honeypot))
            .map(|h| h.at_ms)
            .collect();
        let click_verdict = |h: &Hit| -> (bool, &'static str) {
            if h.url.as_deref().is_some_and(is_honeypot) {
                return (true, "honeypot");
            }
            if honeypots.iter().any(|&t| near(h.at_ms, t, HONEYPOT_WINDOW)) {
                return (true, "near_honeypot");
            }
            let burst = clicks
                .iter()
                .any(|o| o.link != h.link && near(o.at_ms, h.at_ms, CLICK_BURST));
            if burst {
                return (true, "click_burst");
            }
            if let Some(d) = self.delivered_ms {
                if h.at_ms - d < CLICK_ON_DELIVERY.num_milliseconds() {
                    return (true, "clicked_on_delivery");
                }
            }
            (false, "")
        };
        let scanner_clicks: Vec<i64> = clicks
            .iter()
            .filter(|h| click_verdict(h).0)
            .map(|h| h.at_ms)
            .collect();
        self.hits
            .iter()
            .map(|h| {
                if h.request_machine {
                    return (true, h.request_reason.clone());
                }
                let (machine, reason) = match h.kind {
                    HitKind::Click => click_verdict(h),
                    HitKind::Open if h.request_reason == GMAIL_PROXY_REASON => (false, ""),
                    HitKind::Open => {
                        if self
                            .delivered_ms
                            .is_some_and(|d| h.at_ms - d < OPEN_ON_DELIVERY.num_milliseconds())
                        {
                            (true, "opened_on_delivery")
                        } else if scanner_clicks
                            .iter()
                            .any(|&t| near(h.at_ms, t, SCAN_WINDOW))
                        {
                            (true, "opened_with_scan")
                        } else {
                            (false, "")
                        }
                    }
                };
                if machine {
                    (true, reason.to_string())
                } else {
                    (false, h.request_reason.clone())
                }
            })
            .collect()
    }

    /// Unique-set membership by campaign and recipient (a message normally has one of
    /// each): whether a person opened, whether a person clicked, and per clicked link
    /// whether a person clicked it. `None`: no open (or no click) at all.
    pub fn membership(&self) -> Vec<Membership<'_>> {
        let mut out: Vec<Membership> = Vec::new();
        for h in &self.hits {
            let (Some(campaign), Some(recipient)) = (h.campaign.as_deref(), h.recipient.as_deref())
            else {
                continue;
            };
            let i = match out
                .iter()
                .position(|m| m.campaign == campaign && m.recipient == recipient)
            {
                Some(i) => i,
                None => {
                    out.push(Membership {
                        campaign,
                        recipient,
                        opened: None,
                        clicked: None,
                        links: Default::default(),
                        first_human: [None, None],
                    });
                    out.len() - 1
                }
            };
            let m = &mut out[i];
            let human = !h.machine;
            if human {
                let first = &mut m.first_human[h.kind as usize];
                *first = Some(first.map_or(h.at_ms, |t: i64| t.min(h.at_ms)));
            }
            match h.kind {
                HitKind::Open => *m.opened.get_or_insert(false) |= human,
                HitKind::Click => {
                    *m.clicked.get_or_insert(false) |= human;
                    if let Some(link) = h.link.as_deref() {
                        *m.links.entry(link).or_insert(false) |= human;
                    }
                }
            }
        }
        out
    }
}

/// One recipient's unique-set membership in one campaign, from a trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership<'a> {
    pub campaign: &'a str,
    pub recipient: &'a str,
    pub opened: Option<bool>,
    pub clicked: Option<bool>,
    pub links: std::collections::BTreeMap<&'a str, bool>,
    /// When a person first opened and first clicked (epoch ms), indexed by [`HitKind`].
    pub first_human: [Option<i64>; 2],
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_000_000_000;

    #[test]
    fn a_full_trail_of_the_longest_fields_fits_an_item_twice() {
        // The edge allows 256 characters for ids (4 bytes each at worst) and 2,048 for
        // URLs; a staged trail item holds the trail and the one before it.
        let wide = "\u{10348}".repeat(256);
        let t: chrono::DateTime<chrono::Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let mut e = crate::event::Event::new(
            wide.clone(),
            "acme".into(),
            crate::event::EventType::Clicked,
            t,
            t,
        );
        e.campaign_id = Some(wide.clone());
        e.recipient_id = Some(wide.clone());
        e.message_id = Some(wide.clone());
        e.channel = Some("c".repeat(64));
        e.provider = Some("p".repeat(64));
        let mut trail = Trail::default();
        for i in 0..(MAX_HITS as i64 + 10) {
            let mut e = e.clone();
            e.link_url = Some(format!("https://x.example/{i}/{}", "u".repeat(2_000)));
            e.event_time = t + TimeDelta::minutes(i);
            let view = crate::event::EventView::from(&e);
            let hit = Hit::of(&view, Some(format!("{i:016x}")), (false, "default")).unwrap();
            assert_eq!(hit.url, None, "a URL is not kept");
            trail.add(hit);
        }
        let body = serde_json::to_string(&trail).unwrap().len();
        assert_eq!(trail.hits.len(), MAX_HITS);
        assert!(
            2 * body + 4_096 < 400_000,
            "a staged trail item is {} bytes",
            2 * body
        );
    }

    fn click(at_s: i64, link: &str) -> Hit {
        Hit {
            at_ms: T0 + at_s * 1000,
            kind: HitKind::Click,
            link: Some(link.into()),
            url: Some(format!("https://shop.example/{link}")),
            channel: Some("email".into()),
            provider: Some("ses".into()),
            campaign: Some("spring".into()),
            recipient: Some("r1".into()),
            request_machine: false,
            request_reason: "default".into(),
            machine: false,
            reason: String::new(),
        }
    }

    fn open(at_s: i64, reason: &str) -> Hit {
        Hit {
            kind: HitKind::Open,
            link: None,
            url: None,
            request_reason: reason.into(),
            ..click(at_s, "x")
        }
    }

    fn honeypot(at_s: i64) -> Hit {
        Hit {
            url: Some(format!("https://shop.example/#{HONEYPOT_FRAGMENT}")),
            ..click(at_s, "hp")
        }
    }

    #[test]
    fn honeypot_urls() {
        assert!(is_honeypot("https://shop.example/#beacon-honeypot"));
        assert!(!is_honeypot("https://shop.example/beacon-honeypot"));
        assert!(!is_honeypot("https://shop.example/#beacon-honeypot-x"));
    }

    #[test]
    fn a_honeypot_click_moves_the_clicks_around_it_once() {
        let mut t = Trail::default();
        let (machine, _, moved) = t.add(click(600, "a"));
        assert!(!machine && moved.is_empty(), "alone, a click is a person's");
        let (machine, _, _) = t.add(click(610, "b"));
        assert!(!machine, "ten seconds apart is not a burst");
        let (machine, reason, moved) = t.add(honeypot(640));
        assert_eq!((machine, reason.as_str()), (true, "honeypot"));
        let links: Vec<_> = moved.iter().map(|m| m.hit.link.clone().unwrap()).collect();
        assert_eq!(links, ["a", "b"]);
        assert!(moved.iter().all(|m| m.to_machine));
        assert!(t.hits[..2].iter().all(|h| h.reason == "near_honeypot"));
        // Settling again moves nothing: the trail records what is counted.
        assert!(t.settle().is_empty());
        // A person clicking an hour later is a person.
        let (machine, _, moved) = t.add(click(4_000, "a"));
        assert!(!machine && moved.is_empty());
    }

    #[test]
    fn bursts_on_different_links_are_a_scanner() {
        let mut t = Trail::default();
        t.add(click(5_000, "a"));
        let (machine, reason, moved) = t.add(click(5_001, "b"));
        assert_eq!((machine, reason.as_str()), (true, "click_burst"));
        assert_eq!(moved.len(), 1, "the first click of the burst moves");
        // The same link twice in a second is a double click, not a burst.
        let mut t = Trail::default();
        t.add(click(5_000, "a"));
        assert!(!t.add(click(5_000, "a")).0);
    }

    #[test]
    fn a_late_delivery_time_reclassifies_early_hits() {
        let mut t = Trail::default();
        t.add(open(3, "default"));
        t.add(open(4, GMAIL_PROXY_REASON));
        t.add(click(5, "a"));
        t.add(open(3_600, "default"));
        assert!(t.deliver(T0));
        let moved = t.settle();
        let reasons: Vec<_> = moved.iter().map(|m| m.hit.reason.as_str()).collect();
        assert_eq!(reasons, ["opened_on_delivery", "clicked_on_delivery"]);
        assert!(!t.hits[1].machine, "Gmail fetches when the person opens");
        assert!(!t.hits[3].machine, "an hour later is a read");
        assert!(!t.deliver(T0 + 1), "the earliest delivery time stays");
        assert!(t.settle().is_empty());
    }

    #[test]
    fn opens_beside_a_scan_are_the_gateway() {
        let mut t = Trail::default();
        t.add(open(100, "default"));
        t.add(click(130, "a"));
        let (_, _, moved) = t.add(click(130, "b"));
        let reasons: Vec<_> = moved.iter().map(|m| m.hit.reason.as_str()).collect();
        assert_eq!(reasons, ["opened_with_scan", "click_burst"]);
        let m = &t.membership()[0];
        assert_eq!((m.opened, m.clicked), (Some(false), Some(false)));
        assert_eq!(m.links.values().filter(|human| **human).count(), 0);
    }

    #[test]
    fn a_machine_verdict_whose_reason_changes_is_reported_in_its_column() {
        let mut t = Trail::default();
        t.add(click(5_000, "a"));
        t.add(click(5_001, "b"));
        assert!(t.hits.iter().all(|h| h.reason == "click_burst"));
        let (_, reason, moved) = t.add(honeypot(5_030));
        assert_eq!(reason, "honeypot");
        assert_eq!(
            moved.len(),
            2,
            "both burst clicks are now near the honeypot"
        );
        for m in &moved {
            assert!(!m.changed_class(), "they stay in the machine column");
            assert_eq!(
                (m.from_reason.as_str(), m.hit.reason.as_str()),
                ("click_burst", "near_honeypot")
            );
        }
        assert!(t.settle().is_empty());
    }

    #[test]
    fn every_reason_a_trail_gives_is_listed() {
        let mut t = Trail::default();
        for h in [
            open(3, "default"),
            click(5, "a"),
            click(100, "b"),
            click(100, "c"),
            honeypot(9_000),
            click(9_010, "d"),
            open(120, "default"),
        ] {
            t.add(h);
        }
        t.deliver(T0);
        t.settle();
        let reasons: std::collections::BTreeSet<_> = t
            .hits
            .iter()
            .filter(|h| h.machine)
            .map(|h| h.reason.as_str())
            .collect();
        assert_eq!(reasons.len(), 6, "{reasons:?}");
        for r in reasons {
            assert_ne!(
                crate::verdict::machine_reason(r),
                crate::verdict::OTHER_REASON,
                "{r}"
            );
        }
    }

    #[test]
    fn request_verdicts_stand() {
        let mut t = Trail::default();
        let mut h = click(9_000, "a");
        h.request_machine = true;
        h.request_reason = "scanner_agent".into();
        let (machine, reason, _) = t.add(h);
        assert_eq!((machine, reason.as_str()), (true, "scanner_agent"));
    }

    #[test]
    fn verdicts_do_not_depend_on_arrival_order() {
        let hits = [
            click(600, "a"),
            honeypot(640),
            click(650, "b"),
            open(620, "default"),
            click(9_000, "c"),
        ];
        let classes = |order: &[usize]| {
            let mut t = Trail::default();
            for &i in order {
                t.add(hits[i].clone());
            }
            let mut out: Vec<_> = t.hits.iter().map(|h| (h.at_ms, h.machine)).collect();
            out.sort();
            out
        };
        let first = classes(&[0, 1, 2, 3, 4]);
        for order in [[4, 3, 2, 1, 0], [1, 0, 3, 4, 2], [2, 4, 0, 1, 3]] {
            assert_eq!(classes(&order), first, "{order:?}");
        }
    }

    #[test]
    fn the_trail_keeps_its_newest_hits() {
        let mut t = Trail::default();
        for i in 0..(MAX_HITS as i64 + 5) {
            t.add(click(i * 100, &format!("l{i}")));
        }
        assert_eq!(t.hits.len(), MAX_HITS);
        assert_eq!(t.hits[0].link.as_deref(), Some("l5"));
    }

    #[test]
    fn stored_form_round_trips() {
        let mut t = Trail::default();
        t.add(click(1, "a"));
        let json = serde_json::to_string(&t).unwrap();
        let back: Trail = serde_json::from_str(&json).unwrap();
        assert_eq!(back.hits, t.hits);
    }
}
