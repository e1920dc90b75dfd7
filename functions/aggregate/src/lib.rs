//! The Kinesis consumer: folds each batch into the rollups exactly once (see
//! `beacon_shared::aggregate` for how) and reports partial batch failures, so Lambda
//! resumes from the first record not yet applied.

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use beacon_shared::aggregate::{apply_batch, DeadLetterSink, RollupStore, Settings, StreamRecord};
use beacon_shared::config::{ConfigError, Env};
use beacon_shared::deadletter::SqsDeadLetters;
use beacon_shared::metrics;
use beacon_shared::rollup_store::DynamoRollupStore;
use lambda_runtime::{Error, LambdaEvent};

pub struct Aggregator<S, D> {
    pub store: S,
    pub dead_letters: D,
    pub settings: Settings,
}

impl Aggregator<DynamoRollupStore, SqsDeadLetters> {
    /// Reads `BEACON_ROLLUPS_TABLE`, `BEACON_DEAD_LETTER_QUEUE_URL` and
    /// `BEACON_DEDUPE_WINDOW_DAYS` (default 1: duplicates within 24-48 h are caught).
    pub fn from_env(env: &Env, aws: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let defaults = Settings::default();
        Ok(Aggregator {
            store: DynamoRollupStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                env.required("BEACON_ROLLUPS_TABLE")?,
            ),
            dead_letters: SqsDeadLetters::new(
                aws_sdk_sqs::Client::new(aws),
                env.required("BEACON_DEAD_LETTER_QUEUE_URL")?,
            ),
            settings: Settings {
                window_days: env
                    .parse_or("BEACON_DEDUPE_WINDOW_DAYS", defaults.window_days)?
                    .max(1),
                dedupe_buckets: env
                    .parse_or("BEACON_DEDUPE_BUCKETS", defaults.dedupe_buckets)?
                    .max(1),
            },
        })
    }
}

/// `stream/shard` from a record's event source ARN and event id (`shardId-...:seq`).
fn shard_of(arn: Option<&str>, event_id: Option<&str>) -> String {
    let stream = arn
        .and_then(|a| a.rsplit_once("stream/"))
        .map_or("stream", |(_, s)| s);
    let shard = event_id
        .and_then(|id| id.split(':').next())
        .unwrap_or("shard");
    format!("{stream}/{shard}")
}

pub async fn handle<S: RollupStore, D: DeadLetterSink>(
    app: &Aggregator<S, D>,
    event: LambdaEvent<KinesisEvent>,
) -> Result<KinesisEventResponse, Error> {
    let records: Vec<StreamRecord> = event
        .payload
        .records
        .iter()
        .map(|r| StreamRecord {
            shard: shard_of(r.event_source_arn.as_deref(), r.event_id.as_deref()),
            sequence: r.kinesis.sequence_number.clone(),
            data: r.kinesis.data.0.clone(),
        })
        .collect();
    let mut response = KinesisEventResponse::default();
    match apply_batch(&app.store, &app.dead_letters, &app.settings, &records).await {
        Ok(outcome) => {
            tracing::info!(
                records = records.len(),
                applied = outcome.applied,
                duplicates = outcome.duplicates,
                already_applied = outcome.already_applied,
                dead_letters = outcome.dead_letters,
                runs = outcome.runs,
                "batch applied"
            );
            metrics::count("EventsAggregated", outcome.applied as u64, &[]);
            metrics::count(
                "DuplicatesDropped",
                (outcome.duplicates + outcome.already_applied) as u64,
                &[],
            );
            if outcome.dead_letters > 0 {
                metrics::count("DeadLetters", outcome.dead_letters as u64, &[]);
            }
        }
        Err(err) => {
            tracing::error!(error = %err, "batch stopped; Lambda will redeliver from the first unapplied record");
            let mut failure = KinesisBatchItemFailure::default();
            failure.item_identifier = Some(err.first_unapplied.clone());
            response.batch_item_failures.push(failure);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    #[test]
    fn shard_names_come_from_the_record() {
        let s = super::shard_of(
            Some("arn:aws:kinesis:us-east-1:123456789012:stream/beacon-events"),
            Some("shardId-000000000003:4954"),
        );
        assert_eq!(s, "beacon-events/shardId-000000000003");
    }
}
