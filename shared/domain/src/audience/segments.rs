//! Segment counts for tenants too big to count in one request: a **snapshot** per
//! tenant, brought up to date by the alerts function's five-minute run.
//!
//! Counting segments means scoring every recipient of the tenant (`E#{tenant}`), which
//! no request of bounded cost can do for a large tenant. So each run reads at most
//! [`PAGES_PER_RUN`] pages of a tenant's engagement marks, adds them to the count in
//! progress and stores it with the cursor to go on from; the run that reaches the end
//! publishes the count. A new count starts once the published one is
//! [`REFRESH_AFTER`] old or of an earlier day. `GET /v1/segments` answers a small tenant
//! (at most [`LIVE_RECIPIENTS`]) from its marks directly and any other from the
//! published count, which says the day its scores are for (`as_of`) and when it was
//! finished.
//!
//! Item `G#{tenant}` / `segments` in the rollups table: String `state` (JSON of
//! [`SnapshotState`]) and Number `version`. Invariants:
//! - a count in progress scores every recipient as of its own `day`, fixed when it
//!   starts, so a count that runs past midnight is still one day's;
//! - the count and its cursor are stored together, conditional on the version read: a
//!   page is counted once, however runs overlap or fail (an interrupted run's pages are
//!   read again by the next one, and never added twice);
//! - a published count has seen every recipient that existed for the whole count,
//!   once (the cursor walks recipient ids in order).

use crate::audience::engagement::{epoch_day, Score, Segment};
use crate::audience::reader::{AudienceError, AudienceReader, Marks};
use crate::rollup::reader::{ReadError, RollupReader};
use crate::rollup::TENANTS_PARTITION;
use crate::stats::rfc3339;
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;

/// Recipients read per page of marks.
pub const PAGE: usize = 1000;
/// Pages of marks a run reads per tenant at most (100,000 recipients, a few seconds).
pub const PAGES_PER_RUN: usize = 100;
/// How old a published count may get before a new one starts (one also starts on a
/// new day, as scores decay by the day).
pub const REFRESH_AFTER: chrono::Duration = chrono::Duration::hours(1);
/// A tenant with at most this many recipients is counted from its marks per request
/// (one Query of at most about 100 KB); a larger one from the published count, which
/// spares every dashboard view reading every recipient's marks (1,000 recipients are
/// some 4 MB, 500 read units).
pub const LIVE_RECIPIENTS: usize = 100;
/// Tenants brought up to date at once.
const CONCURRENCY: usize = 8;
/// How many recipients each segment holds, scored as of one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// The UTC day (days since 1970-01-01) the scores are for.
    pub day: i64,
    pub started_at: String,
    /// Set once the count has seen every recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Segment name → recipients.
    pub segments: BTreeMap<String, u64>,
}

impl Count {
    /// A count of no one yet, for the day of `now`.
    pub fn start(now: DateTime<Utc>) -> Self {
        Count {
            day: epoch_day(now.timestamp_millis()),
            started_at: rfc3339(now),
            finished_at: None,
            segments: Segment::ALL
                .iter()
                .map(|s| (s.as_str().to_string(), 0))
                .collect(),
        }
    }

    /// Scores recipients as of the count's day and counts them.
    pub fn add<'a>(&mut self, recipients: impl IntoIterator<Item = &'a (String, Marks)>) {
        for (recipient, marks) in recipients {
            let segment = Score::of_marks(recipient, marks, self.day).segment;
            *self
                .segments
                .entry(segment.as_str().to_string())
                .or_default() += 1;
        }
    }

    pub fn finish(mut self, now: DateTime<Utc>) -> Self {
        self.finished_at = Some(rfc3339(now));
        self
    }

    /// Recipients in the segment.
    pub fn of(&self, segment: Segment) -> u64 {
        self.segments.get(segment.as_str()).copied().unwrap_or(0)
    }

    /// Recipients counted.
    pub fn recipients(&self) -> u64 {
        self.segments.values().sum()
    }

    /// Whether a new count should replace this one at `now`.
    pub fn stale(&self, now: DateTime<Utc>) -> bool {
        let finished = self
            .finished_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        self.day != epoch_day(now.timestamp_millis())
            || finished.is_none_or(|f| now - f.with_timezone(&Utc) >= REFRESH_AFTER)
    }

    /// The day the scores are for, as a date.
    pub fn as_of(&self) -> NaiveDate {
        DateTime::from_timestamp(self.day * 86_400, 0)
            .unwrap_or_default()
            .date_naive()
    }
}

