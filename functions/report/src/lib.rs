//! The report function. Two kinds of invocation:
//! - the hourly EventBridge schedule (`detail-type: Scheduled Event`): every definition
//!   whose period has just closed is rendered and sent, at most once per period
//!   (`beacon_report::run`);
//! - on demand, `{"tenant": "acme", "report": "weekly", "period": "2026-W47"}` (period
//!   optional: the one just closed) or `{"tenant": "acme", "definition": {...}}` with a
//!   whole definition: rendered and sent at once.

use beacon_aws::dynamo::rollup_reader::DynamoRollupReader;
use beacon_aws::ses::SesMailer;
use beacon_domain::config::{ConfigError, Env};
use beacon_domain::mail::Mailer;
use beacon_domain::metrics;
use beacon_domain::rollup::reader::RollupReader;
use beacon_report::definition::{DefinitionInput, ReportDefinition};
use beacon_report::period::Period;
use beacon_report::run::{Outcome, Reporter, RunResult, Settings};
use beacon_report::store::{Definitions, DynamoReports, ReportFiles, Runs, S3ReportFiles};
use chrono::{DateTime, Utc};
use lambda_runtime::{Error, LambdaEvent};
use serde::Deserialize;
use serde_json::{json, Value};

/// Everything the function holds between invocations.
pub struct ReportApp<R, D, F, M> {
    pub reader: R,
    pub reports: D,
    pub files: F,
    pub mailer: M,
    pub settings: Settings,
}

impl ReportApp<DynamoRollupReader, DynamoReports, S3ReportFiles, SesMailer> {
    /// Reads `BEACON_ROLLUPS_TABLE`, `BEACON_REPORTS_TABLE`, `BEACON_REPORTS_BUCKET`,
    /// `BEACON_REPORTS_FROM` and `BEACON_REPORTS_ATTACHMENT_LIMIT` (bytes, default 5 MiB).
    pub fn from_env(env: &Env, aws: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let dynamo = aws_sdk_dynamodb::Client::new(aws);
        let defaults = Settings::default();
        Ok(ReportApp {
            reader: DynamoRollupReader::new(dynamo.clone(), env.required("BEACON_ROLLUPS_TABLE")?),
            reports: DynamoReports::new(dynamo, env.required("BEACON_REPORTS_TABLE")?),
            files: S3ReportFiles::new(
                beacon_aws::s3::client(aws),
                env.required("BEACON_REPORTS_BUCKET")?,
            ),
            mailer: SesMailer::new(aws_sdk_sesv2::Client::new(aws)),
            settings: Settings {
                from: env.required("BEACON_REPORTS_FROM")?,
                attachment_limit: env
                    .parse_or("BEACON_REPORTS_ATTACHMENT_LIMIT", defaults.attachment_limit)?,
                ..defaults
            },
        })
    }
}

/// An on-demand request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnDemand {
    pub tenant: String,
    #[serde(default)]
    pub report: Option<String>,
    #[serde(default)]
    pub definition: Option<DefinitionInput>,
    /// A period key of the report's cadence; the one just closed without it.
    #[serde(default)]
    pub period: Option<String>,
}

fn bad_request(message: impl Into<String>) -> Error {
    Error::from(message.into())
}

pub async fn handle<R, D, F, M>(
    app: &ReportApp<R, D, F, M>,
    event: LambdaEvent<Value>,
) -> Result<Value, Error>
where
    R: RollupReader,
    D: Definitions + Runs,
    F: ReportFiles,
    M: Mailer,
{
    let payload = event.payload;
    let reporter = Reporter {
        reader: &app.reader,
        files: &app.files,
        mailer: &app.mailer,
        settings: &app.settings,
    };
    if let Some(now) = beacon_domain::config::schedule_time(&payload) {
        let outcomes = reporter.run_due(&app.reports, &app.reports, now).await?;
        return Ok(summarize(now, &outcomes));
    }
    let request: OnDemand = serde_json::from_value(payload).map_err(|e| {
        bad_request(format!(
            "not a scheduled event nor an on-demand request ({e}); send {{\"tenant\": ..., \"report\": ...}} or {{\"tenant\": ..., \"definition\": {{...}}}}"
        ))
    })?;
    let now = Utc::now();
    let def = on_demand_definition(&app.reports, &request, now).await?;
    let period = match &request.period {
        None => Period::just_closed(def.cadence, def.tz(), now),
        Some(key) => Period::parse_key(def.cadence, def.tz(), key).ok_or_else(|| {
            bad_request(format!(
                "`{key}` is not a {} period key (e.g. 2026-11-22, 2026-W47, 2026-11)",
                def.cadence.name()
            ))
        })?,
    };
    let (prepared, message_id) = reporter.send_now(&def, period, now).await?;
    metrics::count("ReportsSent", 1, &[("Trigger", "on-demand")]);
    tracing::info!(tenant = %def.tenant, report = %def.id, period = %prepared.data.period.key, %message_id, "report sent on demand");
    Ok(json!({
        "tenant": def.tenant, "report": def.id, "period": prepared.data.period.key,
        "status": "sent", "message_id": message_id, "files": prepared.keys,
        "recipients": prepared.recipients,
    }))
}

async fn on_demand_definition<D: Definitions>(
    reports: &D,
    request: &OnDemand,
    now: DateTime<Utc>,
) -> Result<ReportDefinition, Error> {
    match (&request.definition, &request.report) {
        (Some(input), None) => Ok(input.validate(&request.tenant, now)?),
        (None, Some(id)) => reports.get(&request.tenant, id).await?.ok_or_else(|| {
            bad_request(format!("tenant `{}` has no report `{id}`", request.tenant))
        }),
        _ => Err(bad_request(
            "give either `report` (a stored report's id) or `definition`, not both or neither",
        )),
    }
}

fn summarize(now: DateTime<Utc>, outcomes: &[Outcome]) -> Value {
    let (mut sent, mut skipped, mut failed) = (0u64, 0u64, 0u64);
    for o in outcomes {
        match &o.result {
            RunResult::Sent { message_id, .. } => {
                sent += 1;
                tracing::info!(tenant = %o.tenant, report = %o.report, period = %o.period, %message_id, "report sent");
            }
            RunResult::Skipped { reason } => {
                skipped += 1;
                tracing::debug!(tenant = %o.tenant, report = %o.report, period = %o.period, %reason, "report skipped");
            }
            RunResult::Failed { error } => {
                failed += 1;
                tracing::error!(tenant = %o.tenant, report = %o.report, period = %o.period, %error, "report failed; retried on the next run");
            }
        }
    }
    metrics::count("ReportsSent", sent, &[("Trigger", "schedule")]);
    metrics::count("ReportsFailed", failed, &[]);
    json!({"as_of": now.to_rfc3339(), "sent": sent, "skipped": skipped, "failed": failed, "reports": outcomes})
}
