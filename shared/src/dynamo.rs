//! What every DynamoDB adapter of the project does the same way.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

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