/// A count in progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scan {
    pub count: Count,
    /// Where the next page starts (`None`: at the first recipient).
    pub cursor: Option<String>,
}

/// What the snapshot item holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotState {
    /// The latest finished count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<Scan>,
}

/// Where snapshots are kept.
pub trait SegmentSnapshots: Send + Sync {
    /// The tenant's snapshot and its version (0: never stored); strongly consistent if
    /// asked (to go on with a count).
    fn segment_snapshot(
        &self,
        tenant: &str,
        consistent: bool,
    ) -> impl Future<Output = Result<(SnapshotState, i64), AudienceError>> + Send;

    /// Stores the snapshot unless its version moved on from `version`; whether it did.
    fn store_segment_snapshot(
        &self,
        tenant: &str,
        state: &SnapshotState,
        version: i64,
    ) -> impl Future<Output = Result<bool, AudienceError>> + Send;
}

/// What one run did for a tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Refreshed {
    pub tenant: String,
    /// The published count was fresh and none was in progress: nothing read.
    pub fresh: bool,
    /// Recipients counted in this run.
    pub recipients_read: usize,
    /// Whether the run finished (and published) a count.
    pub published: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One run's step of a tenant's count: at most `pages` pages of marks, then the count
/// stored (published if it reached the end).
pub async fn refresh<R: AudienceReader + SegmentSnapshots>(
    reader: &R,
    tenant: &str,
    now: DateTime<Utc>,
    pages: usize,
) -> Result<Refreshed, AudienceError> {
    let (mut state, version) = reader.segment_snapshot(tenant, true).await?;
    let mut out = Refreshed {
        tenant: tenant.to_string(),
        ..Default::default()
    };
    let due = state.published.as_ref().is_none_or(|p| p.stale(now));
    if state.scan.is_none() && !due {
        out.fresh = true;
        return Ok(out);
    }
    let mut scan = state.scan.take().unwrap_or_else(|| Scan {
        count: Count::start(now),
        cursor: None,
    });
    for _ in 0..pages {
        let page = reader
            .marks_page(tenant, scan.cursor.as_deref(), PAGE)
            .await?;
        scan.count.add(&page.items);
        out.recipients_read += page.items.len();
        match page.next {
            Some(next) => scan.cursor = Some(next),
            None => {
                out.published = true;
                break;
            }
        }
    }
    if out.published {
        state.published = Some(scan.count.finish(now));
    } else {
        state.scan = Some(scan);
    }
    // Another run stored first: it counted these pages, or will again.
    if !reader
        .store_segment_snapshot(tenant, &state, version)
        .await?
    {
        out.published = false;
    }
    Ok(out)
}

