//! The Kinesis consumer: folds each batch into the rollups exactly once (see
//! `beacon_domain::rollup::aggregate` for how) and reports partial batch failures, so Lambda
//! resumes from the first record not yet applied. After each batch, one write per
//! tenant keeps the dashboard's live view (`beacon_domain::dashboard::live`).

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use beacon_aws::dynamo::live::DynamoLive;
use beacon_aws::dynamo::rollups::DynamoRollupStore;
use beacon_aws::kinesis::resume_from;
use beacon_aws::sqs::SqsDeadLetters;
use beacon_domain::config::{ConfigError, Env};
use beacon_domain::dashboard::live::{minute_of, slot_of, LiveStore};
use beacon_domain::event::stream::DeadLetterSink;
use beacon_domain::metrics;
use beacon_domain::rollup::aggregate::{apply_batch, RollupStore, Settings};
use lambda_runtime::{Error, LambdaEvent};

pub struct AggregateApp<S, D, V> {
    pub store: S,
    pub dead_letters: D,
    /// The dashboard's live view: one write per tenant per batch, after it.
    pub live: V,
    pub settings: Settings,
}

impl AggregateApp<DynamoRollupStore, SqsDeadLetters, DynamoLive> {
    /// Reads `BEACON_ROLLUPS_TABLE`, `BEACON_DEAD_LETTER_QUEUE_URL` and
    /// `BEACON_DEDUPE_WINDOW_DAYS` (default 1: duplicates within 24-48 h are caught).
    pub fn from_env(env: &Env, aws: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let defaults = Settings::default();
        let dynamodb = aws_sdk_dynamodb::Client::new(aws);
        let table = env.required("BEACON_ROLLUPS_TABLE")?;
        Ok(AggregateApp {
            store: DynamoRollupStore::new(dynamodb.clone(), table.clone()),
            live: DynamoLive::new(dynamodb, table),
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

pub async fn handle<S: RollupStore, D: DeadLetterSink, V: LiveStore>(
    app: &AggregateApp<S, D, V>,
    event: LambdaEvent<KinesisEvent>,
) -> Result<KinesisEventResponse, Error> {
    let records = beacon_aws::kinesis::stream_records(&event.payload);
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
            if !outcome.live.is_empty() {
                // The live view is a convenience: a failure here is logged, never retried
                // (the batch is applied; the rollups have it).
                let first = records.first().map_or("", |r| r.sequence.as_str());
                let minute = minute_of(chrono::Utc::now());
                if let Err(e) = app.live.record(&outcome.live, minute, slot_of(first)).await {
                    tracing::warn!(error = %e, "the live view was not updated");
                    metrics::count("LiveViewFailures", 1, &[]);
                }
            }
        }
        Err(err) => {
            tracing::error!(error = %err, "batch stopped; Lambda will redeliver from the first unapplied record");
            response = resume_from(&err.first_unapplied);
        }
    }
    Ok(response)
}
