//! Where alert rules, their states, budgets and destinations live, and how notices go
//! out. The alerts table holds one partition per tenant (`T#{tenant}`), so one Query
//! reads everything an evaluation needs: `rule#{id}`, `state#{id}`, `budget`,
//! `budget-state` and `notify`, each a JSON `body` with a version `v` that state writes
//! are conditional on.

use crate::alert::{Budget, BudgetState, Destinations, Rule, State};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;
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
/// hold up every other tenant's alerts.
#[derive(Debug, Clone)]
pub struct HttpWebhooks {
    client: reqwest::Client,
}

impl HttpWebhooks {
    pub fn new(timeout: std::time::Duration) -> Self {
        HttpWebhooks {
            client: reqwest::Client::builder()
                .timeout(timeout)
                .user_agent(concat!("Beacon-Alerts/", env!("CARGO_PKG_VERSION")))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client builds"),
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
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = response.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err(format!("POST {url}: the receiver answered {status}"))
        }
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
