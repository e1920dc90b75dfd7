//! The lake's scheduled compaction: every closed hour with staging pieces becomes one
//! curated Parquet object, duplicates dropped, pieces deleted after (the order that
//! keeps Athena from seeing a row twice or missing one: `beacon_lake`).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use beacon_domain::config::{ConfigError, Env};
use beacon_domain::metrics;
use beacon_lake::store::S3Lake;
use beacon_lake::{compact_closed, LakeStore};
use chrono::{Duration, Utc};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::{json, Value};

pub struct CompactApp<L> {
    pub lake: L,
    /// How long after its end an hour counts as closed.
    pub grace: Duration,
}

impl CompactApp<S3Lake> {
    /// Reads `BEACON_LAKE_BUCKET` and `BEACON_LAKE_GRACE_MINUTES` (default 15).
    pub fn from_env(env: &Env, aws: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        Ok(CompactApp {
            lake: S3Lake::from_config(aws, env.required("BEACON_LAKE_BUCKET")?),
            grace: Duration::minutes(env.parse_or("BEACON_LAKE_GRACE_MINUTES", 15i64)?.max(0)),
        })
    }
}

/// Compacts as of the schedule's time (the event's `time`; now without one), so a
/// delayed or replayed invocation does what the scheduled one would have.
pub async fn handle<L: LakeStore>(
    app: &CompactApp<L>,
    event: LambdaEvent<EventBridgeEvent<Value>>,
) -> Result<Value, Error> {
    let now = event.payload.time.unwrap_or_else(Utc::now);
    let done = compact_closed(&app.lake, now, app.grace).await?;
    let hours: Vec<Value> = done
        .iter()
        .map(|c| {
            tracing::info!(
                partition = %c.partition.path(),
                pieces = c.pieces,
                rows = c.rows,
                duplicates = c.duplicates,
                bytes = c.bytes,
                "hour compacted"
            );
            json!({"partition": c.partition.path(), "pieces": c.pieces, "existing": c.existing,
                   "added": c.added, "duplicates": c.duplicates, "rows": c.rows, "bytes": c.bytes})
        })
        .collect();
    let pieces: usize = done.iter().map(|c| c.pieces).sum();
    let duplicates: usize = done.iter().map(|c| c.duplicates).sum();
    metrics::count("PiecesCompacted", pieces as u64, &[]);
    metrics::count("LakeDuplicatesDropped", duplicates as u64, &[]);
    Ok(
        json!({"as_of": now.to_rfc3339(), "hours": hours, "pieces": pieces, "duplicates": duplicates}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_domain::{Event, EventType};
    use beacon_lake::testkit::MemoryLake;
    use beacon_lake::{write_parquet, LakeStore, PutIf, STAGING_PREFIX};

    fn scheduled(time: &str) -> LambdaEvent<EventBridgeEvent<Value>> {
        let payload = serde_json::from_value(json!({
            "version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": time, "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/beacon-compact"], "detail": {}
        }))
        .unwrap();
        LambdaEvent::new(payload, Default::default())
    }

    #[tokio::test]
    async fn only_closed_hours_are_compacted() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:20:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let e = Event::new("a".into(), "acme".into(), EventType::Sent, t, t);
        let app = CompactApp {
            lake: MemoryLake::default(),
            grace: Duration::minutes(15),
        };
        let piece = "staging/events/dt=2026-11-23/hour=10/s_1_1.parquet";
        app.lake
            .put(piece, write_parquet(&[e]).unwrap(), PutIf::Always)
            .await
            .unwrap();
        let early = handle(&app, scheduled("2026-11-23T11:10:00Z"))
            .await
            .unwrap();
        assert_eq!(early["hours"], json!([]));
        let answer = handle(&app, scheduled("2026-11-23T11:15:00Z"))
            .await
            .unwrap();
        assert_eq!(answer["hours"][0]["partition"], "dt=2026-11-23/hour=10");
        assert_eq!(answer["hours"][0]["rows"], 1);
        assert!(app.lake.list(STAGING_PREFIX).await.unwrap().is_empty());
        assert_eq!(
            app.lake.keys(),
            ["curated/events/dt=2026-11-23/hour=10/events.parquet"]
        );
    }
}
