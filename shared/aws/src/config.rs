//! What every function does once at start: load the AWS SDK configuration, set up JSON
//! logs, and read the tracking and ingest keys (from a variable locally, from Secrets
//! Manager in AWS).

use beacon_domain::config::{ConfigError, Env};
use beacon_domain::ingest::credentials::IngestKeys;
use beacon_domain::tracking::token::Keyring;

/// The AWS SDK configuration, loaded once per process. Honours `AWS_ENDPOINT_URL`,
/// which is how everything here talks to the local emulator without a code change.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// JSON logs with the level from `RUST_LOG` (default `info`), as CloudWatch wants them.
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

/// The tracking keyring: `BEACON_TRACKING_KEYS` (JSON, local use) or else the
/// Secrets Manager secret named by `BEACON_TRACKING_KEYS_SECRET` (in AWS).
pub async fn keyring(env: &Env, aws: &aws_config::SdkConfig) -> Result<Keyring, ConfigError> {
    let json = secret_json(env, aws, "BEACON_TRACKING_KEYS").await?;
    Keyring::from_json(&json).map_err(|e| ConfigError::Keys(e.to_string()))
}

/// The ingest keys (provider credentials' sealing, recipient ids): `BEACON_INGEST_KEYS`
/// (JSON, local use) or else the secret named by `BEACON_INGEST_KEYS_SECRET`.
pub async fn ingest_keys(
    env: &Env,
    aws: &aws_config::SdkConfig,
) -> Result<IngestKeys, ConfigError> {
    let json = secret_json(env, aws, "BEACON_INGEST_KEYS").await?;
    IngestKeys::from_json(&json).map_err(|e| ConfigError::Keys(e.to_string()))
}

/// The dashboard link keys: `BEACON_DASHBOARD_KEYS` (JSON, local use) or the secret
/// named by `BEACON_DASHBOARD_KEYS_SECRET`; `None` with neither (links are off).
pub async fn dashboard_keys(
    env: &Env,
    aws: &aws_config::SdkConfig,
) -> Result<Option<Keyring>, ConfigError> {
    const NAME: &str = "BEACON_DASHBOARD_KEYS";
    if env.get(NAME).is_none() && env.get(&format!("{NAME}_SECRET")).is_none() {
        return Ok(None);
    }
    let json = secret_json(env, aws, NAME).await?;
    Keyring::from_json(&json)
        .map(Some)
        .map_err(|e| ConfigError::Keys(format!("dashboard keys: {e}")))
}

/// A JSON secret: the variable `name` itself, or the Secrets Manager secret named by
/// `<name>_SECRET`.
async fn secret_json(
    env: &Env,
    aws: &aws_config::SdkConfig,
    name: &str,
) -> Result<String, ConfigError> {
    if let Some(json) = env.get(name) {
        return Ok(json);
    }
    let secret_var = format!("{name}_SECRET");
    let secret_id = env.get(&secret_var).ok_or_else(|| {
        ConfigError::Keys(format!(
            "set {secret_var} (a Secrets Manager secret) or {name} (JSON)"
        ))
    })?;
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
    out.secret_string
        .ok_or_else(|| ConfigError::Keys(format!("secret {secret_id} has no string value")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs)
    }

    #[tokio::test]
    async fn keyring_from_variable() {
        let secret = "s".repeat(40);
        let e = env(&[(
            "BEACON_TRACKING_KEYS",
            &format!(r#"{{"active":"k1","k1":"{secret}"}}"#),
        )]);
        let aws = aws_config::SdkConfig::builder().build();
        assert_eq!(keyring(&e, &aws).await.unwrap().active_key_id(), "k1");
        let err = keyring(&env(&[]), &aws).await.unwrap_err();
        assert!(
            err.to_string().contains("BEACON_TRACKING_KEYS_SECRET"),
            "{err}"
        );
    }
}
