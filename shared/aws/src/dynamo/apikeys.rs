//! API keys in DynamoDB ([`beacon_domain::apikey::ApiKeyStore`]): one item per key, partition
//! key `key_hash`.

use aws_sdk_dynamodb::types::AttributeValue;
use beacon_domain::apikey::{ApiKeyRecord, ApiKeyStore, ApiKeyStoreError};

/// The DynamoDB adapter: one item per key, partition key `key_hash`.
#[derive(Debug, Clone)]
pub struct DynamoApiKeys {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoApiKeys {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoApiKeys {
            client,
            table: table.into(),
        }
    }
}

impl ApiKeyStore for DynamoApiKeys {
    async fn find(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, ApiKeyStoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("key_hash", AttributeValue::S(key_hash.to_string()))
            .consistent_read(false)
            .send()
            .await
            .map_err(|e| {
                ApiKeyStoreError::Unavailable(
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
                )
            })?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let text = |name: &str| crate::dynamo::string_attribute(&item, name);
        Ok(Some(ApiKeyRecord {
            key_hash: key_hash.to_string(),
            tenant_id: text("tenant_id")
                .ok_or_else(|| ApiKeyStoreError::Corrupt(key_hash.to_string()))?,
            name: text("name").unwrap_or_default(),
            created_at: text("created_at").unwrap_or_default(),
            revoked: item
                .get("revoked")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
        }))
    }

    async fn save(&self, record: &ApiKeyRecord) -> Result<(), ApiKeyStoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("key_hash", AttributeValue::S(record.key_hash.clone()))
            .item("tenant_id", AttributeValue::S(record.tenant_id.clone()))
            .item("name", AttributeValue::S(record.name.clone()))
            .item("created_at", AttributeValue::S(record.created_at.clone()))
            .item("revoked", AttributeValue::Bool(record.revoked))
            .send()
            .await
            .map_err(|e| {
                ApiKeyStoreError::Unavailable(
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
                )
            })?;
        Ok(())
    }
}
