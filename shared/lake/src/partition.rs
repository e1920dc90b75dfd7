//! Partitions (one UTC hour of event time) and the keys of staging and curated objects.

use crate::*;
use chrono::{DateTime, Duration, DurationRound, NaiveDate, Utc};

/// One hour of event time, UTC: `dt=YYYY-MM-DD/hour=HH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    start: DateTime<Utc>,
}

impl Partition {
    /// The hour `t` falls in.
    pub fn of(t: DateTime<Utc>) -> Partition {
        Partition {
            start: t
                .duration_trunc(Duration::hours(1))
                .expect("an hour divides any representable time"),
        }
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    pub fn end(&self) -> DateTime<Utc> {
        self.start + Duration::hours(1)
    }

    pub fn next(&self) -> Partition {
        Partition { start: self.end() }
    }

    /// `dt=2026-11-23/hour=07`, the Hive layout Athena's projection and DuckDB read.
    pub fn path(&self) -> String {
        self.start.format("dt=%Y-%m-%d/hour=%H").to_string()
    }

    /// The partition a key lies in, from its `dt=.../hour=.../` segments.
    pub fn from_key(key: &str) -> Option<Partition> {
        let mut parts = key.split('/');
        let dt = parts.find_map(|p| p.strip_prefix("dt="))?;
        let hour: u32 = parts.next()?.strip_prefix("hour=")?.parse().ok()?;
        let day = NaiveDate::parse_from_str(dt, "%Y-%m-%d").ok()?;
        let start = day.and_hms_opt(hour, 0, 0)?.and_utc();
        Some(Partition { start })
    }

    /// The hours from the start of `from` to the end of `to` (dates, inclusive).
    pub fn days(from: NaiveDate, to: NaiveDate) -> Vec<Partition> {
        let mut p = Partition::of(from.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
        let end = (to + chrono::Days::new(1))
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc();
        let mut out = Vec::new();
        while p.start < end {
            out.push(p);
            p = p.next();
        }
        out
    }

    pub fn staging_prefix(&self) -> String {
        format!("{STAGING_PREFIX}{}/", self.path())
    }

    pub fn curated_key(&self) -> String {
        format!("{CURATED_PREFIX}{}/{CURATED_FILE}", self.path())
    }
}

/// A staging piece's key: the same records always give the same key, so a retried
/// invocation overwrites its own pieces. `shard` is `stream/shardId-...`.
pub fn staging_key(p: Partition, shard: &str, first_sequence: &str, last_sequence: &str) -> String {
    let shard: String = shard
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{}{shard}_{first_sequence}_{last_sequence}.parquet",
        p.staging_prefix()
    )
}
