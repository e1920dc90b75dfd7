//! A rollup store that crashes: it performs the real DynamoDB write, then fails the
//! call, at chosen write numbers. That is a function dying between two writes. It can
//! also refuse one tenant's runs for good, as DynamoDB refuses an item grown past its
//! limit: nothing of such a run is written, and the error is permanent.

use beacon_domain::audience::engagement::Changes;
use beacon_domain::audience::suppression::Suppression;
use beacon_domain::rollup::aggregate::{DedupeKey, DedupeSets, RollupStore, RollupStoreError, Run};
use beacon_domain::rollup::UniqueKey;
use beacon_domain::verdict::trail::{Trail, TrailKey};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

pub struct FaultyStore<S> {
    pub inner: S,
    writes: AtomicUsize,
    /// Write numbers (1-based) after which the call fails.
    fail_after: Mutex<BTreeSet<usize>>,
    pub injected: AtomicUsize,
    /// A tenant every run of which is refused.
    refused_tenant: Option<String>,
    pub refused: AtomicUsize,
}

impl<S> FaultyStore<S> {
    pub fn new(inner: S, fail_after: impl IntoIterator<Item = usize>) -> Self {
        FaultyStore {
            inner,
            writes: AtomicUsize::new(0),
            fail_after: Mutex::new(fail_after.into_iter().collect()),
            injected: AtomicUsize::new(0),
            refused_tenant: None,
            refused: AtomicUsize::new(0),
        }
    }

    /// Refuses, permanently, every run that holds a rollup item of `tenant`.
    pub fn refusing(mut self, tenant: impl Into<String>) -> Self {
        self.refused_tenant = Some(tenant.into());
        self
    }

    fn after_write(&self) -> Result<(), RollupStoreError> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_after.lock().unwrap().remove(&n) {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(RollupStoreError::Failed(format!(
                "injected crash after write {n}"
            )));
        }
        Ok(())
    }
}

impl<S: RollupStore> RollupStore for FaultyStore<S> {
    async fn checkpoint(&self, shard: &str) -> Result<Option<String>, RollupStoreError> {
        self.inner.checkpoint(shard).await
    }

    async fn dedupe_members(&self, keys: &[DedupeKey]) -> Result<DedupeSets, RollupStoreError> {
        self.inner.dedupe_members(keys).await
    }

    async fn add_uniques(
        &self,
        uniques: &[(UniqueKey, BTreeSet<String>)],
    ) -> Result<(), RollupStoreError> {
        self.inner.add_uniques(uniques).await?;
        self.after_write()
    }

    async fn remove_uniques(
        &self,
        uniques: &[(UniqueKey, BTreeSet<String>)],
    ) -> Result<(), RollupStoreError> {
        self.inner.remove_uniques(uniques).await?;
        self.after_write()
    }

    async fn audience(
        &self,
        suppressions: &[Suppression],
        engagement: &Changes,
    ) -> Result<(), RollupStoreError> {
        self.inner.audience(suppressions, engagement).await?;
        self.after_write()
    }

    async fn trails(
        &self,
        keys: &[TrailKey],
    ) -> Result<HashMap<TrailKey, Trail>, RollupStoreError> {
        self.inner.trails(keys).await
    }

    async fn deliver(
        &self,
        deliveries: &[(TrailKey, i64)],
        expires: i64,
    ) -> Result<HashMap<TrailKey, Trail>, RollupStoreError> {
        let trails = self.inner.deliver(deliveries, expires).await?;
        self.after_write()?;
        Ok(trails)
    }

    async fn stage(&self, run: &Run) -> Result<(), RollupStoreError> {
        self.inner.stage(run).await?;
        self.after_write()
    }

    async fn apply(&self, run: &Run) -> Result<(), RollupStoreError> {
        if let Some(tenant) = &self.refused_tenant {
            if run.rollups.iter().any(|(k, _)| &k.tenant == tenant) {
                self.refused.fetch_add(1, Ordering::SeqCst);
                return Err(RollupStoreError::Permanent(format!(
                    "ValidationException: an item of {tenant} is over the size limit"
                )));
            }
        }
        self.inner.apply(run).await?;
        self.after_write()
    }
}
