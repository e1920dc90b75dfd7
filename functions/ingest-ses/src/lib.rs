//! Amazon SES events in: the function the template's EventBridge rule (source `aws.ses`
//! on the default bus) and SNS subscription invoke. Each SES event becomes one Beacon
//! event per affected recipient ([`beacon_domain::ingest::ses`]) on the same stream the
//! collect API writes to.
//!
//! Nothing accepted is lost: if the stream refuses any event, the invocation fails and
//! Lambda invokes it again (then the on-failure queue keeps it). The events that were
//! stored the first time carry the same deterministic ids the second time, so the
//! aggregate's dedupe counts them once.

use beacon_aws::dynamo::providers::DynamoProviders;
use beacon_aws::kinesis::KinesisSink;
use beacon_domain::config::{ConfigError, Env};
use beacon_domain::ingest::credentials::{ProviderStore, ProviderStoreError};
use beacon_domain::ingest::{record, ses, Expiring, Intake, Mapped, Provider, Recorded};
use beacon_domain::tracking::sink::EventSink;
use beacon_domain::verdict::networks::Networks;
use beacon_domain::EventType;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use std::time::Duration;

pub struct IngestSesApp<S, P> {
    pub sink: S,
    pub store: P,
    pub intake: Intake,
    /// The tenant of events that name none (no tag, no mapped configuration set):
    /// `BEACON_SES_DEFAULT_TENANT`, for a deployment that serves one tenant.
    pub default_tenant: Option<String>,
    /// What SES charges per message sent, in US dollars (`BEACON_SES_COST_PER_MESSAGE`,
    /// default 0.0001: $0.10 per 1,000): recorded on each `message.sent`, so spend and
    /// the budget alert see SES mail without the sender reporting it.
    pub cost_per_message: Option<f64>,
    configuration_sets: Expiring<String, Option<String>>,
}

impl IngestSesApp<KinesisSink, DynamoProviders> {
    /// Reads `BEACON_STREAM_NAME`, `BEACON_PROVIDERS_TABLE`, the ingest keys, the limits,
    /// the IP policy and `BEACON_SES_DEFAULT_TENANT`.
    pub async fn from_env(env: &Env, aws: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let stream = env.required("BEACON_STREAM_NAME")?;
        let table = env.required("BEACON_PROVIDERS_TABLE")?;
        let intake = Intake {
            keys: beacon_aws::config::ingest_keys(env, aws).await?,
            limits: env.limits()?,
            ip_policy: env.ip_policy()?,
            networks: Networks::shipped(),
        };
        let mut app = Self::new(
            KinesisSink::new(aws_sdk_kinesis::Client::new(aws), stream),
            DynamoProviders::new(aws_sdk_dynamodb::Client::new(aws), table),
            intake,
            env.get("BEACON_SES_DEFAULT_TENANT"),
        )?;
        let cost = env.parse_or("BEACON_SES_COST_PER_MESSAGE", DEFAULT_COST_PER_MESSAGE)?;
        app.cost_per_message = (cost > 0.0).then_some(cost);
        Ok(app)
    }
}

/// SES's price per message in US dollars ($0.10 per 1,000 emails).
pub const DEFAULT_COST_PER_MESSAGE: f64 = 0.0001;

/// The invocation failed: Lambda retries it (and keeps it on the failure queue at the end).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the invocation is not an SES event: {0}")]
    Malformed(#[from] beacon_domain::ingest::Malformed),
    #[error("{0} events were not stored on the stream; the invocation will be retried")]
    NotStored(usize),
    #[error(transparent)]
    Store(#[from] ProviderStoreError),
}

impl<S: EventSink, P: ProviderStore> IngestSesApp<S, P> {
    pub fn new(
        sink: S,
        store: P,
        intake: Intake,
        default_tenant: Option<String>,
    ) -> Result<Self, ConfigError> {
        if let Some(t) = &default_tenant {
            beacon_domain::tenant::check(t).map_err(|e| ConfigError::Invalid {
                name: "BEACON_SES_DEFAULT_TENANT",
                value: t.clone(),
                why: e.to_string(),
            })?;
        }
        Ok(IngestSesApp {
            sink,
            store,
            intake,
            default_tenant,
            cost_per_message: Some(DEFAULT_COST_PER_MESSAGE),
            configuration_sets: Expiring::new(Duration::from_secs(60)),
        })
    }

    /// The tenant a configuration set is mapped to, cached for a minute: a campaign's
    /// events arrive by the thousand and the mapping rarely changes.
    async fn configuration_set_tenant(
        &self,
        set: &str,
    ) -> Result<Option<String>, ProviderStoreError> {
        if let Some(tenant) = self.configuration_sets.get(&set.to_string()) {
            return Ok(tenant);
        }
        let tenant = self.store.configuration_set_tenant(set).await?;
        self.configuration_sets.put(set.to_string(), tenant.clone());
        Ok(tenant)
    }
}

pub async fn handle<S: EventSink, P: ProviderStore>(
    app: &IngestSesApp<S, P>,
    event: LambdaEvent<Value>,
) -> Result<Recorded, lambda_runtime::Error> {
    ingest(app, event.payload, chrono::Utc::now())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "SES invocation failed");
            e.into()
        })
}

