//! DynamoDB: the stores behind the domain's ports, one file each, and what every one of
//! them does the same way (deleting, conditional writes, batch reads, paging a
//! partition, telling a permanent error from a passing one).
//!
//! All but API keys and alerts live in one table, the rollups table; its layout is
//! documented once, in `beacon_domain::rollup`.

pub mod alerts;
pub mod apikeys;
pub mod audience;
pub mod dashboard_links;
pub mod live;
pub mod providers;
pub mod rollup_reader;
pub mod rollups;
pub mod segments;
pub mod trails;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::query::QueryError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValue};
use beacon_domain::rollup::aggregate::RollupStoreError;
use std::collections::HashMap;

/// Deletes the item `pk`/`sk` of `table`; whether there was one.
pub async fn delete_existing(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: String,
    sk: &str,
) -> Result<bool, SdkError<DeleteItemError>> {
    let out = client
        .delete_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk))
        .key("sk", AttributeValue::S(sk.to_string()))
        .return_values(ReturnValue::AllOld)
        .send()
        .await?;
    Ok(out.attributes.is_some_and(|a| !a.is_empty()))
}

/// One item as the SDK gives it.
pub type Item = HashMap<String, AttributeValue>;

/// Makes `update` apply only while `attribute` still holds `version`, 0 meaning it was
/// never written: the optimistic lock of every versioned item of the project.
pub fn only_at_version(
    update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    attribute: &str,
    version: i64,
) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
    let update = update.expression_attribute_names("#version", attribute);
    if version == 0 {
        update.condition_expression("attribute_not_exists(#version)")
    } else {
        update
            .condition_expression("#version = :version")
            .expression_attribute_values(":version", AttributeValue::N(version.to_string()))
    }
}

/// BatchGetItem of up to 100 keys of `table`, asking again for the unprocessed ones.
pub async fn batch_get(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<Item>,
    consistent: bool,
) -> Result<Vec<Item>, SdkError<BatchGetItemError>> {
    let request = KeysAndAttributes::builder()
        .set_keys(Some(keys))
        .consistent_read(consistent)
        .build()
        .expect("keys are set");
    batch_get_request(client, table, request).await
}

/// [`batch_get`] of a prepared request (keys with a projection, say).
pub async fn batch_get_request(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    request: KeysAndAttributes,
) -> Result<Vec<Item>, SdkError<BatchGetItemError>> {
    let mut items = Vec::new();
    let mut request = Some(request);
    while let Some(keys) = request.take() {
        let out = client
            .batch_get_item()
            .request_items(table, keys)
            .send()
            .await?;
        items.extend(
            out.responses
                .unwrap_or_default()
                .remove(table)
                .unwrap_or_default(),
        );
        request = out.unprocessed_keys.and_then(|mut u| u.remove(table));
    }
    Ok(items)
}

/// Every item of partition `pk` (sort key `sk`), following `LastEvaluatedKey`.
pub async fn query_partition(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
    consistent: bool,
) -> Result<Vec<Item>, SdkError<QueryError>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_string()))
            .consistent_read(consistent)
            .set_exclusive_start_key(start.take())
            .send()
            .await?;
        items.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(items),
        }
    }
}

/// Whether a DynamoDB error can never succeed however often it is retried: the request
/// itself is refused (an item or expression over a limit, a malformed value), as opposed
/// to throttling, conflicts, timeouts and server errors, which pass. A transaction is
/// refused as a whole when one of its actions is; DynamoDB names that action's reason
/// (`ValidationError`), moto raises the action's own `ValidationException`.
pub fn is_permanent<E, R>(e: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    let SdkError::ServiceError(service) = e else {
        // Building the request failed: nothing about sending it again will change that.
        return matches!(e, SdkError::ConstructionFailure(_));
    };
    permanent_code(service.err().code())
}

/// The error codes (of a request, or of one action of a cancelled transaction) that mean
/// "refused as sent".
pub fn permanent_code(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ValidationException"
                | "ValidationError"
                | "ItemCollectionSizeLimitExceededException"
                | "ItemCollectionSizeLimitExceeded"
                | "SerializationException"
        )
    )
}

/// A String attribute of a DynamoDB item, if it is one.
pub fn string_attribute(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
    name: &str,
) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

/// A DynamoDB error while doing `what`, as the rollup store reports it: permanent or
/// not by [`is_permanent`].
pub fn store_error<E, R>(what: &str, e: SdkError<E, R>) -> RollupStoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let permanent = is_permanent(&e);
    let text = format!(
        "{what}: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(&e)
    );
    if permanent {
        RollupStoreError::Permanent(text)
    } else {
        RollupStoreError::Failed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_permanent_and_pressure_is_not() {
        for code in [
            "ValidationException",
            "ValidationError",
            "ItemCollectionSizeLimitExceededException",
        ] {
            assert!(permanent_code(Some(code)), "{code}");
        }
        for code in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "TransactionConflict",
            "TransactionConflictException",
            "InternalServerError",
            "RequestLimitExceeded",
            "ConditionalCheckFailed",
            // A missing table is the deployment's fault, not any record's: never
            // dead-letter a whole stream for it.
            "ResourceNotFoundException",
        ] {
            assert!(!permanent_code(Some(code)), "{code}");
        }
        assert!(!permanent_code(None));
    }
}
