//! Engagement scores: how much a recipient has engaged lately, as points.
//!
//! | what (human only)          | points |
//! |----------------------------|--------|
//! | a message delivered        | 1      |
//! | a message opened           | 5      |
//! | a message clicked          | 10     |
//! | a conversion               | 50     |
//!
//! Each mark's points decay linearly with its age, from 100% on the day it happened to
//! 10% at 90 days, and stay at 10% after that: `weight(age) = max(0.1, 1 - 0.9 * age /
//! 90)`. A message counts once per action however often it is opened or clicked, and
//! an open or click only while its trail judges a person did it (machine opens and
//! scanner clicks score nothing, and a late verdict takes the points back).
//!
//! The stream keeps *marks* per recipient: attribute `o:{message}` (opened),
//! `k:{message}` (clicked), `d:{message}` (delivered), `v:{event}` (a conversion), each
//! set to the UTC day it happened. Setting and removing a mark is idempotent, so a
//! redelivered batch changes nothing. The score is worked out when read, from the marks
//! and today's date: decay needs no writes.
//!
//! A recipient's marks are spread over [`MARK_PAGES`] items by the mark's name
//! ([`page_of`]), so a mark is set and removed on the same item without reading it,
//! and no item holds more than its share: one item takes about 17,000 marks before
//! DynamoDB's 400 KB, so a recipient's marks reach that only past about 270,000 (some
//! 90,000 messages delivered, opened and clicked). Page 0's sort key is the recipient id
//! itself, where marks written before pages were kept; readers take such a mark unless
//! its own page holds it, and removing a mark removes it there too.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Days over which points decay to the floor.
pub const DECAY_DAYS: i64 = 90;
/// The share of its points a mark keeps once it is `DECAY_DAYS` old.
pub const FLOOR: f64 = 0.1;

/// What a mark records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Delivered,
    Opened,
    Clicked,
    Converted,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Delivered,
        Action::Opened,
        Action::Clicked,
        Action::Converted,
    ];

    pub fn points(self) -> f64 {
        match self {
            Action::Delivered => 1.0,
            Action::Opened => 5.0,
            Action::Clicked => 10.0,
            Action::Converted => 50.0,
        }
    }

    fn prefix(self) -> char {
        match self {
            Action::Delivered => 'd',
            Action::Opened => 'o',
            Action::Clicked => 'k',
            Action::Converted => 'v',
        }
    }

    /// The mark's attribute name for a message (or, for conversions, an event): the
    /// id's 96-bit fingerprint within the tenant, so any id fits an attribute name.
    pub fn mark(self, tenant: &str, id: &str) -> String {
        format!(
            "{}:{}",
            self.prefix(),
            crate::rollup::fingerprint(tenant, id)
        )
    }

    /// The action of a stored attribute; `None` for the item's other attributes.
    pub fn of_mark(name: &str) -> Option<Action> {
        let (prefix, rest) = name.split_once(':')?;
        if rest.is_empty() {
            return None;
        }
        Action::ALL
            .into_iter()
            .find(|a| prefix.len() == 1 && prefix.starts_with(a.prefix()))
    }
}

/// The UTC day number (days since 1970-01-01) of an epoch-milliseconds time.
pub fn epoch_day(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

/// The share of its points a mark `age_days` old keeps.
pub fn weight(age_days: i64) -> f64 {
    if age_days <= 0 {
        1.0
    } else if age_days >= DECAY_DAYS {
        FLOOR
    } else {
        1.0 - (1.0 - FLOOR) * age_days as f64 / DECAY_DAYS as f64
    }
}

/// Segments by score. Thresholds: high ≥ 40, medium ≥ 15, low ≥ 5, inactive below
/// (one fresh open is 5 points; deliveries alone rarely lift anyone out of inactive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Segment {
    High,
    Medium,
    Low,
    Inactive,
}

impl Segment {
    pub const ALL: [Segment; 4] = [
        Segment::High,
        Segment::Medium,
        Segment::Low,
        Segment::Inactive,
    ];

    /// The lowest score of the segment.
    pub fn floor(self) -> f64 {
        match self {
            Segment::High => 40.0,
            Segment::Medium => 15.0,
            Segment::Low => 5.0,
            Segment::Inactive => 0.0,
        }
    }

