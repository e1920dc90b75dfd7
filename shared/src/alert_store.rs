//! Where alert rules, their states, budgets and destinations live, and how notices go
//! out. The alerts table holds one partition per tenant (`T#{tenant}`), so one Query
//! reads everything an evaluation needs: `rule#{id}`, `state#{id}`, `budget`,
//! `budget-state` and `notify`, each a JSON `body` with a version `v` that state writes
//! are conditional on.

use crate::alert::{Budget, BudgetState, Destinations, Rule, State};
use crate::outbound::{self, Lookup, Policy, SystemLookup};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AlertStoreError {
    #[error("alerts store unavailable: {0}")]
    Unavailable(String),
    #[error("a stored alert item is unreadable: {0}")]
    Corrupt(String),
}

/// Everything of one tenant's alerting.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantAlerts {
    /// Stored rules (the defaults are added by [`crate::alert::effective`]).
    pub rules: Vec<Rule>,
    pub states: BTreeMap<String, State>,
    pub budget: Option<Budget>,
    pub budget_state: BudgetState,
    pub destinations: Destinations,
}

/// The sort keys of a tenant's items.
pub fn rule_key(id: &str) -> String {
    format!("rule#{id}")
}
pub fn state_key(id: &str) -> String {
    format!("state#{id}")
}
pub const BUDGET_KEY: &str = "budget";
pub const BUDGET_STATE_KEY: &str = "budget-state";
pub const NOTIFY_KEY: &str = "notify";

pub fn partition(tenant: &str) -> String {
    format!("T#{tenant}")
}

/// One stored item: its sort key, JSON body and version.
pub type StoredItem = (String, String, u64);

impl TenantAlerts {
    /// From a tenant's stored items.
    pub fn from_items(items: &[StoredItem]) -> Result<TenantAlerts, AlertStoreError> {
        fn parse<T: DeserializeOwned>(sk: &str, body: &str) -> Result<T, AlertStoreError> {
            serde_json::from_str(body).map_err(|e| AlertStoreError::Corrupt(format!("{sk}: {e}")))
        }
        let mut out = TenantAlerts::default();
        for (sk, body, version) in items {
            if sk.starts_with("rule#") {
                out.rules.push(parse(sk, body)?);
            } else if let Some(id) = sk.strip_prefix("state#") {
                let mut state: State = parse(sk, body)?;
                state.version = *version;
                out.states.insert(id.to_string(), state);
            } else if sk == BUDGET_KEY {
                out.budget = Some(parse(sk, body)?);
            } else if sk == BUDGET_STATE_KEY {
                out.budget_state = parse(sk, body)?;
                out.budget_state.version = *version;
            } else if sk == NOTIFY_KEY {
                out.destinations = parse(sk, body)?;
            }
        }
        Ok(out)
    }
}

/// The alerts table.
pub trait AlertStore: Send + Sync {
    /// Every item of the tenant's partition.
    fn items(
        &self,
        tenant: &str,
    ) -> impl Future<Output = Result<Vec<StoredItem>, AlertStoreError>> + Send;

    /// Writes an item's body. With `expected`, only if its version is still that
    /// (0: absent); returns whether it was written. The version goes up by one.
    fn put(
        &self,
        tenant: &str,
        sk: &str,
        body: String,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<bool, AlertStoreError>> + Send;

    /// Deletes an item; whether it existed.
    fn delete(
        &self,
        tenant: &str,
        sk: &str,
    ) -> impl Future<Output = Result<bool, AlertStoreError>> + Send;
}

/// Reading and writing the typed items over any [`AlertStore`].
pub trait AlertStoreExt: AlertStore {
    fn tenant(
        &self,
        tenant: &str,
    ) -> impl Future<Output = Result<TenantAlerts, AlertStoreError>> + Send {
        async move { TenantAlerts::from_items(&self.items(tenant).await?) }
    }

