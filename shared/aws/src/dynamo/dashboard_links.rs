//! Dashboard links in the rollups table
//! ([`beacon_domain::dashboard::access::LinkStore`]): one item per link in the tenant's
//! access partition (`beacon_domain::rollup::access_partition`), so listing a tenant's
//! links is one Query and checking one is one GetItem.

use crate::dynamo::{query_partition, string_attribute, Item};
use aws_sdk_dynamodb::types::AttributeValue;
use beacon_domain::dashboard::access::{Link, LinkRecord, LinkStore, LinkStoreError};
use beacon_domain::rollup::{access_partition, dashboard_link_sort_key, DASHBOARD_LINK_PREFIX};

#[derive(Debug, Clone)]
pub struct DynamoDashboardLinks {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDashboardLinks {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDashboardLinks {
            client,
            table: table.into(),
        }
    }
}

fn unavailable<E: std::error::Error + 'static, R: std::fmt::Debug>(
    e: aws_sdk_dynamodb::error::SdkError<E, R>,
) -> LinkStoreError {
    LinkStoreError(format!(
        "dashboard links: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(&e)
    ))
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn to_record(tenant: &str, item: &Item) -> Option<LinkRecord> {
    let text = |name: &str| string_attribute(item, name);
    let id = text("sk")?.strip_prefix(DASHBOARD_LINK_PREFIX)?.to_string();
    Some(LinkRecord {
        link: Link {
            id,
            tenant: tenant.to_string(),
            campaign: text("campaign"),
            expires_at: item.get("expires_at")?.as_n().ok()?.parse().ok()?,
        },
        created_at: text("created_at").unwrap_or_default(),
        note: text("note"),
        revoked_at: text("revoked_at"),
    })
}

impl LinkStore for DynamoDashboardLinks {
    async fn record(&self, r: &LinkRecord) -> Result<(), LinkStoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(access_partition(&r.link.tenant)))
            .item("sk", s(dashboard_link_sort_key(&r.link.id)))
            .item(
                "expires_at",
                AttributeValue::N(r.link.expires_at.to_string()),
            )
            .item("created_at", s(&r.created_at))
            // A fresh id is never overwritten, whatever the caller did.
            .condition_expression("attribute_not_exists(pk)");
        if let Some(c) = &r.link.campaign {
            put = put.item("campaign", s(c));
        }
        if let Some(n) = &r.note {
            put = put.item("note", s(n));
        }
        put.send().await.map_err(unavailable)?;
        Ok(())
    }

    async fn find(&self, tenant: &str, id: &str) -> Result<Option<LinkRecord>, LinkStoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(access_partition(tenant)))
            .key("sk", s(dashboard_link_sort_key(id)))
            // A revocation takes effect on the next request, not after replication.
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item.as_ref().and_then(|i| to_record(tenant, i)))
    }

    async fn list(&self, tenant: &str) -> Result<Vec<LinkRecord>, LinkStoreError> {
        let items = query_partition(&self.client, &self.table, &access_partition(tenant), true)
            .await
            .map_err(unavailable)?;
        let mut out: Vec<LinkRecord> = items.iter().filter_map(|i| to_record(tenant, i)).collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        Ok(out)
    }

    async fn revoke(&self, tenant: &str, id: &str, at: &str) -> Result<bool, LinkStoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(access_partition(tenant)))
            .key("sk", s(dashboard_link_sort_key(id)))
            .update_expression("SET revoked_at = if_not_exists(revoked_at, :at)")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", s(at))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}