    pub fn of(score: f64) -> Segment {
        Segment::ALL
            .into_iter()
            .find(|s| score >= s.floor())
            .unwrap_or(Segment::Inactive)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Segment::High => "high",
            Segment::Medium => "medium",
            Segment::Low => "low",
            Segment::Inactive => "inactive",
        }
    }

    pub fn parse(name: &str) -> Option<Segment> {
        Segment::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A recipient's score as of a day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub recipient: String,
    /// Rounded to two decimals.
    pub score: f64,
    pub segment: Segment,
    /// Marks of each kind (messages delivered, opened, clicked; conversions).
    pub delivered: u32,
    pub opened: u32,
    pub clicked: u32,
    pub conversions: u32,
    /// The day of the latest mark (`YYYY-MM-DD`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<String>,
}

impl Score {
    /// The score of a recipient's marks (attribute name, day) as of `today`.
    pub fn of<'a>(
        recipient: &str,
        marks: impl IntoIterator<Item = (&'a str, i64)>,
        today: i64,
    ) -> Score {
        let (mut total, mut counts, mut last) = (0.0, [0u32; 4], None::<i64>);
        for (name, day) in marks {
            let Some(action) = Action::of_mark(name) else {
                continue;
            };
            total += action.points() * weight(today - day);
            counts[action as usize] += 1;
            last = last.max(Some(day));
        }
        let score = (total * 100.0).round() / 100.0;
        Score {
            recipient: recipient.to_string(),
            score,
            segment: Segment::of(score),
            delivered: counts[0],
            opened: counts[1],
            clicked: counts[2],
            conversions: counts[3],
            last_activity: last.map(|d| {
                chrono::DateTime::from_timestamp(d * 86_400, 0)
                    .unwrap_or_default()
                    .format("%Y-%m-%d")
                    .to_string()
            }),
        }
    }
}

impl Score {
    /// The score of a recipient's stored marks (name → day) as of `today`.
    pub fn of_marks(recipient: &str, marks: &BTreeMap<String, i64>, today: i64) -> Score {
        Score::of(
            recipient,
            marks.iter().map(|(n, d)| (n.as_str(), *d)),
            today,
        )
    }
}

/// Items one recipient's marks are spread over.
pub const MARK_PAGES: u32 = 16;

/// The page that holds `mark`: from the first character of its fingerprint (base64url,
/// so the 16 pages are equally likely). A name that is not a fingerprint goes to page 0.
pub fn page_of(mark: &str) -> u32 {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let fingerprint = mark.split_once(':').map_or(mark, |(_, f)| f);
    fingerprint
        .bytes()
        .next()
        .and_then(|b| ALPHABET.iter().position(|&a| a == b))
        .map_or(0, |i| i as u32 % MARK_PAGES)
}

/// Adds the marks stored on one page to a recipient's: a mark on its own page wins over
/// a copy on page 0 (kept there before pages), whatever order the pages come in.
pub fn merge_page(marks: &mut BTreeMap<String, i64>, page: u32, stored: BTreeMap<String, i64>) {
    for (name, day) in stored {
        if page_of(&name) == page {
            marks.insert(name, day);
        } else {
            marks.entry(name).or_insert(day);
        }
    }
}

/// One recipient's marks to set (name → day) and to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub set: BTreeMap<String, i64>,
    pub remove: BTreeSet<String>,
}

impl Change {
    /// The change per page of the recipient's marks ([`page_of`]); a removed mark is
    /// removed from page 0 too, where it may have been kept before pages.
    pub fn by_page(&self) -> BTreeMap<u32, Change> {
        let mut pages: BTreeMap<u32, Change> = BTreeMap::new();
        for (mark, day) in &self.set {
            pages
                .entry(page_of(mark))
                .or_default()
                .set
                .insert(mark.clone(), *day);
        }
        for mark in &self.remove {
            for page in BTreeSet::from([page_of(mark), 0]) {
                pages.entry(page).or_default().remove.insert(mark.clone());
            }
        }
        pages
    }

    /// The change in pieces of at most `max` marks each (set and removed together), so
    /// that one update's expression stays within DynamoDB's 4 KB: a recipient sent
    /// hundreds of messages in one batch would otherwise make an update DynamoDB refuses
    /// on every retry. Each piece is idempotent on its own.
    pub fn pieces(&self, max: usize) -> Vec<Change> {
        let max = max.max(1);
        let mut out: Vec<Change> = Vec::new();
        let mut current = Change::default();
        let full = |c: &Change| c.set.len() + c.remove.len() == max;
        for (mark, day) in &self.set {
            current.set.insert(mark.clone(), *day);
            if full(&current) {
                out.push(std::mem::take(&mut current));
            }
        }
        for mark in &self.remove {
            current.remove.insert(mark.clone());
            if full(&current) {
                out.push(std::mem::take(&mut current));
            }
        }
        if !current.set.is_empty() || !current.remove.is_empty() {
            out.push(current);
        }
        out
    }
}

