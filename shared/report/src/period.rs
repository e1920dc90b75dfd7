//! Report periods in the definition's time zone: the day, ISO week or month that has
//! just closed, with its UTC bounds. Local midnights are converted with the zone's
//! rules, so a day across a DST change is 23 or 25 hours long and the hourly rollups
//! (UTC) add up to exactly that local day.

use super::model::PeriodInfo;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// How often a report is sent: for the day, week (ISO, from Monday) or month that has
/// just closed in the definition's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cadence {
    Daily,
    Weekly,
    Monthly,
}

impl Cadence {
    pub const ALL: [Cadence; 3] = [Cadence::Daily, Cadence::Weekly, Cadence::Monthly];

    pub fn name(self) -> &'static str {
        match self {
            Cadence::Daily => "daily",
            Cadence::Weekly => "weekly",
            Cadence::Monthly => "monthly",
        }
    }

    pub fn parse(name: &str) -> Option<Cadence> {
        Cadence::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The first local date of the period containing `date`.
    fn first_day(self, date: NaiveDate) -> NaiveDate {
        match self {
            Cadence::Daily => date,
            Cadence::Weekly => date - Duration::days(date.weekday().num_days_from_monday() as i64),
            Cadence::Monthly => date.with_day(1).expect("day 1 exists"),
        }
    }

    /// The first local date of the period after the one starting on `first`.
    fn next_first_day(self, first: NaiveDate) -> NaiveDate {
        match self {
            Cadence::Daily => first + Duration::days(1),
            Cadence::Weekly => first + Duration::days(7),
            Cadence::Monthly => first
                .checked_add_months(chrono::Months::new(1))
                .expect("a month after a valid date"),
        }
    }

    /// The first local date of the period before the one starting on `first`.
    fn previous_first_day(self, first: NaiveDate) -> NaiveDate {
        match self {
            Cadence::Daily => first - Duration::days(1),
            Cadence::Weekly => first - Duration::days(7),
            Cadence::Monthly => first
                .checked_sub_months(chrono::Months::new(1))
                .expect("a month before a valid date"),
        }
    }
}

/// A period of a cadence: its first local date, in a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub cadence: Cadence,
    pub tz: Tz,
    /// The first local date of the period.
    pub first_day: NaiveDate,
}

impl Period {
    /// The period containing the instant `t`.
    pub fn containing(cadence: Cadence, tz: Tz, t: DateTime<Utc>) -> Period {
        let local = t.with_timezone(&tz).date_naive();
        Period {
            cadence,
            tz,
            first_day: cadence.first_day(local),
        }
    }

    /// The last period that has fully ended at `now`: what a scheduled run reports on.
    pub fn just_closed(cadence: Cadence, tz: Tz, now: DateTime<Utc>) -> Period {
        Period::containing(cadence, tz, now).previous()
    }

    /// The period whose key is `key` (`2026-11-22`, `2026-W47`, `2026-11`).
    pub fn parse_key(cadence: Cadence, tz: Tz, key: &str) -> Option<Period> {
        let first_day = match cadence {
            Cadence::Daily => NaiveDate::parse_from_str(key, "%Y-%m-%d").ok()?,
            Cadence::Weekly => {
                let (year, week) = key.split_once("-W")?;
                NaiveDate::from_isoywd_opt(
                    year.parse().ok()?,
                    week.parse().ok()?,
                    chrono::Weekday::Mon,
                )?
            }
            Cadence::Monthly => NaiveDate::parse_from_str(&format!("{key}-01"), "%Y-%m-%d").ok()?,
        };
        Some(Period {
            cadence,
            tz,
            first_day,
        })
        .filter(|p| p.key() == key)
    }

    pub fn previous(self) -> Period {
        Period {
            first_day: self.cadence.previous_first_day(self.first_day),
            ..self
        }
    }

    pub fn next(self) -> Period {
        Period {
            first_day: self.cadence.next_first_day(self.first_day),
            ..self
        }
    }

    /// First instant of the period (UTC), inclusive.
    pub fn start(self) -> DateTime<Utc> {
        local_midnight(self.tz, self.first_day)
    }

    /// First instant after the period (UTC), exclusive.
    pub fn end(self) -> DateTime<Utc> {
        self.next().start()
    }

    /// `2026-11-22`, `2026-W47` (ISO week-numbering year) or `2026-11`.
    pub fn key(self) -> String {
        match self.cadence {
            Cadence::Daily => self.first_day.format("%Y-%m-%d").to_string(),
            Cadence::Weekly => {
                let w = self.first_day.iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }
            Cadence::Monthly => self.first_day.format("%Y-%m").to_string(),
        }
    }

