//! Segment snapshots in the rollups table
//! ([`beacon_domain::audience::segments::SegmentSnapshots`]): item `G#{tenant}` /
//! `segments`, written conditional on the version read.

use crate::dynamo::audience::DynamoAudience;
use aws_sdk_dynamodb::types::AttributeValue;
use beacon_domain::audience::reader::AudienceError;
use beacon_domain::audience::segments::{SegmentSnapshots, SnapshotState};
use beacon_domain::rollup::keys::{segments_partition, SEGMENTS_SORT_KEY};

fn unavailable<E: std::error::Error + 'static>(what: &'static str) -> impl Fn(E) -> AudienceError {
    move |e| {
        AudienceError(format!(
            "{what}: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(&e)
        ))
    }
}

impl SegmentSnapshots for DynamoAudience {
    async fn segment_snapshot(
        &self,
        tenant: &str,
        consistent: bool,
    ) -> Result<(SnapshotState, i64), AudienceError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(segments_partition(tenant)))
            .key("sk", AttributeValue::S(SEGMENTS_SORT_KEY.into()))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(unavailable("reading the segment snapshot"))?;
        let Some(item) = out.item else {
            return Ok((SnapshotState::default(), 0));
        };
        let version = item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let state = match item.get("state").and_then(|v| v.as_s().ok()) {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| AudienceError(format!("reading the segment snapshot: {e}")))?,
            None => SnapshotState::default(),
        };
        Ok((state, version))
    }

    async fn store_segment_snapshot(
        &self,
        tenant: &str,
        state: &SnapshotState,
        version: i64,
    ) -> Result<bool, AudienceError> {
        let json = serde_json::to_string(state).expect("a snapshot serializes");
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(segments_partition(tenant)))
            .key("sk", AttributeValue::S(SEGMENTS_SORT_KEY.into()))
            .update_expression("SET #state = :state, #version = :next")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":state", AttributeValue::S(json))
            .expression_attribute_values(":next", AttributeValue::N((version + 1).to_string()));
        match crate::dynamo::only_at_version(update, "version", version)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable("storing the segment snapshot")(e)),
        }
    }
}