/// The mark changes of a run, per (tenant, recipient). A later call for the same mark
/// wins, so a trail's verdict written after the events overrides them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes(pub BTreeMap<(String, String), Change>);

impl Changes {
    pub fn set(&mut self, tenant: &str, recipient: &str, mark: String, day: i64) {
        let c = self.entry(tenant, recipient);
        c.remove.remove(&mark);
        c.set.insert(mark, day);
    }

    pub fn remove(&mut self, tenant: &str, recipient: &str, mark: String) {
        let c = self.entry(tenant, recipient);
        c.set.remove(&mark);
        c.remove.insert(mark);
    }

    fn entry(&mut self, tenant: &str, recipient: &str) -> &mut Change {
        self.0
            .entry((tenant.to_string(), recipient.to_string()))
            .or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Applies the changes to marks held in memory (the in-memory store, tests).
    pub fn apply_to(&self, marks: &mut BTreeMap<(String, String), BTreeMap<String, i64>>) {
        for (key, change) in &self.0 {
            let held = marks.entry(key.clone()).or_default();
            for name in &change.remove {
                held.remove(name);
            }
            for (name, day) in &change.set {
                held.insert(name.clone(), *day);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::keys::{marks_sort_key, past_recipient, split_marks_sort_key};

    #[test]
    fn weight_decays_linearly_to_ten_percent_at_ninety_days_and_stays() {
        assert_eq!(weight(0), 1.0);
        assert_eq!(weight(-3), 1.0);
        assert!((weight(45) - 0.55).abs() < 1e-12);
        assert!((weight(30) - 0.7).abs() < 1e-12);
        assert!((weight(89) - 0.11).abs() < 1e-12);
        assert_eq!(weight(90), 0.1);
        assert_eq!(weight(400), 0.1);
    }

    #[test]
    fn scores_match_hand_computed_values() {
        let today = 20_000;
        let t = "acme";
        let marks = [
            (Action::Delivered.mark(t, "m1"), today),      // 1 × 1.0 = 1
            (Action::Opened.mark(t, "m1"), today),         // 5 × 1.0 = 5
            (Action::Clicked.mark(t, "m1"), today - 30),   // 10 × 0.7 = 7
            (Action::Converted.mark(t, "e9"), today - 45), // 50 × 0.55 = 27.5
            (Action::Opened.mark(t, "m0"), today - 200),   // 5 × 0.1 = 0.5
            ("recipient".to_string(), 0),                  // not a mark
        ];
        let s = Score::of("r-1", marks.iter().map(|(n, d)| (n.as_str(), *d)), today);
        assert_eq!(s.score, 41.0);
        assert_eq!(s.segment, Segment::High);
        assert_eq!(
            (s.delivered, s.opened, s.clicked, s.conversions),
            (1, 2, 1, 1)
        );
        assert_eq!(s.last_activity.as_deref(), Some("2024-10-04"));
        // Ninety days on, every mark is at the floor: 0.1 × (1 + 5 + 10 + 50 + 5).
        let later = Score::of(
            "r-1",
            marks.iter().map(|(n, d)| (n.as_str(), *d)),
            today + 300,
        );
        assert_eq!(later.score, 7.1);
        assert_eq!(later.segment, Segment::Low);
    }

    #[test]
    fn segments_split_at_their_floors() {
        assert_eq!(Segment::of(40.0), Segment::High);
        assert_eq!(Segment::of(39.99), Segment::Medium);
        assert_eq!(Segment::of(15.0), Segment::Medium);
        assert_eq!(Segment::of(5.0), Segment::Low);
        assert_eq!(Segment::of(4.99), Segment::Inactive);
        assert_eq!(Segment::of(0.0), Segment::Inactive);
        assert_eq!(Segment::parse("medium"), Some(Segment::Medium));
        assert_eq!(Segment::parse("gold"), None);
    }

    #[test]
    fn a_later_change_to_a_mark_wins() {
        let mut c = Changes::default();
        c.set("acme", "r-1", "o:x".into(), 5);
        c.remove("acme", "r-1", "o:x".into());
        c.set("acme", "r-1", "k:x".into(), 5);
        let mut held = BTreeMap::new();
        held.insert(
            ("acme".to_string(), "r-1".to_string()),
            BTreeMap::from([("o:x".to_string(), 4)]),
        );
        c.apply_to(&mut held);
        let marks = &held[&("acme".to_string(), "r-1".to_string())];
        assert_eq!(marks.get("o:x"), None);
        assert_eq!(marks.get("k:x"), Some(&5));
        // Applying again changes nothing: marks are idempotent.
        let before = held.clone();
        c.apply_to(&mut held);
        assert_eq!(held, before);
    }

    #[test]
    fn a_large_change_is_written_in_pieces_holding_every_mark_once() {
        let mut c = Change::default();
        for i in 0..250 {
            c.set.insert(format!("d:{i:03}"), i);
        }
        for i in 0..60 {
            c.remove.insert(format!("o:{i:03}"));
        }
        let pieces = c.pieces(100);
        let sizes: Vec<usize> = pieces
            .iter()
            .map(|p| p.set.len() + p.remove.len())
            .collect();
        assert_eq!(sizes, vec![100, 100, 100, 10]);
        let mut joined = Change::default();
        for p in pieces {
            joined.set.extend(p.set);
            joined.remove.extend(p.remove);
        }
        assert_eq!(joined, c);
        let small = Change {
            set: BTreeMap::from([("o:x".to_string(), 1)]),
            remove: BTreeSet::new(),
        };
        assert_eq!(small.pieces(100), vec![small.clone()]);
        assert_eq!(Change::default().pieces(100), vec![], "nothing to write");
    }

    #[test]
    fn a_recipients_marks_spread_evenly_over_pages_that_sort_together() {
        let mut per_page = [0usize; MARK_PAGES as usize];
        for i in 0..16_000 {
            per_page[page_of(&Action::Opened.mark("acme", &format!("m{i}"))) as usize] += 1;
        }
        // 1,000 expected per page; a skew past a quarter would be a bad spread.
        assert!(
            per_page.iter().all(|n| (750..1250).contains(n)),
            "{per_page:?}"
        );

        let mut keys: Vec<String> = (0..MARK_PAGES).map(|p| marks_sort_key("r1", p)).collect();
        // Ids that begin with "r1", and ids around it: each recipient's pages stay
        // together, and the key past them comes before the next id.
        keys.extend(["r1 x", "r1!", "r10", "r0", "r2"].map(String::from));
        keys.sort();
        let pages: Vec<&str> = keys.iter().map(|k| split_marks_sort_key(k).0).collect();
        assert_eq!(&pages[1..17], &["r1"; 16]);
        assert_eq!(keys[0], "r0");
        assert!(keys[16] < past_recipient("r1") && past_recipient("r1") < keys[17]);
        assert_eq!(split_marks_sort_key(&marks_sort_key("r1", 11)), ("r1", 11));
    }

    #[test]
    fn a_mark_on_its_own_page_wins_over_a_copy_kept_before_pages() {
        let mark = (0..)
            .map(|i| Action::Clicked.mark("acme", &format!("m{i}")))
            .find(|m| page_of(m) != 0)
            .unwrap();
        let own = page_of(&mark);
        for order in [[0, own], [own, 0]] {
            let mut marks = BTreeMap::new();
            for page in order {
                let day = if page == 0 { 100 } else { 120 };
                merge_page(&mut marks, page, BTreeMap::from([(mark.clone(), day)]));
            }
            assert_eq!(marks[&mark], 120, "pages read in the order {order:?}");
        }
        // Removing it removes both copies; setting it writes only its own page.
        let mut change = Change::default();
        change.remove.insert(mark.clone());
        assert_eq!(
            change.by_page().keys().copied().collect::<Vec<_>>(),
            vec![0, own]
        );
        let mut change = Change::default();
        change.set.insert(mark.clone(), 120);
        assert_eq!(
            change.by_page().keys().copied().collect::<Vec<_>>(),
            vec![own]
        );
    }

    #[test]
    fn marks_are_recognized_by_their_prefix() {
        assert_eq!(Action::of_mark("o:abc"), Some(Action::Opened));
        assert_eq!(Action::of_mark("v:abc"), Some(Action::Converted));
        assert_eq!(Action::of_mark("pk"), None);
        assert_eq!(Action::of_mark("o:"), None);
        assert_eq!(Action::of_mark("oo:abc"), None);
    }
}
