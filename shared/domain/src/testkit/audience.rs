//! The audience (suppressions, engagement marks, segment snapshots) in memory, with the
//! store's semantics.

use crate::audience::engagement::Changes;
use crate::audience::reader::{
    encode_cursor, parse_cursor, AudienceError, AudienceReader, Marks, Page,
};
use crate::audience::segments::{SegmentSnapshots, SnapshotState};
use crate::audience::suppression::{Entry, Suppression};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Suppressions and marks in memory, with the store's semantics (tests, the in-memory
/// rollup store).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MemoryAudience {
    /// (tenant, channel, recipient) → entry.
    pub suppressions: BTreeMap<(String, String, String), Entry>,
    /// (tenant, recipient) → marks.
    pub engagement: BTreeMap<(String, String), Marks>,
    /// tenant → segment snapshot and its version.
    pub segment_snapshots: BTreeMap<String, (crate::audience::segments::SnapshotState, i64)>,
}

impl MemoryAudience {
    pub fn apply(&mut self, suppressions: &[Suppression], changes: &Changes) {
        for s in suppressions {
            let key = (s.tenant.clone(), s.channel.clone(), s.recipient.clone());
            let entry = self.suppressions.remove(&key);
            self.suppressions.insert(key, Entry::merge(entry, s));
        }
        changes.apply_to(&mut self.engagement);
    }

    fn page<K: Ord + Clone, V: Clone, T>(
        map: &BTreeMap<K, V>,
        range: impl Fn(&K) -> Option<&str>,
        cursor: Option<&str>,
        limit: usize,
        make: impl Fn(&str, &V) -> T,
    ) -> Result<Page<T>, AudienceError> {
        let after = cursor.map(parse_cursor).transpose()?;
        let mut items = Vec::new();
        let mut last = None;
        let mut more = false;
        for (k, v) in map {
            let Some(recipient) = range(k) else { continue };
            if after.as_deref().is_some_and(|a| recipient <= a) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(make(recipient, v));
            last = Some(recipient.to_string());
        }
        Ok(Page {
            items,
            next: last.filter(|_| more).map(|l| encode_cursor(&l)),
        })
    }
}

impl AudienceReader for std::sync::Mutex<MemoryAudience> {
    async fn suppressed(
        &self,
        tenant: &str,
        channel: &str,
        recipients: &[String],
    ) -> Result<HashMap<String, Entry>, AudienceError> {
        let state = self.lock().unwrap();
        Ok(recipients
            .iter()
            .filter_map(|r| {
                let key = (tenant.to_string(), channel.to_string(), r.clone());
                state.suppressions.get(&key).map(|e| (r.clone(), e.clone()))
            })
            .collect())
    }

    async fn suppression_page(
        &self,
        tenant: &str,
        channel: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Entry>, AudienceError> {
        let state = self.lock().unwrap();
        MemoryAudience::page(
            &state.suppressions,
            |(t, c, r)| (t == tenant && c == channel).then_some(r.as_str()),
            cursor,
            limit,
            |_, e| e.clone(),
        )
    }

    async fn marks(&self, tenant: &str, recipient: &str) -> Result<Marks, AudienceError> {
        let state = self.lock().unwrap();
        Ok(state
            .engagement
            .get(&(tenant.to_string(), recipient.to_string()))
            .cloned()
            .unwrap_or_default())
    }

    async fn marks_page(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<(String, Marks)>, AudienceError> {
        let state = self.lock().unwrap();
        MemoryAudience::page(
            &state.engagement,
            |(t, r)| (t == tenant).then_some(r.as_str()),
            cursor,
            limit,
            |r, m| (r.to_string(), m.clone()),
        )
    }
}

/// Snapshots in memory, versioned like the table's.
impl SegmentSnapshots for Mutex<MemoryAudience> {
    async fn segment_snapshot(
        &self,
        tenant: &str,
        _consistent: bool,
    ) -> Result<(SnapshotState, i64), AudienceError> {
        let state = self.lock().unwrap();
        Ok(state
            .segment_snapshots
            .get(tenant)
            .cloned()
            .unwrap_or_default())
    }

    async fn store_segment_snapshot(
        &self,
        tenant: &str,
        snapshot: &SnapshotState,
        version: i64,
    ) -> Result<bool, AudienceError> {
        let mut state = self.lock().unwrap();
        let stored = state
            .segment_snapshots
            .entry(tenant.to_string())
            .or_default();
        if stored.1 != version {
            return Ok(false);
        }
        *stored = (snapshot.clone(), version + 1);
        Ok(true)
    }
}