    /// What a reader sees: `Sunday 22 November 2026`, `Week of 16 November 2026`,
    /// `November 2026`.
    pub fn label(self) -> String {
        match self.cadence {
            Cadence::Daily => self.first_day.format("%A %-d %B %Y").to_string(),
            Cadence::Weekly => format!("Week of {}", self.first_day.format("%-d %B %Y")),
            Cadence::Monthly => self.first_day.format("%B %Y").to_string(),
        }
    }

    pub fn info(self) -> PeriodInfo {
        PeriodInfo {
            key: self.key(),
            label: self.label(),
            start: self.start(),
            end: self.end(),
        }
    }

    /// The series points of the period: local hours for a daily report, local days
    /// otherwise, as (label, UTC start, UTC end). Bounds snap to whole UTC hours like
    /// [`hour_range`], so every hourly rollup falls in exactly one point.
    pub fn points(self) -> Vec<(String, DateTime<Utc>, DateTime<Utc>)> {
        match self.cadence {
            Cadence::Daily => {
                let (start, end) = (floor_hour(self.start()), floor_hour(self.end()));
                let mut out = Vec::new();
                let mut t = start;
                while t < end {
                    let next = t + Duration::hours(1);
                    let local = t.with_timezone(&self.tz);
                    out.push((local.format("%Y-%m-%d %H:%M").to_string(), t, next));
                    t = next;
                }
                out
            }
            Cadence::Weekly | Cadence::Monthly => {
                let mut out = Vec::new();
                let mut day = self.first_day;
                let last = self.cadence.next_first_day(self.first_day);
                while day < last {
                    let next = day + Duration::days(1);
                    out.push((
                        day.format("%Y-%m-%d").to_string(),
                        floor_hour(local_midnight(self.tz, day)),
                        floor_hour(local_midnight(self.tz, next)),
                    ));
                    day = next;
                }
                out
            }
        }
    }
}

/// The instant a local date begins in `tz`. Where midnight falls in a DST gap (some
/// zones change at 00:00), the day begins at the first local time that exists.
fn local_midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut local: NaiveDateTime = date.and_hms_opt(0, 0, 0).expect("midnight");
    for _ in 0..48 {
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
        local += Duration::minutes(30);
    }
    unreachable!("no zone skips a whole day of local time")
}

/// The start of the UTC hour containing `t`.
pub fn floor_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    t - Duration::seconds(t.timestamp().rem_euclid(3600))
}

/// The first and last UTC hour sort keys (`H#...`) of the hourly rollups from `start`
/// (inclusive) to `end` (exclusive). In a half-hour zone (India, parts of Australia) a
/// period's bounds snap down to the UTC hour, the rollups' resolution: each hour then
/// counts in exactly one period, never in two.
pub fn hour_range(start: DateTime<Utc>, end: DateTime<Utc>) -> (String, String) {
    let fmt = |t: DateTime<Utc>| beacon_domain::rollup::Grain::Hour.sort_key(t);
    (
        fmt(floor_hour(start)),
        fmt(floor_hour(end) - Duration::hours(1)),
    )
}

/// An IANA zone name (`Europe/Berlin`).
pub fn parse_tz(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok()
}

