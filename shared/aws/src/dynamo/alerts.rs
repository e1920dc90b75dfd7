//! Alert rules, states, budgets and destinations in DynamoDB
//! ([`beacon_domain::alert::store::AlertStore`]): one partition per tenant, each item a JSON
//! `body` with a version `v` that writes are conditional on.

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use beacon_domain::alert::store::{partition, AlertStore, AlertStoreError, StoredItem};

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
