//! In-memory stand-ins for the small ports: the event sink, the mailer, dead letters,
//! API keys, alert rules and webhooks. Each keeps what it was given so a test can look.

use crate::alert::outbound::Lookup;
use crate::alert::store::{AlertStore, AlertStoreError, StoredItem, WebhookError, WebhookSender};
use crate::apikey::{hash_api_key, new_api_key, ApiKeyRecord, ApiKeyStore, ApiKeyStoreError};
use crate::dashboard::access::{LinkRecord, LinkStore, LinkStoreError};
use crate::dashboard::live::{Batch, LiveStore, LiveStoreError, Minute};
use crate::event::stream::{DeadLetter, DeadLetterError, DeadLetterSink};
use crate::event::Event;
use crate::ingest::credentials::{ProviderStore, ProviderStoreError, StoredCredential};
use crate::ingest::Provider;
use crate::tracking::sink::{encode_record, EventSink, Unstored};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;

use crate::mail::{MailError, Mailer};
use std::sync::Mutex;

/// One message kept by [`MemoryMailer`]: sender, recipients, raw MIME.
pub type SentMail = (String, Vec<String>, Vec<u8>);

/// Mail kept in memory; can be made to fail.
#[derive(Default)]
pub struct MemoryMailer {
    pub sent: Mutex<Vec<SentMail>>,
    pub failing: std::sync::atomic::AtomicBool,
}

impl Mailer for MemoryMailer {
    async fn send(&self, from: &str, to: &[String], raw: Vec<u8>) -> Result<String, MailError> {
        if self.failing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(MailError("the mailer is failing on purpose".into()));
        }
        let mut sent = self.sent.lock().unwrap();
        sent.push((from.to_string(), to.to_vec(), raw));
        Ok(format!("memory-{}", sent.len()))
    }
}

/// A sink that keeps the encoded records in memory: for in-process tests and benchmarks
/// (the encoding is the Kinesis sink's, so its cost is measured too), and able to refuse
/// writes, to test what producers do when the stream is down.
#[derive(Debug, Default)]
pub struct MemorySink {
    pub records: std::sync::Mutex<Vec<Vec<u8>>>,
    pub refuse: std::sync::atomic::AtomicBool,
}

impl MemorySink {
    /// A sink that refuses every write.
    pub fn refusing() -> Self {
        let sink = MemorySink::default();
        sink.refuse
            .store(true, std::sync::atomic::Ordering::Relaxed);
        sink
    }

    /// The stored events, decoded.
    pub fn events(&self) -> Vec<Event> {
        self.records
            .lock()
            .expect("sink lock")
            .iter()
            .map(|r| serde_json::from_slice(r).expect("records are events"))
            .collect()
    }
}

impl EventSink for MemorySink {
    async fn put(&self, events: &[Event]) -> Vec<Unstored> {
        if self.refuse.load(std::sync::atomic::Ordering::Relaxed) {
            return (0..events.len())
                .map(|index| Unstored {
                    index,
                    error: "stream refused the write".into(),
                })
                .collect();
        }
        let mut records = self.records.lock().expect("sink lock");
        records.extend(events.iter().map(encode_record));
        Vec::new()
    }
}

/// Dead letters kept in memory.
#[derive(Debug, Default)]
pub struct MemoryDeadLetters {
    pub letters: std::sync::Mutex<Vec<DeadLetter>>,
}

impl DeadLetterSink for MemoryDeadLetters {
    async fn send(&self, letters: &[DeadLetter]) -> Result<(), DeadLetterError> {
        self.letters.lock().unwrap().extend(letters.iter().cloned());
        Ok(())
    }
}

/// An in-memory store, for unit tests of the HTTP functions and for benchmarks.
#[derive(Default)]
pub struct MemoryApiKeys {
    pub records: Mutex<HashMap<String, ApiKeyRecord>>,
    pub lookups: std::sync::atomic::AtomicUsize,
}

impl MemoryApiKeys {
    /// Adds a key for `tenant` and returns the plain key.
    pub fn issue(&self, tenant: &str) -> String {
        let key = new_api_key();
        let record = ApiKeyRecord {
            key_hash: hash_api_key(&key),
            tenant_id: tenant.to_string(),
            name: "test".into(),
            created_at: String::new(),
            revoked: false,
        };
        self.records
            .lock()
            .unwrap()
            .insert(record.key_hash.clone(), record);
        key
    }
}

impl ApiKeyStore for MemoryApiKeys {
    async fn find(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, ApiKeyStoreError> {
        self.lookups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self.records.lock().unwrap().get(key_hash).cloned())
    }

