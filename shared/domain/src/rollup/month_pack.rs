//! A month's closed days in one item, so a long daily series reads a few items rather
//! than one per day.
//!
//! Day items are counters the aggregate adds to, so each day of a series is its own
//! item: 90 days read 90 items. A **pack** (`sk = P#YYYY-MM` in the day partition)
//! holds the scalar counters of a month's closed days in one attribute. It is a copy,
//! and a copy must never be stale:
//!
//! 1. A pack holds only days that ended at least [`CLOSED_AFTER`] ago.
//! 2. The aggregate adds 1 to the month's `gen` (on the pack item) in the same
//!    transaction as any update of a day before its own today ([`bumps`]). Late events
//!    and late verdicts do reach closed days; they are rare, so this costs little.
//! 3. A reader that finds no usable pack reads `gen`, then the month's closed days
//!    (strongly consistent), and writes the pack with `packed_gen` = that `gen`,
//!    conditional on `gen` still being it. A pack is used only while
//!    `packed_gen == gen`. A month without any day item is packed (empty) only by a
//!    read that found data elsewhere in its range, so reading what does not exist
//!    writes nothing, and a month before a campaign's first day is read once, not on
//!    every request.
//!
//! A run that saw a day as today (and so did not bump) commits within Lambda's 15-minute
//! limit, well inside the hour in point 1, so every update a pack can miss is one that
//! bumps `gen`.

use crate::rollup::{Counters, Grain, RollupKey};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The most months a daily series reads packs of: a stats range spans at most
/// [`crate::stats::MAX_DAY_RANGE_DAYS`] + 1 days, which touch at most 15 months.
pub const MAX_MONTHS: usize = 15;

/// How long after its end a day may be packed.
pub const CLOSED_AFTER: Duration = Duration::hours(1);
/// The last day a reader may pack at `now`.
pub fn closed_through(now: DateTime<Utc>) -> NaiveDate {
    (now - CLOSED_AFTER).date_naive() - Duration::days(1)
}

/// The month of a day (`2026-08`).
pub fn month(day: NaiveDate) -> String {
    day.format("%Y-%m").to_string()
}

/// First and last day of the month `day` is in.
pub fn month_bounds(day: NaiveDate) -> (NaiveDate, NaiveDate) {
    let first = day.with_day(1).expect("day 1 exists");
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    }
    .expect("a month follows");
    (first, next - Duration::days(1))
}

/// The packs (partition, sort key) whose `gen` a run goes up by: those of the months of
/// the day items it updates that are before `today`. A campaign's channel items
/// (`D#{day}#{channel}:{provider}`) are never packed, so they bump nothing.
pub fn bumps<'a>(
    keys: impl IntoIterator<Item = &'a RollupKey>,
    today: NaiveDate,
) -> BTreeSet<(String, String)> {
    keys.into_iter()
        .filter(|k| k.grain == Grain::Day)
        .filter_map(|k| {
            let day = crate::rollup::keys::day_of(&k.period)?;
            (day < today).then(|| {
                (
                    k.partition_key(),
                    crate::rollup::keys::pack_sort_key(&month(day)),
                )
            })
        })
        .collect()
}

/// A pack as stored: `gen`, `packed_gen`, `through` and `days`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pack {
    /// Goes up with every update of a closed day of the month.
    pub gen: i64,
    /// The `gen` the days were read at; `None` when never packed.
    pub packed_gen: Option<i64>,
    /// The last day packed.
    pub through: Option<NaiveDate>,
    /// Day sort key and its scalar counters.
    pub days: Vec<(String, Counters)>,
}

/// The stored form of `days`: field names once, then each day's values in their order,
/// so a pack written before a counter was added still reads right.
#[derive(Serialize, Deserialize)]
struct Stored {
    f: Vec<String>,
    d: BTreeMap<String, Vec<i64>>,
}

impl Pack {
    /// Whether the pack holds every day of its month up to `needed`, as the day items
    /// hold them now.
    pub fn covers(&self, needed: NaiveDate) -> bool {
        self.packed_gen == Some(self.gen) && self.through.is_some_and(|t| t >= needed)
    }

    pub fn encode_days(days: &[(String, Counters)]) -> String {
        let stored = Stored {
            f: Counters::SCALAR_FIELDS
                .iter()
                .map(|f| f.to_string())
                .collect(),
            d: days
                .iter()
                .map(|(sk, c)| (sk.clone(), c.scalars().to_vec()))
                .collect(),
        };
        serde_json::to_string(&stored).expect("a pack serializes")
    }

    pub fn decode_days(text: &str) -> Result<Vec<(String, Counters)>, CorruptPack> {
        let stored: Stored = serde_json::from_str(text)
            .map_err(|e| CorruptPack(format!("reading a month pack: {e}")))?;
        Ok(stored
            .d
            .into_iter()
            .map(|(sk, values)| {
                let mut c = Counters::default();
                for (name, v) in stored.f.iter().zip(values) {
                    c.set_field(name, v);
                }
                (sk, c)
            })
            .collect())
    }
}

