//! Provider credentials, SES configuration sets and used webhook tokens in DynamoDB
//! ([`beacon_domain::ingest::credentials::ProviderStore`]), one table with partition key
//! `id`:
//!
//! | `id`                                   | holds                                          |
//! |----------------------------------------|------------------------------------------------|
//! | `credential#<tenant>#<provider>`       | the sealed credential (never the plain one)    |
//! | `ses-configuration-set#<name>`         | the tenant whose events the set publishes      |
//! | `token#<tenant>#<provider>#<token>`    | a used token, until `expires_at` (the TTL)     |

use aws_sdk_dynamodb::types::AttributeValue;
use beacon_domain::ingest::credentials::{ProviderStore, ProviderStoreError, StoredCredential};
use beacon_domain::ingest::Provider;

const CREDENTIAL: &str = "credential#";
const CONFIGURATION_SET: &str = "ses-configuration-set#";
const TOKEN: &str = "token#";

#[derive(Debug, Clone)]
pub struct DynamoProviders {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoProviders {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoProviders {
            client,
            table: table.into(),
        }
    }
}

fn unavailable<E: std::error::Error + 'static, R: std::fmt::Debug>(
    e: aws_sdk_dynamodb::error::SdkError<E, R>,
) -> ProviderStoreError {
    ProviderStoreError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())
}

fn credential_id(tenant: &str, provider: Provider) -> String {
    format!("{CREDENTIAL}{tenant}#{provider}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn to_credential(item: &crate::dynamo::Item) -> Result<StoredCredential, ProviderStoreError> {
    let text = |name: &str| crate::dynamo::string_attribute(item, name);
    let id = text("id").unwrap_or_default();
    let corrupt = || ProviderStoreError::Corrupt(id.clone());
    let provider = text("provider")
        .as_deref()
        .and_then(Provider::parse)
        .ok_or_else(corrupt)?;
    Ok(StoredCredential {
        tenant_id: text("tenant_id").ok_or_else(corrupt)?,
        provider,
        sealed: text("sealed").ok_or_else(corrupt)?,
        previous_sealed: text("previous_sealed"),
        previous_until: item
            .get("previous_until")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok()),
        fingerprint: text("fingerprint").unwrap_or_default(),
        created_at: text("created_at").unwrap_or_default(),
        rotated_at: text("rotated_at"),
    })
}

impl DynamoProviders {
    async fn scan_prefix(
        &self,
        prefix: &str,
    ) -> Result<Vec<crate::dynamo::Item>, ProviderStoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(id, :prefix)")
                .expression_attribute_values(":prefix", s(prefix))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    async fn remove(&self, id: String) -> Result<bool, ProviderStoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("id", s(id))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}

impl ProviderStore for DynamoProviders {
    async fn credential(
        &self,
        tenant: &str,
        provider: Provider,
    ) -> Result<Option<StoredCredential>, ProviderStoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(credential_id(tenant, provider)))
            .send()
            .await
            .map_err(unavailable)?;
        out.item.as_ref().map(to_credential).transpose()
    }

    async fn put_credential(&self, c: &StoredCredential) -> Result<(), ProviderStoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("id", s(credential_id(&c.tenant_id, c.provider)))
            .item("tenant_id", s(&c.tenant_id))
            .item("provider", s(c.provider.as_str()))
            .item("sealed", s(&c.sealed))
            .item("fingerprint", s(&c.fingerprint))
            .item("created_at", s(&c.created_at));
        if let (Some(previous), Some(until)) = (&c.previous_sealed, c.previous_until) {
            put = put
                .item("previous_sealed", s(previous))
                .item("previous_until", AttributeValue::N(until.to_string()));
        }
        if let Some(rotated) = &c.rotated_at {
            put = put.item("rotated_at", s(rotated));
        }
        put.send().await.map_err(unavailable)?;
        Ok(())
    }

    async fn remove_credential(
        &self,
        tenant: &str,
        provider: Provider,
    ) -> Result<bool, ProviderStoreError> {
        self.remove(credential_id(tenant, provider)).await
    }

    async fn credentials(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<StoredCredential>, ProviderStoreError> {
        let prefix = match tenant {
            Some(t) => format!("{CREDENTIAL}{t}#"),
            None => CREDENTIAL.to_string(),
        };
        let mut out = self
            .scan_prefix(&prefix)
            .await?
            .iter()
            .map(to_credential)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| (&a.tenant_id, a.provider).cmp(&(&b.tenant_id, b.provider)));
        Ok(out)
    }

    async fn configuration_set_tenant(
        &self,
        configuration_set: &str,
    ) -> Result<Option<String>, ProviderStoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(format!("{CONFIGURATION_SET}{configuration_set}")))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out
            .item
            .and_then(|item| crate::dynamo::string_attribute(&item, "tenant_id")))
    }

    async fn put_configuration_set(
        &self,
        configuration_set: &str,
        tenant: &str,
    ) -> Result<(), ProviderStoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("id", s(format!("{CONFIGURATION_SET}{configuration_set}")))
            .item("configuration_set", s(configuration_set))
            .item("tenant_id", s(tenant))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn remove_configuration_set(
        &self,
        configuration_set: &str,
    ) -> Result<bool, ProviderStoreError> {
        self.remove(format!("{CONFIGURATION_SET}{configuration_set}"))
            .await
    }

    async fn configuration_sets(&self) -> Result<Vec<(String, String)>, ProviderStoreError> {
        let mut out: Vec<(String, String)> = self
            .scan_prefix(CONFIGURATION_SET)
            .await?
            .iter()
            .filter_map(|item| {
                Some((
                    crate::dynamo::string_attribute(item, "configuration_set")?,
                    crate::dynamo::string_attribute(item, "tenant_id")?,
                ))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    async fn first_use(
        &self,
        tenant: &str,
        provider: Provider,
        token: &str,
        expires_at: i64,
    ) -> Result<bool, ProviderStoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("id", s(format!("{TOKEN}{tenant}#{provider}#{token}")))
            .item("expires_at", AttributeValue::N(expires_at.to_string()))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await;
        match put {
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

    async fn forget_use(
        &self,
        tenant: &str,
        provider: Provider,
        token: &str,
    ) -> Result<(), ProviderStoreError> {
        self.remove(format!("{TOKEN}{tenant}#{provider}#{token}"))
            .await
            .map(|_| ())
    }
}
