//! Compaction: an hour's staging pieces become one curated file, safely against a
//! compaction running at the same time.

use crate::*;
use beacon_domain::event::Event;
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

/// What compaction did with one hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    pub partition: Partition,
    /// Rows of the curated object before.
    pub existing: usize,
    /// Staging pieces merged and deleted.
    pub pieces: usize,
    /// Rows read from pieces (and backfill input).
    pub added: usize,
    /// Duplicate event ids dropped.
    pub duplicates: usize,
    /// Rows of the curated object now.
    pub rows: usize,
    pub bytes: usize,
    /// Whether a curated object was written (nothing to do otherwise).
    pub written: bool,
}

/// How often an hour is started over when another compaction wrote it meanwhile.
const CONFLICT_ATTEMPTS: usize = 5;

/// Merges the hour's staging pieces (and `extra` events, for a backfill) into its
/// curated object. With `rewrite`, the curated object is written again even without
/// new rows (a rebuild: the current writer and classifier). The order of the steps is
/// the exactly-once argument at the top of this module.
pub async fn compact_partition<L: LakeStore>(
    lake: &L,
    partition: Partition,
    extra: &[Event],
    rewrite: bool,
) -> Result<Compacted, LakeError> {
    let curated = partition.curated_key();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let current = lake.get(&curated).await?;
        let pieces: Vec<String> = lake
            .list(&partition.staging_prefix())
            .await?
            .into_iter()
            .map(|o| o.key)
            .filter(|k| k.ends_with(".parquet"))
            .collect();
        let (mut rows, condition) = match current {
            Some((body, etag)) => (read_parquet(body)?, PutIf::Unchanged(etag)),
            None => (Vec::new(), PutIf::Absent),
        };
        let existing = rows.len();
        let mut report = Compacted {
            partition,
            existing,
            pieces: pieces.len(),
            added: extra.len(),
            duplicates: 0,
            rows: existing,
            bytes: 0,
            written: false,
        };
        if pieces.is_empty() && extra.is_empty() && !(rewrite && existing > 0) {
            return Ok(report);
        }
        for key in &pieces {
            // Gone: another run merged it, and its condition below tells us if we raced.
            if let Some((body, _)) = lake.get(key).await? {
                let events = read_parquet(body)?;
                report.added += events.len();
                rows.extend(events);
            }
        }
        rows.extend_from_slice(extra);
        let (rows, duplicates) = dedupe(rows);
        let body = write_parquet(&rows)?;
        report.duplicates = duplicates;
        report.rows = rows.len();
        report.bytes = body.len();
        match lake.put(&curated, body, condition).await {
            Ok(()) => {}
            Err(LakeError::Conflict(_)) if attempt < CONFLICT_ATTEMPTS => continue,
            Err(e) => return Err(e),
        }
        // Only now: the curated object holds every row of these pieces.
        lake.delete(&pieces).await?;
        report.written = true;
        return Ok(report);
    }
}

/// The hours that have staging pieces, each with its piece count.
pub async fn staged_partitions<L: LakeStore>(
    lake: &L,
) -> Result<BTreeMap<Partition, usize>, LakeError> {
    let mut out = BTreeMap::new();
    for object in lake.list(STAGING_PREFIX).await? {
        if let Some(p) = Partition::from_key(&object.key) {
            *out.entry(p).or_insert(0) += 1;
        }
    }
    Ok(out)
}

/// The scheduled step: compacts every hour with staging pieces that ended at least
/// `grace` before `now` (the ETL's batching and retries are done with it by then; a
/// later straggler is merged by a later run). Hours are done oldest first.
pub async fn compact_closed<L: LakeStore>(
    lake: &L,
    now: DateTime<Utc>,
    grace: Duration,
) -> Result<Vec<Compacted>, LakeError> {
    let mut done = Vec::new();
    for partition in staged_partitions(lake).await?.into_keys() {
        if partition.end() + grace <= now {
            done.push(compact_partition(lake, partition, &[], false).await?);
        }
    }
    Ok(done)
}