/// [`refresh`] for every tenant that has sent events, a few at a time; a tenant that
/// fails is reported and the others go on.
pub async fn refresh_all<R: RollupReader + AudienceReader + SegmentSnapshots>(
    reader: &R,
    now: DateTime<Utc>,
) -> Result<Vec<Refreshed>, ReadError> {
    let tenants = reader.directory(TENANTS_PARTITION, "").await?;
    Ok(futures_util::stream::iter(tenants)
        .map(|t| async move {
            refresh(reader, &t.sk, now, PAGES_PER_RUN)
                .await
                .unwrap_or_else(|e| Refreshed {
                    tenant: t.sk.clone(),
                    error: Some(e.to_string()),
                    ..Default::default()
                })
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audience::engagement::Action;
    use crate::testkit::rollups::MemoryRollupReader;
    use chrono::Duration;

    fn now() -> DateTime<Utc> {
        "2026-11-30T12:00:00Z".parse().unwrap()
    }

    /// `n` recipients of `tenant`: every third opened today (5 + 1 points: low), the
    /// others only delivered (inactive).
    fn seed(store: &MemoryRollupReader, tenant: &str, n: usize) {
        let today = epoch_day(now().timestamp_millis());
        let mut audience = store.audience.lock().unwrap();
        for i in 0..n {
            let mut marks = Marks::new();
            marks.insert(Action::Delivered.mark(tenant, &format!("m{i}")), today);
            if i % 3 == 0 {
                marks.insert(Action::Opened.mark(tenant, &format!("m{i}")), today);
            }
            audience
                .engagement
                .insert((tenant.to_string(), format!("r{i:06}")), marks);
        }
    }

    #[tokio::test]
    async fn a_big_tenant_is_counted_over_several_runs_each_recipient_once() {
        let store = MemoryRollupReader::default();
        let pages = 2;
        let n = 2 * PAGE * pages + 123;
        seed(&store, "acme", n);
        let mut runs = 0;
        loop {
            store.reset_calls();
            let done = refresh(&store, "acme", now(), pages).await.unwrap();
            runs += 1;
            // A run's cost does not grow with the tenant.
            let read = store
                .calls()
                .iter()
                .filter(|(kind, _)| *kind == "marks page")
                .count();
            assert!(read <= pages, "{read} pages in one run");
            if done.published {
                break;
            }
            let (state, _) = store.segment_snapshot("acme", true).await.unwrap();
            assert!(
                state.published.is_none(),
                "nothing published before the end"
            );
        }
        assert_eq!(runs, 3);
        let (state, version) = store.segment_snapshot("acme", true).await.unwrap();
        let count = state.published.unwrap();
        assert_eq!(count.recipients(), n as u64, "every recipient once");
        assert_eq!(count.of(Segment::Low), n.div_ceil(3) as u64);
        assert_eq!(count.of(Segment::Inactive), (n - n.div_ceil(3)) as u64);
        assert_eq!(count.as_of().to_string(), "2026-11-30");
        assert!(count.finished_at.is_some());
        assert!(state.scan.is_none());
        assert_eq!(version, 3);

        // A fresh count is left alone; an hour on, a new one starts, and the published
        // one stays until it ends.
        seed(&store, "acme", n + 10);
        let idle = refresh(&store, "acme", now() + Duration::minutes(5), pages)
            .await
            .unwrap();
        assert!(idle.fresh && idle.recipients_read == 0);
        let later = now() + REFRESH_AFTER;
        refresh(&store, "acme", later, pages).await.unwrap();
        let (state, _) = store.segment_snapshot("acme", true).await.unwrap();
        assert_eq!(state.published.unwrap().recipients(), n as u64);
        assert!(state.scan.is_some());
        for _ in 0..2 {
            refresh(&store, "acme", later, pages).await.unwrap();
        }
        let (state, _) = store.segment_snapshot("acme", true).await.unwrap();
        assert_eq!(state.published.unwrap().recipients(), n as u64 + 10);
    }

    #[test]
    fn a_count_goes_stale_after_an_hour_or_at_midnight() {
        let count = Count::start(now()).finish(now());
        assert!(!count.stale(now() + Duration::minutes(59)));
        assert!(count.stale(now() + REFRESH_AFTER));
        let late = "2026-11-30T23:50:00Z".parse().unwrap();
        let count = Count::start(late).finish(late);
        assert!(count.stale(late + Duration::minutes(15)), "a new day");
        assert!(Count::start(now()).stale(now()), "never finished");
    }

    #[tokio::test]
    async fn an_overlapping_run_does_not_count_a_page_twice() {
        let store = MemoryRollupReader::default();
        let n = PAGE + 5;
        seed(&store, "acme", n);
        let (before, version) = store.segment_snapshot("acme", true).await.unwrap();
        refresh(&store, "acme", now(), 1).await.unwrap();
        // A run that read the same version meanwhile cannot store its count.
        let mut late = before.clone();
        late.scan = Some(Scan {
            count: Count::start(now()),
            cursor: None,
        });
        assert!(!store
            .store_segment_snapshot("acme", &late, version)
            .await
            .unwrap());
        let done = refresh(&store, "acme", now(), 1).await.unwrap();
        assert!(done.published);
        let (state, _) = store.segment_snapshot("acme", true).await.unwrap();
        assert_eq!(state.published.unwrap().recipients(), n as u64);
    }

    #[tokio::test]
    async fn every_tenant_is_refreshed() {
        let store = MemoryRollupReader::default();
        for t in ["acme", "globex"] {
            store.set_directory(TENANTS_PARTITION, t, "2026-11-30T00:00:00Z");
        }
        seed(&store, "acme", 5);
        let mut out = refresh_all(&store, now()).await.unwrap();
        out.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|r| r.published && r.error.is_none()));
        assert_eq!(out[0].recipients_read, 5);
        let (globex, _) = store.segment_snapshot("globex", false).await.unwrap();
        assert_eq!(globex.published.unwrap().recipients(), 0);
        store
            .failing
            .store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(refresh_all(&store, now()).await.is_err());
    }
}
