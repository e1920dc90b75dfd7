//! `beacon provider`: the credentials Beacon verifies each tenant's webhooks with
//! (SendGrid's verification key, Mailgun's signing key, Postmark's webhook token,
//! Twilio's auth token), the SES configuration sets that name a tenant, and the
//! recipient id Beacon gives an address.
//!
//! Credentials are read from standard input or a file, never from the command line
//! (where shell history and process lists would keep them), sealed with the ingest
//! keys (`BEACON_INGEST_KEYS` or the secret named by `BEACON_INGEST_KEYS_SECRET`) and
//! stored sealed; `list` shows a fingerprint, never the credential.

use anyhow::{bail, Context, Result};
use beacon_aws::config::aws_config;
use beacon_aws::dynamo::providers::DynamoProviders;
use beacon_domain::config::Env;
use beacon_domain::ingest::credentials::{IngestKeys, ProviderStore, StoredCredential};
use beacon_domain::ingest::Provider;
use clap::{Args, Subcommand};
use std::io::Read;
use std::path::PathBuf;

#[derive(Args)]
pub struct Table {
    /// The providers table (stack output ProvidersTableName).
    #[arg(long, env = "BEACON_PROVIDERS_TABLE")]
    table: String,
}

#[derive(Args)]
pub struct Secret {
    /// Read the credential from this file (default: standard input).
    #[arg(long = "secret-file", default_value = "-")]
    secret_file: PathBuf,
}

#[derive(Subcommand)]
pub enum ProviderCommand {
    /// Store a tenant's webhook credential for sendgrid, mailgun, postmark or twilio,
    /// and print the webhook URL to give the provider.
    Add {
        #[arg(long)]
        tenant: String,
        provider: String,
        #[command(flatten)]
        secret: Secret,
        #[command(flatten)]
        table: Table,
        /// The API's public URL (stack output PublicBaseUrl), to print the webhook URL.
        #[arg(long, env = "BEACON_PUBLIC_BASE_URL")]
        base_url: Option<String>,
        /// Replace a credential that is already there (`rotate` keeps the old one
        /// valid for a while; this does not).
        #[arg(long)]
        replace: bool,
    },
    /// Replace a credential, keeping the old one valid for `--grace-hours` so requests
    /// the provider signed before the change still verify.
    Rotate {
        #[arg(long)]
        tenant: String,
        provider: String,
        #[command(flatten)]
        secret: Secret,
        #[command(flatten)]
        table: Table,
        #[arg(long, default_value_t = 24)]
        grace_hours: u32,
    },
    /// Every stored credential (of one tenant), with fingerprints.
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        table: Table,
    },
    /// Delete a tenant's credential: its webhooks are refused from then on (within a
    /// minute, the functions' cache).
    Remove {
        #[arg(long)]
        tenant: String,
        provider: String,
        #[command(flatten)]
        table: Table,
    },
    /// SES configuration sets whose events belong to a tenant.
    #[command(subcommand)]
    Ses(SesCommand),
    /// The recipient id Beacon gives an address (or phone number) of a tenant, to look
    /// the recipient up (suppression list, engagement) without storing the address.
    RecipientId {
        #[arg(long)]
        tenant: String,
        address: String,
    },
}

#[derive(Subcommand)]
pub enum SesCommand {
    /// Events of messages sent with this configuration set belong to `tenant`.
    Add {
        #[arg(long)]
        tenant: String,
        configuration_set: String,
        #[command(flatten)]
        table: Table,
    },
    List {
        #[command(flatten)]
        table: Table,
    },
    Remove {
        configuration_set: String,
        #[command(flatten)]
        table: Table,
    },
}

async fn store(table: &Table) -> DynamoProviders {
    let aws = aws_config().await;
    DynamoProviders::new(aws_sdk_dynamodb::Client::new(&aws), table.table.clone())
}

async fn keys() -> Result<IngestKeys> {
    let aws = aws_config().await;
    Ok(beacon_aws::config::ingest_keys(&Env::process(), &aws).await?)
}

fn webhook_provider(name: &str) -> Result<Provider> {
    match Provider::parse(name) {
        Some(Provider::Ses) => bail!(
            "SES needs no credential: its events arrive through EventBridge or SNS; map a configuration set with `beacon provider ses add`"
        ),
        Some(p) => Ok(p),
        None => bail!("unknown provider `{name}`: use sendgrid, mailgun, postmark or twilio"),
    }
}

fn tenant(id: &str) -> Result<()> {
    beacon_domain::tenant::check(id)?;
    Ok(())
}