    async fn save(&self, record: &ApiKeyRecord) -> Result<(), ApiKeyStoreError> {
        self.records
            .lock()
            .unwrap()
            .insert(record.key_hash.clone(), record.clone());
        Ok(())
    }
}

/// The table in memory (tests).
#[derive(Debug, Default)]
pub struct MemoryAlerts {
    /// (tenant, sk) → (body, version).
    pub items: Mutex<BTreeMap<(String, String), (String, u64)>>,
}

impl AlertStore for MemoryAlerts {
    async fn items(&self, tenant: &str) -> Result<Vec<StoredItem>, AlertStoreError> {
        Ok(self
            .items
            .lock()
            .unwrap()
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|((_, sk), (body, v))| (sk.clone(), body.clone(), *v))
            .collect())
    }

    async fn put(
        &self,
        tenant: &str,
        sk: &str,
        body: String,
        expected: Option<u64>,
    ) -> Result<bool, AlertStoreError> {
        let mut items = self.items.lock().unwrap();
        let key = (tenant.to_string(), sk.to_string());
        let current = items.get(&key).map_or(0, |(_, v)| *v);
        if expected.is_some_and(|e| e != current) {
            return Ok(false);
        }
        items.insert(key, (body, current + 1));
        Ok(true)
    }

    async fn delete(&self, tenant: &str, sk: &str) -> Result<bool, AlertStoreError> {
        Ok(self
            .items
            .lock()
            .unwrap()
            .remove(&(tenant.to_string(), sk.to_string()))
            .is_some())
    }
}

/// One webhook request kept by [`MemoryWebhooks`]: URL, headers, body.
pub type SentWebhook = (String, HashMap<String, String>, Vec<u8>);

/// Webhooks in memory; can be made to fail.
#[derive(Debug, Default)]
pub struct MemoryWebhooks {
    pub sent: Mutex<Vec<SentWebhook>>,
    pub failing: std::sync::atomic::AtomicBool,
}

impl WebhookSender for MemoryWebhooks {
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<u16, WebhookError> {
        if self.failing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(WebhookError(format!("POST {url}: failing on purpose")));
        }
        self.sent.lock().unwrap().push((
            url.to_string(),
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            body,
        ));
        Ok(200)
    }
}

/// Names answered from a table that can be changed at any time (tests; a name it does
/// not hold does not resolve).
#[derive(Debug, Default)]
pub struct StaticLookup {
    names: Mutex<HashMap<String, Vec<IpAddr>>>,
}

impl StaticLookup {
    /// Makes `host` resolve to `addresses` from now on.
    pub fn set(&self, host: &str, addresses: &[IpAddr]) {
        self.names
            .lock()
            .unwrap()
            .insert(host.to_ascii_lowercase(), addresses.to_vec());
    }
}

impl Lookup for StaticLookup {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>> {
        let found = self.names.lock().unwrap().get(host).cloned();
        Box::pin(async move {
            found.ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("{host}: no such name"))
            })
        })
    }
}

/// Provider credentials, configuration sets and used tokens in memory.
#[derive(Default)]
pub struct MemoryProviders {
    pub credentials: Mutex<BTreeMap<(String, Provider), StoredCredential>>,
    pub configuration_sets: Mutex<BTreeMap<String, String>>,
    pub tokens: Mutex<std::collections::HashSet<String>>,
    /// Configuration-set lookups made (to test caching).
    pub lookups: std::sync::atomic::AtomicUsize,
}

impl ProviderStore for MemoryProviders {
    async fn credential(
        &self,
        tenant: &str,
        provider: Provider,
    ) -> Result<Option<StoredCredential>, ProviderStoreError> {
        Ok(self
            .credentials
            .lock()
            .unwrap()
            .get(&(tenant.to_string(), provider))
            .cloned())
    }

    async fn put_credential(&self, c: &StoredCredential) -> Result<(), ProviderStoreError> {
        self.credentials
            .lock()
            .unwrap()
            .insert((c.tenant_id.clone(), c.provider), c.clone());
        Ok(())
    }

    async fn remove_credential(
        &self,
        tenant: &str,
        provider: Provider,
    ) -> Result<bool, ProviderStoreError> {
        Ok(self
            .credentials
            .lock()
            .unwrap()
            .remove(&(tenant.to_string(), provider))
            .is_some())
    }

    async fn credentials(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<StoredCredential>, ProviderStoreError> {
        Ok(self
            .credentials
            .lock()
            .unwrap()
            .values()
            .filter(|c| tenant.is_none_or(|t| c.tenant_id == t))
            .cloned()
            .collect())
    }

    async fn configuration_set_tenant(
        &self,
        configuration_set: &str,
    ) -> Result<Option<String>, ProviderStoreError> {
        self.lookups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self
            .configuration_sets
            .lock()
            .unwrap()
            .get(configuration_set)
            .cloned())
    }

