//! The lake's Kinesis consumer: writes each batch's events to the lake's staging area
//! as Parquet, one piece per event hour, under keys derived from the records, so a
//! retried batch overwrites its own pieces (see `beacon_lake`). Poison records
//! go to the dead-letter queue with the reason and are skipped, never retried forever.

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use beacon_aws::kinesis::resume_from;
use beacon_aws::sqs::SqsDeadLetters;
use beacon_domain::config::{ConfigError, Env};
use beacon_domain::event::stream::DeadLetterSink;
use beacon_domain::metrics;
use beacon_lake::store::S3Lake;
use beacon_lake::{stage_batch, LakeStore};
use lambda_runtime::{Error, LambdaEvent};

pub struct EtlApp<L, D> {
    pub lake: L,
    pub dead_letters: D,
}

impl EtlApp<S3Lake, SqsDeadLetters> {
    /// Reads `BEACON_LAKE_BUCKET` and `BEACON_DEAD_LETTER_QUEUE_URL`.
    pub fn from_env(env: &Env, aws: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        Ok(EtlApp {
            lake: S3Lake::from_config(aws, env.required("BEACON_LAKE_BUCKET")?),
            dead_letters: SqsDeadLetters::new(
                aws_sdk_sqs::Client::new(aws),
                env.required("BEACON_DEAD_LETTER_QUEUE_URL")?,
            ),
        })
    }
}

pub async fn handle<L: LakeStore, D: DeadLetterSink>(
    app: &EtlApp<L, D>,
    event: LambdaEvent<KinesisEvent>,
) -> Result<KinesisEventResponse, Error> {
    let records = beacon_aws::kinesis::stream_records(&event.payload);
    let mut response = KinesisEventResponse::default();
    match stage_batch(&app.lake, &app.dead_letters, &records).await {
        Ok(staged) => {
            tracing::info!(
                records = records.len(),
                events = staged.events,
                pieces = staged.pieces,
                bytes = staged.bytes,
                dead_letters = staged.dead_letters,
                "batch staged"
            );
            metrics::count("EventsStaged", staged.events as u64, &[]);
            if staged.dead_letters > 0 {
                metrics::count("DeadLetters", staged.dead_letters as u64, &[]);
            }
        }
        Err(err) => {
            // The pieces' keys depend only on the records, so redelivering the whole
            // batch rewrites what was written and adds nothing twice.
            tracing::error!(error = %err, "batch not staged; Lambda will redeliver it");
            if let Some(first) = records.first() {
                response = resume_from(&first.sequence);
            }
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_domain::testkit::memory::MemoryDeadLetters;
    use beacon_domain::{Event, EventType};
    use beacon_lake::testkit::MemoryLake;
    use beacon_lake::{LakeError, LakeObject, PutIf};

    /// Refuses every write, as S3 would when throttling or down.
    struct Down;

    impl LakeStore for Down {
        async fn get(&self, _: &str) -> Result<Option<(Vec<u8>, String)>, LakeError> {
            Ok(None)
        }
        async fn put(&self, key: &str, _: Vec<u8>, _: PutIf) -> Result<(), LakeError> {
            Err(LakeError::Store(format!("PutObject {key}: SlowDown")))
        }
        async fn list(&self, _: &str) -> Result<Vec<LakeObject>, LakeError> {
            Ok(Vec::new())
        }
        async fn delete(&self, _: &[String]) -> Result<(), LakeError> {
            Ok(())
        }
    }

    fn kinesis_event(payloads: &[Vec<u8>]) -> LambdaEvent<KinesisEvent> {
        let records: Vec<serde_json::Value> = payloads
            .iter()
            .enumerate()
            .map(|(i, data)| {
                use base64::Engine;
                serde_json::json!({
                    "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "acme/m",
                        "sequenceNumber": format!("4965{i:020}"),
                        "data": base64::engine::general_purpose::STANDARD.encode(data),
                        "approximateArrivalTimestamp": 1795428900.0},
                    "eventSource": "aws:kinesis", "eventVersion": "1.0",
                    "eventID": format!("shardId-000000000000:4965{i:020}"),
                    "eventName": "aws:kinesis:record", "awsRegion": "us-east-1",
                    "invokeIdentityArn": "arn:aws:iam::123456789012:role/etl",
                    "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/beacon-events"
                })
            })
            .collect();
        let payload = serde_json::from_value(serde_json::json!({ "Records": records })).unwrap();
        LambdaEvent::new(payload, Default::default())
    }

    fn sent(id: &str) -> Vec<u8> {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        beacon_domain::tracking::sink::encode_record(&Event::new(
            id.into(),
            "acme".into(),
            EventType::Sent,
            t,
            t,
        ))
    }

    #[tokio::test]
    async fn a_batch_lands_in_staging_and_poison_is_set_aside() {
        let app = EtlApp {
            lake: MemoryLake::default(),
            dead_letters: MemoryDeadLetters::default(),
        };
        let batch = [sent("a"), b"garbage".to_vec(), sent("b")];
        let answer = handle(&app, kinesis_event(&batch)).await.unwrap();
        assert!(answer.batch_item_failures.is_empty());
        assert_eq!(
            app.lake.keys(),
            ["staging/events/dt=2026-11-23/hour=10/beacon-events_shardId-000000000000_496500000000000000000000_496500000000000000000002.parquet"]
        );
        let letters = app.dead_letters.letters.lock().unwrap().clone();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].sequence, "496500000000000000000001");
        // Redelivered: the same key, nothing added.
        handle(&app, kinesis_event(&batch)).await.unwrap();
        assert_eq!(app.lake.keys().len(), 1);
    }

    #[tokio::test]
    async fn a_store_failure_asks_for_the_whole_batch_again() {
        let app = EtlApp {
            lake: Down,
            dead_letters: MemoryDeadLetters::default(),
        };
        let answer = handle(&app, kinesis_event(&[sent("a"), sent("b")]))
            .await
            .unwrap();
        let failed: Vec<_> = answer
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone().unwrap())
            .collect();
        assert_eq!(failed, ["496500000000000000000000"]);
    }
}