crate::message_error!(
    /// A stored month pack that does not read back.
    CorruptPack
);

/// What a daily series over `from..=to` reads at `now`: for each month with closed days
/// in range, the month and the last of its days a pack must hold; and the open days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub months: Vec<(String, NaiveDate, NaiveDate)>,
    pub open: Vec<NaiveDate>,
}

/// Splits a daily range into packed months and open days.
pub fn plan(from: NaiveDate, to: NaiveDate, now: DateTime<Utc>) -> Plan {
    let closed = closed_through(now);
    let mut months = Vec::new();
    let mut day = from;
    while day <= to.min(closed) {
        let (first, last) = month_bounds(day);
        months.push((month(day), first, last.min(closed)));
        day = last + Duration::days(1);
    }
    let open = from.max(closed + Duration::days(1)).iter_days();
    let open = open.take_while(|d| *d <= to).collect();
    Plan { months, open }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::Scope;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_day_closes_an_hour_after_it_ends() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(closed_through(at("2026-11-23T00:59:59Z")), d("2026-11-21"));
        assert_eq!(closed_through(at("2026-11-23T01:00:00Z")), d("2026-11-22"));
    }

    #[test]
    fn a_range_splits_into_months_and_open_days() {
        let now = "2026-11-23T12:00:00Z".parse().unwrap();
        let p = plan(d("2026-08-26"), d("2026-11-23"), now);
        assert_eq!(
            p.months,
            vec![
                ("2026-08".into(), d("2026-08-01"), d("2026-08-31")),
                ("2026-09".into(), d("2026-09-01"), d("2026-09-30")),
                ("2026-10".into(), d("2026-10-01"), d("2026-10-31")),
                ("2026-11".into(), d("2026-11-01"), d("2026-11-22")),
            ]
        );
        assert_eq!(p.open, vec![d("2026-11-23")]);
        // December into January, and a range wholly in the future.
        assert_eq!(
            month_bounds(d("2026-12-09")),
            (d("2026-12-01"), d("2026-12-31"))
        );
        let future = plan(d("2026-11-25"), d("2026-11-26"), now);
        assert!(future.months.is_empty());
        assert_eq!(future.open, vec![d("2026-11-25"), d("2026-11-26")]);
    }

    #[test]
    fn the_longest_daily_range_touches_at_most_max_months() {
        let now = "2030-01-01T12:00:00Z".parse().unwrap();
        let span = Duration::days(crate::stats::MAX_DAY_RANGE_DAYS);
        let most = (0..366)
            .map(|i| {
                let from = d("2026-01-01") + Duration::days(i);
                plan(from, from + span, now).months.len()
            })
            .max();
        assert_eq!(most, Some(MAX_MONTHS));
    }

    #[test]
    fn only_updates_of_closed_days_bump_their_month() {
        let key = |grain, period: &str| RollupKey {
            tenant: "acme".into(),
            scope: Scope::Campaign("spring".into()),
            grain,
            period: period.into(),
        };
        let keys = [
            key(Grain::Day, "D#2026-11-23"),
            key(Grain::Day, "D#2026-11-22"),
            key(Grain::Day, "D#2026-10-31"),
            key(Grain::Day, "D#2026-10-30"),
            key(Grain::Hour, "H#2026-11-22T10"),
        ];
        let bumped = bumps(&keys, d("2026-11-23"));
        let pk = "R#acme#D#c:spring".to_string();
        assert_eq!(
            bumped,
            BTreeSet::from([(pk.clone(), "P#2026-10".into()), (pk, "P#2026-11".into())])
        );
    }

    #[test]
    fn a_pack_is_used_only_at_its_generation_and_reads_back_by_field_name() {
        let c = Counters {
            sent: 7,
            cost_micros: 1234,
            latency_sum_ms: 99,
            ..Default::default()
        };
        let days = vec![("D#2026-08-01".to_string(), c.clone())];
        let text = Pack::encode_days(&days);
        assert_eq!(Pack::decode_days(&text).unwrap(), days);
        // Fields it does not know are ignored; missing ones stay zero.
        let old = r#"{"f":["sent","retired"],"d":{"D#2026-08-02":[3,9]}}"#;
        let read = Pack::decode_days(old).unwrap();
        assert_eq!(read[0].1.sent, 3);
        assert_eq!(read[0].1.delivered, 0);

        let mut pack = Pack {
            gen: 2,
            packed_gen: Some(2),
            through: Some(d("2026-08-31")),
            days,
        };
        assert!(pack.covers(d("2026-08-31")));
        assert!(!pack.covers(d("2026-09-01")), "not past its last day");
        pack.gen = 3;
        assert!(!pack.covers(d("2026-08-31")), "a closed day changed since");
        assert!(!Pack::default().covers(d("2026-08-01")));
        assert!(Pack::decode_days("nonsense").is_err());
    }
}