/// Maps and records every SES event of one invocation.
pub async fn ingest<S: EventSink, P: ProviderStore>(
    app: &IngestSesApp<S, P>,
    payload: Value,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Recorded, IngestError> {
    let arrivals = ses::read_value(payload)?;
    let mut done = Recorded::default();
    for (index, arrival) in arrivals.iter().enumerate() {
        let event = &arrival.event;
        let mapped_tenant = match event.configuration_set() {
            Some(set) => app.configuration_set_tenant(set).await?,
            None => None,
        };
        let tenant = ses::tenant_of(
            event,
            mapped_tenant.as_deref(),
            app.default_tenant.as_deref(),
        )
        .and_then(|t| {
            beacon_domain::tenant::check(&t)
                .map(|_| t)
                .map_err(|e| e.to_string())
        });
        let (tenant, mapped) = match tenant {
            Ok(tenant) => {
                let mut mapped = app
                    .intake
                    .with_source(Provider::Ses, &tenant, now, |source| {
                        ses::map(event, index, source)
                    });
                if let Some(cost) = app.cost_per_message {
                    for sent in mapped
                        .events
                        .iter_mut()
                        .filter(|e| e.kind == EventType::Sent)
                    {
                        sent.cost = Some(cost);
                        sent.currency = Some("USD".into());
                    }
                }
                (tenant, mapped)
            }
            Err(reason) => {
                let mut mapped = Mapped::default();
                mapped.skip(index, &event.event_type, reason);
                ("(none)".to_string(), mapped)
            }
        };
        tracing::info!(delivery = %arrival.delivery_id, ses_event = %event.event_type, tenant = %tenant, events = mapped.events.len(), "SES event");
        done.add(&record(&app.sink, Provider::Ses, &tenant, &mapped).await);
    }
    if done.failed > 0 {
        return Err(IngestError::NotStored(done.failed));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_domain::event::context::IpPolicy;
    use beacon_domain::event::validate::Limits;
    use beacon_domain::ingest::credentials::IngestKeys;
    use beacon_domain::testkit::memory::{MemoryProviders, MemorySink};
    use chrono::TimeZone;

    const KEYS: &str = r#"{"active":"k1","k1":"0123456789abcdef0123456789abcdef"}"#;

    fn app(store: MemoryProviders, sink: MemorySink) -> IngestSesApp<MemorySink, MemoryProviders> {
        let intake = Intake {
            keys: IngestKeys::from_json(KEYS).unwrap(),
            limits: Limits::default(),
            ip_policy: IpPolicy::Anonymize,
            networks: Networks::shipped(),
        };
        IngestSesApp::new(sink, store, intake, None).unwrap()
    }

    fn sample(name: &str) -> Value {
        let path = format!(
            "{}/../../events/ingest-ses/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::Utc.with_ymd_and_hms(2026, 12, 1, 13, 0, 0).unwrap()
    }

    #[tokio::test]
    async fn eventbridge_and_sns_invocations_land_on_the_stream() {
        let app = app(MemoryProviders::default(), MemorySink::default());
        let done = ingest(&app, sample("eventbridge-delivery"), now())
            .await
            .unwrap();
        assert_eq!(
            done,
            Recorded {
                recorded: 1,
                skipped: 0,
                failed: 0
            }
        );
        let done = ingest(&app, sample("sns-bounce"), now()).await.unwrap();
        assert_eq!(done.recorded, 1);
        let events = app.sink.events();
        assert_eq!(
            events.iter().map(|e| e.kind.clone()).collect::<Vec<_>>(),
            [EventType::Delivered, EventType::Bounced]
        );
        assert!(events.iter().all(|e| e.tenant_id == "acme"));
        ingest(&app, sample("eventbridge-send"), now())
            .await
            .unwrap();
        let sent = app.sink.events().pop().unwrap();
        assert_eq!(
            (sent.cost, sent.currency.as_deref()),
            (Some(0.0001), Some("USD"))
        );
        assert_eq!(events[0].cost, None, "only sends cost");
    }

    #[tokio::test]
    async fn configuration_sets_name_the_tenant_and_the_lookup_is_cached() {
        let store = MemoryProviders::default();
        store
            .configuration_sets
            .lock()
            .unwrap()
            .insert("beacon-events".into(), "globex".into());
        let app = app(store, MemorySink::default());
        let mut untagged = sample("eventbridge-send");
        untagged["detail"]["mail"]["tags"]
            .as_object_mut()
            .unwrap()
            .remove("beacon-tenant");
        for _ in 0..3 {
            ingest(&app, untagged.clone(), now()).await.unwrap();
        }
        assert!(app.sink.events().iter().all(|e| e.tenant_id == "globex"));
        assert_eq!(
            app.store.lookups.load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        // The tag of another tenant on a mapped set is refused, not guessed.
        let done = ingest(&app, sample("eventbridge-send"), now())
            .await
            .unwrap();
        assert_eq!(
            done,
            Recorded {
                recorded: 0,
                skipped: 1,
                failed: 0
            }
        );
    }

    #[tokio::test]
    async fn a_refused_write_fails_the_invocation_so_lambda_retries_it() {
        let app = app(MemoryProviders::default(), MemorySink::refusing());
        let err = ingest(&app, sample("eventbridge-open"), now())
            .await
            .unwrap_err();
        assert!(matches!(err, IngestError::NotStored(1)), "{err}");
        assert!(ingest(&app, serde_json::json!({"hello": 1}), now())
            .await
            .is_err());
    }
}
