//! Configuration from environment variables: the template sets them in AWS, the local
//! gateway sets them from the same template. Every variable is read through [`Env`] so a
//! host running several functions in one process can give each its own set.

use crate::event::context::IpPolicy;
use crate::event::validate::Limits;
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
    /// The tracking or ingest keys (the message names which).
    #[error("{0}")]
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

    /// A fixed set of variables from name-value pairs (tests, tools).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Env::from_map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
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
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs)
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
}