/// `Utc.with_ymd_and_hms` shorthand for tests.
#[cfg(test)]
pub(crate) fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> Tz {
        parse_tz("Europe/Berlin").unwrap()
    }

    #[test]
    fn a_daily_report_covers_yesterday_in_its_zone() {
        // 2026-11-23 05:30 UTC is 06:30 in Berlin (UTC+1): yesterday there is the 22nd.
        let p = Period::just_closed(Cadence::Daily, berlin(), utc(2026, 11, 23, 5));
        assert_eq!(p.key(), "2026-11-22");
        assert_eq!(p.label(), "Sunday 22 November 2026");
        assert_eq!(p.start(), utc(2026, 11, 21, 23));
        assert_eq!(p.end(), utc(2026, 11, 22, 23));
        assert_eq!(p.points().len(), 24);
        // 23:30 UTC on the 22nd is already the 23rd in Berlin: the 22nd has closed.
        let late = Utc.with_ymd_and_hms(2026, 11, 22, 23, 30, 0).unwrap();
        assert_eq!(
            Period::just_closed(Cadence::Daily, berlin(), late).key(),
            "2026-11-22"
        );
        // ...but not yet in New York, where it is still the 22nd.
        let ny = parse_tz("America/New_York").unwrap();
        assert_eq!(
            Period::just_closed(Cadence::Daily, ny, late).key(),
            "2026-11-21"
        );
    }

    #[test]
    fn days_across_dst_changes_are_23_and_25_hours() {
        // Europe: clocks go forward on 29 March 2026 and back on 25 October 2026.
        let spring = Period::parse_key(Cadence::Daily, berlin(), "2026-03-29").unwrap();
        assert_eq!(spring.end() - spring.start(), Duration::hours(23));
        assert_eq!(spring.points().len(), 23);
        assert_eq!(spring.start(), utc(2026, 3, 28, 23));
        assert_eq!(spring.end(), utc(2026, 3, 29, 22));
        let fall = Period::parse_key(Cadence::Daily, berlin(), "2026-10-25").unwrap();
        assert_eq!(fall.end() - fall.start(), Duration::hours(25));
        let labels: Vec<String> = fall.points().into_iter().map(|p| p.0).collect();
        assert_eq!(labels.len(), 25);
        assert_eq!(
            labels.iter().filter(|l| l.ends_with("02:00")).count(),
            2,
            "02:00 twice"
        );
        // A week containing the change is 167 hours; the month 743.
        let week = Period::containing(Cadence::Weekly, berlin(), utc(2026, 3, 27, 12));
        assert_eq!(week.key(), "2026-W13");
        assert_eq!(week.end() - week.start(), Duration::hours(167));
        assert_eq!(week.points().len(), 7);
        let march = Period::parse_key(Cadence::Monthly, berlin(), "2026-03").unwrap();
        assert_eq!(march.end() - march.start(), Duration::hours(31 * 24 - 1));
        assert_eq!(march.points().len(), 31);
    }

    #[test]
    fn midnight_in_a_dst_gap_starts_the_day_at_the_first_local_time() {
        // Chile moved clocks forward at 00:00 on 7 September 2025: that day began at 01:00.
        let santiago = parse_tz("America/Santiago").unwrap();
        let p = Period::parse_key(Cadence::Daily, santiago, "2025-09-07").unwrap();
        assert_eq!(p.start(), utc(2025, 9, 7, 4));
        assert_eq!(p.end() - p.start(), Duration::hours(23));
    }

    #[test]
    fn weeks_are_iso_weeks_and_months_are_calendar_months() {
        let utc_tz = parse_tz("UTC").unwrap();
        // Monday 23 November 2026: last week was 16-22 November, ISO week 47.
        let w = Period::just_closed(Cadence::Weekly, utc_tz, utc(2026, 11, 23, 0));
        assert_eq!(w.key(), "2026-W47");
        assert_eq!(w.label(), "Week of 16 November 2026");
        assert_eq!(w.start(), utc(2026, 11, 16, 0));
        assert_eq!(w.previous().key(), "2026-W46");
        // The ISO year differs from the calendar year at the turn of the year.
        let turn = Period::containing(Cadence::Weekly, utc_tz, utc(2027, 1, 1, 12));
        assert_eq!(turn.key(), "2026-W53");
        assert_eq!(
            Period::parse_key(Cadence::Weekly, utc_tz, "2026-W53"),
            Some(turn)
        );
        let m = Period::just_closed(Cadence::Monthly, utc_tz, utc(2026, 3, 1, 0));
        assert_eq!(
            (m.key(), m.label()),
            ("2026-02".into(), "February 2026".into())
        );
        assert_eq!(m.points().len(), 28);
        assert_eq!(m.previous().key(), "2026-01");
        let jan = Period::just_closed(Cadence::Monthly, utc_tz, utc(2026, 1, 15, 0));
        assert_eq!(jan.key(), "2025-12");
        assert_eq!(Period::parse_key(Cadence::Monthly, utc_tz, "2026-13"), None);
        assert_eq!(
            Period::parse_key(Cadence::Daily, utc_tz, "2026-02-30"),
            None
        );
    }

    #[test]
    fn hour_ranges_cover_the_period_and_nothing_more() {
        let p = Period::parse_key(Cadence::Daily, berlin(), "2026-11-22").unwrap();
        assert_eq!(
            hour_range(p.start(), p.end()),
            ("H#2026-11-21T23".to_string(), "H#2026-11-22T22".to_string())
        );
        // Kolkata is UTC+5:30: its days start mid-hour and snap to the hour, so two
        // consecutive days share no rollup hour.
        let kolkata = parse_tz("Asia/Kolkata").unwrap();
        let k = Period::parse_key(Cadence::Daily, kolkata, "2026-11-22").unwrap();
        assert_eq!(
            hour_range(k.start(), k.end()),
            ("H#2026-11-21T18".to_string(), "H#2026-11-22T17".to_string())
        );
        let (_, next_first) = hour_range(k.next().start(), k.next().end());
        assert_eq!(next_first, "H#2026-11-23T17");
        assert_eq!(
            hour_range(k.next().start(), k.next().end()).0,
            "H#2026-11-22T18"
        );
        assert_eq!(k.points().len(), 24);
    }
}
