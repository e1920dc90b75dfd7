//! Configuration from environment variables: the template sets them in AWS, the local
//! gateway sets them from the same template. Every variable is read through [`Env`] so a
//! host running several functions in one process can give each its own set.

use crate::context::IpPolicy;
use crate::token::Keyring;
use crate::validate::Limits;
use chrono::Duration;
use std::collections::HashMap;
use std::str::FromStr;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} = `{value}` is not valid: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: String,
    },
    #[error("tracking keys: {0}")]
    Keys(String),
}

/// A source of configuration variables.
#[derive(Debug, Clone, Default)]
pub struct Env {
    overrides: Option<HashMap<String, String>>,
}

impl Env {
    /// The process environment (what a Lambda function sees).
    pub fn process() -> Self {
        Env { overrides: None }
    }

    /// A fixed set of variables (one function's, in the local gateway).
    pub fn from_map(vars: HashMap<String, String>) -> Self {
        Env {
            overrides: Some(vars),
        }
    }

    pub fn get(&self, name: &str) -> Option<String> {
        let value = match &self.overrides {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        value.filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name).ok_or(ConfigError::Missing(name))
    }

    /// Parses `name`, or returns `default` when it is unset.
    pub fn parse_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::Invalid {
                    name,
                    why: e.to_string(),
                    value,
                }),
        }
    }

    pub fn ip_policy(&self) -> Result<IpPolicy, ConfigError> {
        self.parse_or("BEACON_IP_POLICY", IpPolicy::Anonymize)
    }

    /// Validation limits; each has a documented default.
    pub fn limits(&self) -> Result<Limits, ConfigError> {
        let d = Limits::default();
        Ok(Limits {
            max_body_bytes: self.parse_or("BEACON_MAX_BODY_BYTES", d.max_body_bytes)?,
            max_batch_events: self.parse_or("BEACON_MAX_BATCH_EVENTS", d.max_batch_events)?,
            max_event_bytes: self.parse_or("BEACON_MAX_EVENT_BYTES", d.max_event_bytes)?,
            max_properties: self.parse_or("BEACON_MAX_PROPERTIES", d.max_properties)?,
            max_future: Duration::seconds(
                self.parse_or("BEACON_MAX_FUTURE_SECONDS", d.max_future.num_seconds())?,
            ),
            max_age: Duration::hours(
                self.parse_or("BEACON_MAX_EVENT_AGE_HOURS", d.max_age.num_hours())?,
            ),
        })
    }

    /// The tracking keyring: `BEACON_TRACKING_KEYS` (JSON, local use) or else the
    /// Secrets Manager secret named by `BEACON_TRACKING_KEYS_SECRET` (in AWS).
    pub async fn keyring(&self, aws: &aws_config::SdkConfig) -> Result<Keyring, ConfigError> {
        let json = match self.get("BEACON_TRACKING_KEYS") {
            Some(json) => json,
            None => {
                let secret_id = self.get("BEACON_TRACKING_KEYS_SECRET").ok_or(ConfigError::Keys(
                    "set BEACON_TRACKING_KEYS_SECRET (a Secrets Manager secret) or BEACON_TRACKING_KEYS (JSON)".into(),
                ))?;
                let client = aws_sdk_secretsmanager::Client::new(aws);
                let out = client
                    .get_secret_value()
                    .secret_id(&secret_id)
                    .send()
                    .await
                    .map_err(|e| {
                        ConfigError::Keys(format!(
                            "reading secret {secret_id}: {}",
                            aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                        ))
                    })?;
                out.secret_string.ok_or_else(|| {
                    ConfigError::Keys(format!("secret {secret_id} has no string value"))
                })?
            }
        };
        Keyring::from_json(&json).map_err(|e| ConfigError::Keys(e.to_string()))
    }
}

/// The AWS SDK configuration, loaded once per process. Honours `AWS_ENDPOINT_URL`,
/// which is how everything here talks to the local emulator without a code change.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// JSON logs with the level from `RUST_LOG` (default `info`), as CloudWatch wants them.
/// The time of an EventBridge scheduled event (`detail-type: Scheduled Event`), so a
/// late or replayed invocation works as of the time the schedule meant; `None` when the
/// payload is not one (an on-demand request).
pub fn schedule_time(payload: &serde_json::Value) -> Option<chrono::DateTime<chrono::Utc>> {
    if payload
        .get("detail-type")
        .and_then(serde_json::Value::as_str)
        != Some("Scheduled Event")
    {
        return None;
    }
    let time = payload
        .get("time")
        .and_then(serde_json::Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    Some(time.unwrap_or_else(chrono::Utc::now))
}

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .without_time() // CloudWatch stamps every line already
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn limits_default_and_override() {
        let l = env(&[]).limits().unwrap();
        assert_eq!(l.max_batch_events, 500);
        let l = env(&[
            ("BEACON_MAX_BATCH_EVENTS", "50"),
            ("BEACON_MAX_EVENT_AGE_HOURS", "48"),
        ])
        .limits()
        .unwrap();
        assert_eq!(l.max_batch_events, 50);
        assert_eq!(l.max_age, Duration::hours(48));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = env(&[("BEACON_MAX_BATCH_EVENTS", "lots")])
            .limits()
            .unwrap_err();
        assert!(
            err.to_string().contains("BEACON_MAX_BATCH_EVENTS = `lots`"),
            "{err}"
        );
        let err = env(&[("BEACON_IP_POLICY", "maybe")])
            .ip_policy()
            .unwrap_err();
        assert!(err.to_string().contains("anonymize, full, drop"), "{err}");
    }

    #[tokio::test]
    async fn keyring_from_variable() {
        let secret = "s".repeat(40);
        let e = env(&[(
            "BEACON_TRACKING_KEYS",
            &format!(r#"{{"active":"k1","k1":"{secret}"}}"#),
        )]);
        let aws = aws_config::SdkConfig::builder().build();
        assert_eq!(e.keyring(&aws).await.unwrap().active_key_id(), "k1");
        let err = env(&[]).keyring(&aws).await.unwrap_err();
        assert!(
            err.to_string().contains("BEACON_TRACKING_KEYS_SECRET"),
            "{err}"
        );
    }
}