    async fn put_configuration_set(
        &self,
        configuration_set: &str,
        tenant: &str,
    ) -> Result<(), ProviderStoreError> {
        self.configuration_sets
            .lock()
            .unwrap()
            .insert(configuration_set.to_string(), tenant.to_string());
        Ok(())
    }

    async fn remove_configuration_set(
        &self,
        configuration_set: &str,
    ) -> Result<bool, ProviderStoreError> {
        Ok(self
            .configuration_sets
            .lock()
            .unwrap()
            .remove(configuration_set)
            .is_some())
    }

    async fn configuration_sets(&self) -> Result<Vec<(String, String)>, ProviderStoreError> {
        Ok(self
            .configuration_sets
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn first_use(
        &self,
        tenant: &str,
        provider: Provider,
        token: &str,
        _expires_at: i64,
    ) -> Result<bool, ProviderStoreError> {
        Ok(self
            .tokens
            .lock()
            .unwrap()
            .insert(format!("{tenant}#{provider}#{token}")))
    }

    async fn forget_use(
        &self,
        tenant: &str,
        provider: Provider,
        token: &str,
    ) -> Result<(), ProviderStoreError> {
        self.tokens
            .lock()
            .unwrap()
            .remove(&format!("{tenant}#{provider}#{token}"));
        Ok(())
    }
}

/// Dashboard links in memory, by tenant and id.
#[derive(Default)]
pub struct MemoryLinks {
    pub links: Mutex<BTreeMap<(String, String), LinkRecord>>,
}

impl LinkStore for MemoryLinks {
    async fn record(&self, r: &LinkRecord) -> Result<(), LinkStoreError> {
        self.links
            .lock()
            .unwrap()
            .insert((r.link.tenant.clone(), r.link.id.clone()), r.clone());
        Ok(())
    }

    async fn find(&self, tenant: &str, id: &str) -> Result<Option<LinkRecord>, LinkStoreError> {
        Ok(self
            .links
            .lock()
            .unwrap()
            .get(&(tenant.to_string(), id.to_string()))
            .cloned())
    }

    async fn list(&self, tenant: &str) -> Result<Vec<LinkRecord>, LinkStoreError> {
        let mut out: Vec<LinkRecord> = self
            .links
            .lock()
            .unwrap()
            .values()
            .filter(|r| r.link.tenant == tenant)
            .cloned()
            .collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        Ok(out)
    }

    async fn revoke(&self, tenant: &str, id: &str, at: &str) -> Result<bool, LinkStoreError> {
        Ok(
            match self
                .links
                .lock()
                .unwrap()
                .get_mut(&(tenant.to_string(), id.to_string()))
            {
                Some(r) => {
                    r.revoked_at.get_or_insert_with(|| at.to_string());
                    true
                }
                None => false,
            },
        )
    }
}

/// The live view in memory: per tenant and minute, the counts and each slot's entries.
#[derive(Default)]
pub struct MemoryLive {
    #[allow(clippy::type_complexity)]
    pub minutes: Mutex<
        BTreeMap<
            (String, i64),
            (
                BTreeMap<String, u64>,
                BTreeMap<u32, Vec<crate::dashboard::live::FeedEntry>>,
            ),
        >,
    >,
    /// Writes made (one per tenant per batch).
    pub writes: std::sync::atomic::AtomicUsize,
}

impl LiveStore for MemoryLive {
    async fn record(&self, batch: &Batch, minute: i64, slot: u32) -> Result<(), LiveStoreError> {
        let mut minutes = self.minutes.lock().unwrap();
        for (tenant, t) in &batch.tenants {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (counts, slots) = minutes.entry((tenant.clone(), minute)).or_default();
            for (k, n) in &t.counts {
                *counts.entry(k.clone()).or_default() += n;
            }
            if !t.feed.is_empty() {
                slots.insert(slot, t.feed.clone());
            }
        }
        Ok(())
    }

    async fn minutes(
        &self,
        tenant: &str,
        first_minute: i64,
        last_minute: i64,
    ) -> Result<Vec<Minute>, LiveStoreError> {
        Ok(self
            .minutes
            .lock()
            .unwrap()
            .iter()
            .filter(|((t, m), _)| t == tenant && (first_minute..=last_minute).contains(m))
            .map(|((_, m), (counts, slots))| Minute {
                minute: *m,
                counts: counts.clone(),
                feed: slots.values().flatten().cloned().collect(),
            })
            .collect())
    }
}
