//! The alerts function. Two kinds of invocation:
//! - the EventBridge schedule (`detail-type: Scheduled Event`, every five minutes):
//!   every tenant's rules and budget are judged as of the schedule's time
//!   (`beacon_domain::alert::evaluate`), and every tenant's segment count is taken a step
//!   further (`beacon_domain::audience::segments`);
//! - on demand, `{"tenant": "acme"}`: that tenant now (`beacon alert evaluate`).

use beacon_aws::dynamo::alerts::DynamoAlerts;
use beacon_aws::dynamo::rollup_reader::DynamoRollupReader;
use beacon_aws::ses::SesMailer;
use beacon_aws::webhook::HttpWebhooks;
use beacon_domain::alert::evaluate::{Alerter, Settings, TenantOutcome};
use beacon_domain::alert::outbound::{Policy, LOCAL_SWITCH};
use beacon_domain::alert::store::{AlertStore, WebhookSender};
use beacon_domain::audience::reader::AudienceReader;
use beacon_domain::audience::segments::{refresh_all, SegmentSnapshots};
use beacon_domain::config::{ConfigError, Env};
use beacon_domain::mail::Mailer;
use beacon_domain::metrics;
use beacon_domain::rollup::reader::RollupReader;
use chrono::{DateTime, Utc};
use lambda_runtime::{Error, LambdaEvent};
use serde::Deserialize;
use serde_json::{json, Value};

/// Everything the function holds between invocations.
pub struct AlertsApp<R, S, M, W> {
    pub reader: R,
    pub store: S,
    pub mailer: M,
    pub webhooks: W,
    pub settings: Settings,
}

impl AlertsApp<DynamoRollupReader, DynamoAlerts, SesMailer, HttpWebhooks> {
    /// Reads `BEACON_ROLLUPS_TABLE`, `BEACON_ALERTS_TABLE`, `BEACON_ALERTS_FROM`,
    /// `BEACON_WEBHOOK_TIMEOUT_SECONDS` (default 5) and `BEACON_ALLOW_LOCAL_WEBHOOKS`
    /// (unset: webhooks go to public https addresses only).
    pub fn from_env(env: &Env, aws: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let dynamo = aws_sdk_dynamodb::Client::new(aws);
        let timeout = env.parse_or("BEACON_WEBHOOK_TIMEOUT_SECONDS", 5u64)?;
        let policy = Policy::from_env(env)?;
        if policy.allow_loopback {
            tracing::warn!(
                "{LOCAL_SWITCH} is on: webhooks may go to this machine (local development only)"
            );
        }
        Ok(AlertsApp {
            reader: DynamoRollupReader::new(dynamo.clone(), env.required("BEACON_ROLLUPS_TABLE")?),
            store: DynamoAlerts::new(dynamo, env.required("BEACON_ALERTS_TABLE")?),
            mailer: SesMailer::new(aws_sdk_sesv2::Client::new(aws)),
            webhooks: HttpWebhooks::new(std::time::Duration::from_secs(timeout), policy),
            settings: Settings {
                from: env.required("BEACON_ALERTS_FROM")?,
            },
        })
    }
}

/// An on-demand request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnDemand {
    pub tenant: String,
}

pub async fn handle<R, S, M, W>(
    app: &AlertsApp<R, S, M, W>,
    event: LambdaEvent<Value>,
) -> Result<Value, Error>
where
    R: RollupReader + AudienceReader + SegmentSnapshots,
    S: AlertStore,
    M: Mailer,
    W: WebhookSender,
{
    let alerter = Alerter {
        reader: &app.reader,
        store: &app.store,
        mailer: &app.mailer,
        webhooks: &app.webhooks,
        settings: &app.settings,
    };
    let payload = event.payload;
    if let Some(now) = beacon_domain::config::schedule_time(&payload) {
        let outcomes = alerter.run_all(now).await.map_err(Error::from)?;
        let mut summary = summarize(now, &outcomes);
        summary["segments"] = segments(&app.reader, now).await;
        return Ok(summary);
    }
    let request: OnDemand = serde_json::from_value(payload).map_err(|e| {
        Error::from(format!(
            "not a scheduled event nor an on-demand request ({e}); send {{\"tenant\": ...}}"
        ))
    })?;
    let now = Utc::now();
    let outcome = alerter.evaluate(&request.tenant, now).await;
    Ok(summarize(now, std::slice::from_ref(&outcome)))
}

/// Takes every tenant's segment count a step further; a failure is logged and counted,
/// and the next run goes on (it never holds up the alerts).
async fn segments<R: RollupReader + AudienceReader + SegmentSnapshots>(
    reader: &R,
    now: DateTime<Utc>,
) -> Value {
    match refresh_all(reader, now).await {
        Ok(done) => {
            let errors = done.iter().filter(|d| d.error.is_some()).count();
            for d in done.iter().filter(|d| d.error.is_some()) {
                tracing::error!(tenant = %d.tenant, error = ?d.error, "segment count not taken further");
            }
            metrics::count("SegmentSnapshotErrors", errors as u64, &[]);
            json!({
                "tenants": done.len(),
                "published": done.iter().filter(|d| d.published).count(),
                "errors": errors,
            })
        }
        Err(e) => {
            tracing::error!(error = %e, "segment counts not taken further");
            metrics::count("SegmentSnapshotErrors", 1, &[]);
            json!({"error": e.to_string()})
        }
    }
}

fn summarize(now: DateTime<Utc>, outcomes: &[TenantOutcome]) -> Value {
    let (mut fired, mut resolved, mut failures, mut errors) = (0usize, 0usize, 0usize, 0usize);
    for o in outcomes {
        fired += o.fired.len();
        resolved += o.resolved.len();
        failures += o.failures.len();
        for rule in &o.fired {
            tracing::warn!(tenant = %o.tenant, %rule, "alert firing");
        }
        for rule in &o.resolved {
            tracing::info!(tenant = %o.tenant, %rule, "alert resolved");
        }
        for failure in &o.failures {
            tracing::error!(tenant = %o.tenant, %failure, "notice not delivered; retried on the next evaluation");
        }
        if let Some(e) = &o.error {
            errors += 1;
            tracing::error!(tenant = %o.tenant, error = %e, "tenant not evaluated");
        }
    }
    metrics::count("AlertsFired", fired as u64, &[]);
    metrics::count("AlertsResolved", resolved as u64, &[]);
    metrics::count("AlertDeliveryFailures", failures as u64, &[]);
    metrics::count("AlertTenantErrors", errors as u64, &[]);
    json!({
        "as_of": now.to_rfc3339(), "tenants": outcomes.len(), "fired": fired,
        "resolved": resolved, "delivery_failures": failures, "errors": errors,
        "outcomes": outcomes,
    })
}