/// The credential, trimmed, from a file or standard input; checked as far as its
/// provider's format allows, so a wrong paste fails here and not on the first webhook.
fn read_secret(provider: Provider, from: &Secret) -> Result<String> {
    let mut text = String::new();
    if from.secret_file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the credential from standard input")?;
    } else {
        text = std::fs::read_to_string(&from.secret_file)
            .with_context(|| format!("reading {}", from.secret_file.display()))?;
    }
    let secret = text.trim().to_string();
    if secret.is_empty() {
        bail!("the credential is empty: pipe it in, or pass --secret-file");
    }
    if provider == Provider::SendGrid {
        beacon_domain::ingest::sendgrid::verifying_key(&secret).map_err(|e| {
            anyhow::anyhow!("this is not a SendGrid verification key (base64 DER public key): {e}")
        })?;
    }
    Ok(secret)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub async fn run(command: ProviderCommand) -> Result<()> {
    match command {
        ProviderCommand::Add {
            tenant: t,
            provider,
            secret,
            table,
            base_url,
            replace,
        } => {
            tenant(&t)?;
            let provider = webhook_provider(&provider)?;
            let plain = read_secret(provider, &secret)?;
            let store = store(&table).await;
            if !replace && store.credential(&t, provider).await?.is_some() {
                bail!("tenant `{t}` already has a {provider} credential: use `beacon provider rotate` (or --replace)");
            }
            let credential = StoredCredential::new(&keys().await?, &t, provider, &plain, &now());
            store.put_credential(&credential).await?;
            eprintln!(
                "stored the {provider} credential of `{t}` (fingerprint {})",
                credential.fingerprint
            );
            let base = base_url.unwrap_or_else(|| "https://<your API>".into());
            println!("{}/v1/webhooks/{provider}/{t}", base.trim_end_matches('/'));
        }
        ProviderCommand::Rotate {
            tenant: t,
            provider,
            secret,
            table,
            grace_hours,
        } => {
            tenant(&t)?;
            let provider = webhook_provider(&provider)?;
            let plain = read_secret(provider, &secret)?;
            let store = store(&table).await;
            let Some(old) = store.credential(&t, provider).await? else {
                bail!("tenant `{t}` has no {provider} credential to rotate: use `beacon provider add`");
            };
            let until = chrono::Utc::now() + chrono::Duration::hours(i64::from(grace_hours));
            let new = old.rotated(&keys().await?, &plain, &now(), until.timestamp());
            store.put_credential(&new).await?;
            eprintln!(
                "rotated the {provider} credential of `{t}`: {} now, {} until {}",
                new.fingerprint,
                old.fingerprint,
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
        }
        ProviderCommand::List { tenant: t, table } => {
            let all = store(&table).await.credentials(t.as_deref()).await?;
            if all.is_empty() {
                eprintln!("no provider credentials stored");
            }
            println!("tenant\tprovider\tfingerprint\tcreated\trotated\tprevious valid until");
            for c in all {
                let until = c
                    .previous_until
                    .and_then(|u| chrono::DateTime::from_timestamp(u, 0))
                    .map(|u| u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{until}",
                    c.tenant_id,
                    c.provider,
                    c.fingerprint,
                    c.created_at,
                    c.rotated_at.as_deref().unwrap_or("-")
                );
            }
        }
        ProviderCommand::Remove {
            tenant: t,
            provider,
            table,
        } => {
            let provider = webhook_provider(&provider)?;
            if store(&table).await.remove_credential(&t, provider).await? {
                eprintln!("removed the {provider} credential of `{t}`");
            } else {
                bail!("tenant `{t}` has no {provider} credential");
            }
        }
        ProviderCommand::Ses(SesCommand::Add {
            tenant: t,
            configuration_set,
            table,
        }) => {
            tenant(&t)?;
            let store = store(&table).await;
            if let Some(other) = store.configuration_set_tenant(&configuration_set).await? {
                if other != t {
                    bail!("configuration set `{configuration_set}` belongs to `{other}`; remove it first");
                }
            }
            store.put_configuration_set(&configuration_set, &t).await?;
            eprintln!("events of configuration set `{configuration_set}` now belong to `{t}`");
        }
        ProviderCommand::Ses(SesCommand::List { table }) => {
            println!("configuration set\ttenant");
            for (set, t) in store(&table).await.configuration_sets().await? {
                println!("{set}\t{t}");
            }
        }
        ProviderCommand::Ses(SesCommand::Remove {
            configuration_set,
            table,
        }) => {
            if !store(&table)
                .await
                .remove_configuration_set(&configuration_set)
                .await?
            {
                bail!("configuration set `{configuration_set}` is not mapped");
            }
            eprintln!("configuration set `{configuration_set}` no longer names a tenant");
        }
        ProviderCommand::RecipientId { tenant: t, address } => {
            tenant(&t)?;
            println!(
                "{}",
                keys()
                    .await?
                    .pseudonyms()
                    .for_tenant(&t)
                    .recipient_id(&address)
            );
        }
    }
    Ok(())
}