    fn put_json<T: Serialize + Sync>(
        &self,
        tenant: &str,
        sk: &str,
        value: &T,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<bool, AlertStoreError>> + Send {
        let body = serde_json::to_string(value).expect("alert items serialize");
        self.put(tenant, sk, body, expected)
    }
}

impl<S: AlertStore> AlertStoreExt for S {}

/// The DynamoDB adapter.
#[derive(Debug, Clone)]
pub struct DynamoAlerts {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoAlerts {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoAlerts {
            client,
            table: table.into(),
        }
    }
}

fn unavailable<E: std::error::Error + 'static>(
    what: &'static str,
) -> impl Fn(E) -> AlertStoreError {
    move |e| AlertStoreError::Unavailable(format!("{what}: {}", DisplayErrorContext(&e)))
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

impl AlertStore for DynamoAlerts {
    async fn items(&self, tenant: &str) -> Result<Vec<StoredItem>, AlertStoreError> {
        let items =
            crate::dynamo::query_partition(&self.client, &self.table, &partition(tenant), true)
                .await
                .map_err(unavailable("reading alerts"))?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let text = |n: &str| item.get(n).and_then(|v| v.as_s().ok()).cloned();
                let version = item
                    .get("v")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                Some((text("sk")?, text("body")?, version))
            })
            .collect())
    }

    async fn put(
        &self,
        tenant: &str,
        sk: &str,
        body: String,
        expected: Option<u64>,
    ) -> Result<bool, AlertStoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(partition(tenant)))
            .key("sk", s(sk))
            .update_expression("SET body = :body ADD v :one")
            .expression_attribute_values(":body", s(body))
            .expression_attribute_values(":one", AttributeValue::N("1".into()));
        if let Some(v) = expected {
            request = crate::dynamo::only_at_version(request, "v", v as i64);
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable("writing an alert item")(e)),
        }
    }

    async fn delete(&self, tenant: &str, sk: &str) -> Result<bool, AlertStoreError> {
        crate::dynamo::delete_existing(&self.client, &self.table, partition(tenant), sk)
            .await
            .map_err(unavailable("deleting an alert item"))
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

/// Where webhook notices are POSTed.
pub trait WebhookSender: Send + Sync {
    /// POSTs `body` with `headers`; Ok with the status when the receiver answered 2xx.
    fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> impl Future<Output = Result<u16, String>> + Send;
}

/// The HTTP adapter (reqwest, rustls), with a short timeout: a slow receiver must not
/// hold up every other tenant's alerts. Every request goes only where
/// [`crate::outbound`] allows: the URL is checked before each request, and names are
/// resolved, checked and connected to by the client's guarded resolver.
#[derive(Debug, Clone)]
pub struct HttpWebhooks {
    client: reqwest::Client,
    policy: Policy,
}

impl HttpWebhooks {
    /// With the system's resolver.
    pub fn new(timeout: std::time::Duration, policy: Policy) -> Self {
        Self::with_lookup(timeout, policy, Arc::new(SystemLookup))
    }

    /// With names resolved by `lookup` (tests, fixed mappings).
    pub fn with_lookup(
        timeout: std::time::Duration,
        policy: Policy,
        lookup: Arc<dyn Lookup>,
    ) -> Self {
        HttpWebhooks {
            client: outbound::client_builder(policy, lookup)
                .timeout(timeout)
                .user_agent(concat!("Beacon-Alerts/", env!("CARGO_PKG_VERSION")))
                .build()
                .expect("an HTTP client builds"),
            policy,
        }
    }
}

impl WebhookSender for HttpWebhooks {
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<u16, String> {
        // Stored URLs are checked again: they may predate the checks, and an address
        // literal is connected to without any lookup.
        let checked =
            outbound::check_url(url, self.policy).map_err(|e| format!("POST refused: {e}"))?;
        let shown = checked.to_string();
        let mut request = self
            .client
            .post(checked)
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| match outbound::refusal(&e) {
                Some(refused) => format!("POST {shown} refused: {refused}"),
                None => format!("POST {shown}: {}", with_causes(&e)),
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err(format!("POST {shown}: the receiver answered {status}"))
        }
    }
}

/// An error and its causes, `: `-separated (reqwest's own message names no cause).
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
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
    ) -> Result<u16, String> {
        if self.failing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(format!("POST {url}: failing on purpose"));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::StaticLookup;
    use std::net::IpAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A TCP listener on loopback that counts the connections made to it (and closes
    /// them at once): whether anything was sent at all.
    async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        (port, count)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[tokio::test]
    async fn a_name_that_turns_private_after_it_was_checked_is_refused_on_connect() {
        let (port, connections) = counting_listener().await;
        let lookup = Arc::new(StaticLookup::default());
        let url = format!("https://hooks.rebind.example:{port}/beacon");
        // Set while the name resolves to a public address: accepted.
        lookup.set("hooks.rebind.example", &[ip("93.184.215.14")]);
        let checked = outbound::validate(&url, Policy::PUBLIC_ONLY, lookup.as_ref())
            .await
            .unwrap();
        assert_eq!(checked.unresolved, None);
        // Then it points at this machine (where the listener is), or the metadata service.
        let webhooks =
            HttpWebhooks::with_lookup(Duration::from_secs(2), Policy::PUBLIC_ONLY, lookup.clone());
        for inside in ["127.0.0.1", "169.254.169.254"] {
            lookup.set("hooks.rebind.example", &[ip(inside)]);
            let e = webhooks
                .post(checked.url.as_str(), &[], b"{}".to_vec())
                .await
                .unwrap_err();
            assert!(
                e.contains(&format!(
                    "refused: hooks.rebind.example resolves to {inside}"
                )),
                "{e}"
            );
        }
        assert_eq!(connections.load(Ordering::SeqCst), 0, "nothing was sent");
        // The same path with loopback allowed does connect there: the count above would
        // have seen a connection.
        lookup.set("hooks.rebind.example", &[ip("127.0.0.1")]);
        let local = HttpWebhooks::with_lookup(
            Duration::from_secs(2),
            Policy::LOCAL_DEVELOPMENT,
            lookup.clone(),
        );
        let e = local
            .post(checked.url.as_str(), &[], b"{}".to_vec())
            .await
            .unwrap_err();
        assert!(!e.contains("refused"), "{e}");
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn stored_urls_are_checked_again_before_each_request() {
        let (port, connections) = counting_listener().await;
        let webhooks = HttpWebhooks::with_lookup(
            Duration::from_secs(2),
            Policy::PUBLIC_ONLY,
            Arc::new(StaticLookup::default()),
        );
        for (url, says) in [
            (format!("http://127.0.0.1:{port}/hook"), "must use https"),
            (
                format!("https://127.0.0.1:{port}/hook"),
                "a loopback address",
            ),
            (
                format!("https://2130706433:{port}/hook"),
                "goes to 127.0.0.1",
            ),
            (
                format!("https://[::ffff:127.0.0.1]:{port}/hook"),
                "a loopback address",
            ),
            (
                format!("https://localhost:{port}/hook"),
                "this machine (localhost)",
            ),
            (
                "https://169.254.169.254/latest/meta-data/".into(),
                "the cloud instance metadata service",
            ),
            (
                format!("https://u:p@127.0.0.1:{port}/"),
                "carries credentials",
            ),
        ] {
            let e = webhooks.post(&url, &[], b"{}".to_vec()).await.unwrap_err();
            assert!(e.starts_with("POST refused: `"), "{url}: {e}");
            assert!(e.contains(says), "{url}: {e}");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 0, "nothing was sent");
    }
}
