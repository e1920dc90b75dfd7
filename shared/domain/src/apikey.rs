//! Per-tenant API keys for the collect and stats APIs.
//!
//! Keys are 256-bit random strings shown once at creation; only their SHA-256 is
//! stored. A plain hash is enough here (no slow KDF) because the keys are random and
//! long, not guessable passwords. Lookups are cached briefly so a busy collector does
//! not read DynamoDB on every request.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Visible prefix so a leaked key is recognizable (and greppable by secret scanners).
pub const KEY_PREFIX: &str = "bk_";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub key_hash: String,
    pub tenant_id: String,
    pub name: String,
    pub created_at: String,
    pub revoked: bool,
}

#[derive(Debug, Error)]
pub enum ApiKeyStoreError {
    #[error("API key store unavailable: {0}")]
    Unavailable(String),
    #[error("API key record `{0}` is incomplete")]
    Corrupt(String),
}

/// Why a request was not authenticated.
#[derive(Debug, Error)]
pub enum AuthError {
    #[error("missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`")]
    Missing,
    #[error("API key is not valid")]
    Invalid,
    #[error("API key has been revoked")]
    Revoked,
    #[error(transparent)]
    Store(#[from] ApiKeyStoreError),
}

/// A fresh random key.
pub fn new_api_key() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Where key records live.
pub trait ApiKeyStore: Send + Sync {
    fn find(
        &self,
        key_hash: &str,
    ) -> impl Future<Output = Result<Option<ApiKeyRecord>, ApiKeyStoreError>> + Send;
    fn save(
        &self,
        record: &ApiKeyRecord,
    ) -> impl Future<Output = Result<(), ApiKeyStoreError>> + Send;
}

/// Checks a presented key and returns its record.
pub async fn authenticate<S: ApiKeyStore>(
    store: &S,
    presented: Option<&str>,
) -> Result<ApiKeyRecord, AuthError> {
    let key = presented
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(AuthError::Missing)?;
    if !key.starts_with(KEY_PREFIX) || key.len() > 128 {
        return Err(AuthError::Invalid);
    }
    match store.find(&hash_api_key(key)).await? {
        None => Err(AuthError::Invalid),
        Some(record) if record.revoked => Err(AuthError::Revoked),
        // A record written around `beacon apikey create` with a tenant id that could
        // reach into another tenant's keys is refused, not trusted.
        Some(record) if crate::tenant::check(&record.tenant_id).is_err() => {
            Err(ApiKeyStoreError::Corrupt(record.tenant_id).into())
        }
        Some(record) => Ok(record),
    }
}

/// Remembers lookups for a while: hits for `ttl`, misses for less, so a revoked key
/// stops working within `ttl` and a flood of bad keys doesn't reach the table.
pub struct CachedApiKeys<S> {
    inner: S,
    ttl: Duration,
    miss_ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Option<ApiKeyRecord>)>>,
}

impl<S> CachedApiKeys<S> {
    pub fn new(inner: S, ttl: Duration) -> Self {
        CachedApiKeys {
            inner,
            ttl,
            miss_ttl: ttl.min(Duration::from_secs(5)),
            entries: Mutex::new(HashMap::new()),
        }
    }
}

/// Bound on cached entries, so hostile keys can't grow memory without limit.
const MAX_CACHED: usize = 10_000;

impl<S: ApiKeyStore> ApiKeyStore for CachedApiKeys<S> {
    async fn find(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, ApiKeyStoreError> {
        if let Some((at, record)) = self.entries.lock().expect("cache lock").get(key_hash) {
            let ttl = if record.is_some() {
                self.ttl
            } else {
                self.miss_ttl
            };
            if at.elapsed() < ttl {
                return Ok(record.clone());
            }
        }
        let record = self.inner.find(key_hash).await?;
        let mut entries = self.entries.lock().expect("cache lock");
        if entries.len() >= MAX_CACHED {
            entries.clear();
        }
        entries.insert(key_hash.to_string(), (Instant::now(), record.clone()));
        Ok(record)
    }

    async fn save(&self, record: &ApiKeyRecord) -> Result<(), ApiKeyStoreError> {
        self.entries
            .lock()
            .expect("cache lock")
            .remove(&record.key_hash);
        self.inner.save(record).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::memory::MemoryApiKeys;
    use std::sync::atomic::Ordering;

    #[tokio::test]
    async fn a_stored_key_with_an_unsafe_tenant_id_is_refused() {
        let store = MemoryApiKeys::default();
        let key = store.issue("acme#D");
        assert!(matches!(
            authenticate(&store, Some(&key)).await,
            Err(AuthError::Store(ApiKeyStoreError::Corrupt(t))) if t == "acme#D"
        ));
    }

    #[tokio::test]
    async fn authenticate_accepts_issued_keys_only() {
        let store = MemoryApiKeys::default();
        let key = store.issue("acme");
        assert!(key.starts_with(KEY_PREFIX) && key.len() > 40);
        assert_eq!(
            authenticate(&store, Some(&key)).await.unwrap().tenant_id,
            "acme"
        );
        assert!(matches!(
            authenticate(&store, None).await,
            Err(AuthError::Missing)
        ));
        assert!(matches!(
            authenticate(&store, Some("bk_nope")).await,
            Err(AuthError::Invalid)
        ));
        assert!(matches!(
            authenticate(&store, Some("Bearer x")).await,
            Err(AuthError::Invalid)
        ));
    }

    #[tokio::test]
    async fn revoked_keys_are_refused() {
        let store = MemoryApiKeys::default();
        let key = store.issue("acme");
        let mut record = store.find(&hash_api_key(&key)).await.unwrap().unwrap();
        record.revoked = true;
        store.save(&record).await.unwrap();
        assert!(matches!(
            authenticate(&store, Some(&key)).await,
            Err(AuthError::Revoked)
        ));
    }

    #[tokio::test]
    async fn cache_answers_repeat_lookups() {
        let cached = CachedApiKeys::new(MemoryApiKeys::default(), Duration::from_secs(60));
        let key = cached.inner.issue("acme");
        for _ in 0..5 {
            authenticate(&cached, Some(&key)).await.unwrap();
        }
        assert_eq!(cached.inner.lookups.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn hash_is_stable_hex() {
        assert_eq!(
            hash_api_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
