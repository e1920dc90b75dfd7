//! Where alert rules, their states, budgets and destinations live, and how notices go
//! out. The alerts table holds one partition per tenant (`T#{tenant}`), so one Query
//! reads everything an evaluation needs: `rule#{id}`, `state#{id}`, `budget`,
//! `budget-state` and `notify`, each a JSON `body` with a version `v` that state writes
//! are conditional on.

use crate::alert::{Budget, BudgetState, Destinations, Rule, State};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;

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

crate::message_error!(
    /// Why a webhook notice was not delivered (refused by the outbound policy, the
    /// request failed, or the receiver answered other than 2xx).
    WebhookError
);

/// Where webhook notices are POSTed.
pub trait WebhookSender: Send + Sync {
    /// POSTs `body` with `headers`; Ok with the status when the receiver answered 2xx.
    fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> impl Future<Output = Result<u16, WebhookError>> + Send;
}
