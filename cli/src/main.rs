//! `beacon`: the command-line tool for senders and operators.
//!
//! The master tracking keys come from `BEACON_TRACKING_KEYS` (JSON) or the Secrets
//! Manager secret named by `BEACON_TRACKING_KEYS_SECRET`, exactly as the functions read
//! them. A tenant that instruments its own mail is given a tenant key instead
//! (`beacon tracking-key derive`), which signs for that tenant only.

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use beacon_aws::config::aws_config;
use beacon_aws::dynamo::apikeys::DynamoApiKeys;
use beacon_domain::apikey::{hash_api_key, new_api_key, ApiKeyRecord, ApiKeyStore};
use beacon_domain::config::Env;
use beacon_domain::event::validate::trackable_url;
use beacon_domain::tracking::token::{Recipient, TenantKey, TokenSigner};
use beacon_instrument::{instrument_html_with, LinkSigner, Options};
use clap::{Args, Parser, Subcommand};
use std::io::{Read, Write};
use std::path::PathBuf;

mod alert;
mod dashboard;
mod lake;
mod networks;
mod provider;
mod report;
mod suppression;

#[derive(Parser)]
#[command(
    name = "beacon",
    version,
    about = "Beacon: email and event analytics on AWS Lambda"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Rewrite an email's links to signed click URLs and add the open pixel.
    Instrument {
        #[command(flatten)]
        link: LinkArgs,
        /// HTML file to read (`-` for standard input).
        #[arg(long = "in", default_value = "-")]
        input: PathBuf,
        /// Where to write the result (`-` for standard output).
        #[arg(long, default_value = "-")]
        out: PathBuf,
        /// Also add an invisible honeypot link: security scanners follow it, people
        /// never see it, and a click on it marks the message's clicks around it as a
        /// scanner's.
        #[arg(long)]
        honeypot: bool,
    },
    /// Sign one URL as a click link (or make the open-pixel URL with --open).
    SignUrl {
        #[command(flatten)]
        link: LinkArgs,
        /// The destination to sign.
        url: Option<String>,
        /// Print the open-pixel URL instead of a click URL.
        #[arg(long, conflicts_with = "url")]
        open: bool,
    },
    /// Manage the per-tenant API keys of the collect API.
    #[command(subcommand)]
    Apikey(ApiKeyCommand),
    /// Manage tracking keys: a new master keyring, or a tenant's key derived from it.
    #[command(subcommand, name = "tracking-key", visible_alias = "keys")]
    TrackingKey(TrackingKeyCommand),
    /// Operate the Parquet data lake: compact it, rebuild or backfill a date range.
    #[command(subcommand)]
    Lake(lake::LakeCommand),
    /// Scheduled reports: create, list, show, delete, and run one now.
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// IP range lists (Apple's proxy, security scanners): import, list, look an IP up.
    #[command(subcommand)]
    Networks(networks::NetworksCommand),
    /// Alert rules, the monthly budget and where notices go; evaluate now; verify a
    /// webhook signature.
    #[command(subcommand)]
    Alert(alert::AlertCommand),
    /// The suppression list: check, add, remove, export.
    #[command(subcommand)]
    Suppression(suppression::SuppressionCommand),
    /// Senders' events: webhook credentials per tenant (add, rotate, list, remove),
    /// SES configuration sets per tenant, and the recipient id of an address.
    #[command(subcommand)]
    Provider(provider::ProviderCommand),
    /// Read-only dashboard links: sign one for a tenant or a campaign, list, revoke.
    #[command(subcommand)]
    Dashboard(dashboard::DashboardCommand),
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create a key for a tenant; the key is printed once and only its hash is stored.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "default")]
        name: String,
        /// The API keys table (the stack output ApiKeysTableName).
        #[arg(long, env = "BEACON_API_KEYS_TABLE")]
        table: String,
    },
    /// Revoke a key (collect refuses it within the cache time, 60 s by default).
    Revoke {
        /// The key itself.
        key: String,
        #[arg(long, env = "BEACON_API_KEYS_TABLE")]
        table: String,
    },
}

#[derive(Subcommand)]
enum TrackingKeyCommand {
    /// Print a new master keyring JSON with one random key.
    Generate {
        #[arg(long, default_value = "k1")]
        id: String,
    },
    /// Print the tenant key of one tenant, derived from the master keyring: hand it to
    /// that tenant for `--tenant-key`; it signs links for that tenant only.
    Derive {
        #[arg(long)]
        tenant: String,
        /// The master key to derive from (default: the active one).
        #[arg(long)]
        key_id: Option<String>,
    },
}

#[derive(Args)]
struct LinkArgs {
    /// The tenant the links are for (default with --tenant-key: the key's tenant).
    #[arg(long)]
    tenant: Option<String>,
    /// Sign with this tenant key file (from `beacon tracking-key derive`) instead of
    /// the master keyring.
    #[arg(long, env = "BEACON_TENANT_KEY_FILE")]
    tenant_key: Option<PathBuf>,
    /// Campaign id (leave out for transactional mail).
    #[arg(long, default_value = "")]
    campaign: String,
    #[arg(long)]
    message: String,
    /// Opaque recipient id (not an email address).
    #[arg(long)]
    recipient: String,
    /// Public tracking origin, e.g. https://t.example.com (stack output PublicBaseUrl).
    #[arg(long, env = "BEACON_PUBLIC_BASE_URL")]
    base_url: String,
    /// Days until the links stop working.
    #[arg(long, default_value_t = 365)]
    ttl_days: u32,
}

impl LinkArgs {
    /// What signs the links: the tenant key given, or else the master keyring; and the
    /// recipient, whose tenant that signer may sign for.
    async fn signer(&self) -> Result<(Box<dyn TokenSigner>, Recipient)> {
        let (signer, tenant): (Box<dyn TokenSigner>, String) = match &self.tenant_key {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the tenant key {}", path.display()))?;
                let key = TenantKey::from_json(&text)
                    .with_context(|| format!("the tenant key {}", path.display()))?;
                let tenant = self.tenant.clone().unwrap_or_else(|| key.tenant().into());
                if tenant != key.tenant() {
                    bail!(
                        "the tenant key {} is for tenant `{}`: it cannot sign links for `{tenant}`",
                        path.display(),
                        key.tenant()
                    );
                }
                (Box::new(key), tenant)
            }
            None => {
                let tenant = self
                    .tenant
                    .clone()
                    .context("give --tenant (or --tenant-key, a tenant's own key)")?;
                beacon_domain::tenant::check(&tenant)?;
                let keyring =
                    beacon_aws::config::keyring(&Env::process(), &aws_config().await).await?;
                (Box::new(keyring), tenant)
            }
        };
        let recipient = Recipient {
            tenant_id: tenant,
            campaign_id: self.campaign.clone(),
            message_id: self.message.clone(),
            recipient_id: self.recipient.clone(),
        };
        Ok((signer, recipient))
    }

    fn expires_at(&self) -> Result<u32> {
        let at = chrono::Utc::now().timestamp() + i64::from(self.ttl_days) * 86_400;
        u32::try_from(at).context("--ttl-days reaches past 2106")
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Instrument {
            link,
            input,
            out,
            honeypot,
        } => {
            let (key, recipient) = link.signer().await?;
            let signer = LinkSigner::new(key.as_ref(), &link.base_url)?;
            let mut html = String::new();
            if input.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut html)?;
            } else {
                html = std::fs::read_to_string(&input)
                    .with_context(|| format!("reading {}", input.display()))?;
            }
            let result = instrument_html_with(
                &html,
                &signer,
                &recipient,
                link.expires_at()?,
                Options { honeypot },
            )?;
            if out.as_os_str() == "-" {
                std::io::stdout().write_all(result.html.as_bytes())?;
            } else {
                std::fs::write(&out, &result.html)
                    .with_context(|| format!("writing {}", out.display()))?;
            }
            eprintln!(
                "{} links tracked, {} opted out, open pixel {}{}",
                result.links_tracked,
                result.links_ignored,
                if result.pixel_inserted {
                    "added"
                } else {
                    "not added"
                },
                match (honeypot, result.honeypot_inserted) {
                    (true, true) => ", honeypot link added",
                    (true, false) => ", no honeypot (the email has no link to track)",
                    _ => "",
                }
            );
        }
        Command::SignUrl { link, url, open } => {
            let (key, recipient) = link.signer().await?;
            let signer = LinkSigner::new(key.as_ref(), &link.base_url)?;
            let signed = if open {
                signer.open_url(&recipient, link.expires_at()?)?
            } else {
                let url = url.context("give the URL to sign, or --open for the pixel URL")?;
                let url = trackable_url(&url)
                    .with_context(|| format!("`{url}` is not an absolute http(s) URL"))?;
                signer.click_url(&recipient, &url, link.expires_at()?)?
            };
            println!("{signed}");
        }
        Command::Apikey(ApiKeyCommand::Create {
            tenant,
            name,
            table,
        }) => {
            beacon_domain::tenant::check(&tenant)?;
            let aws = aws_config().await;
            let key = new_api_key();
            let record = ApiKeyRecord {
                key_hash: hash_api_key(&key),
                tenant_id: tenant.clone(),
                name,
                created_at: chrono::Utc::now().to_rfc3339(),
                revoked: false,
            };
            DynamoApiKeys::new(aws_sdk_dynamodb::Client::new(&aws), &table)
                .save(&record)
                .await?;
            eprintln!(
                "created API key for tenant `{tenant}` (shown once; only its hash is stored):"
            );
            println!("{key}");
        }
        Command::Apikey(ApiKeyCommand::Revoke { key, table }) => {
            let aws = aws_config().await;
            let store = DynamoApiKeys::new(aws_sdk_dynamodb::Client::new(&aws), &table);
            let mut record = store
                .find(&hash_api_key(&key))
                .await?
                .context("no such API key")?;
            record.revoked = true;
            store.save(&record).await?;
            eprintln!("revoked the key of tenant `{}`", record.tenant_id);
        }
        Command::TrackingKey(TrackingKeyCommand::Generate { id }) => {
            let secret: [u8; 48] = rand::random();
            let json = serde_json::json!({"active": id, id: URL_SAFE_NO_PAD.encode(secret)});
            println!("{json}");
        }
        Command::TrackingKey(TrackingKeyCommand::Derive { tenant, key_id }) => {
            let keyring = beacon_aws::config::keyring(&Env::process(), &aws_config().await).await?;
            let key = keyring.tenant_key(&tenant, key_id.as_deref())?;
            eprintln!(
                "tenant key of `{tenant}` under master key `{}`: it signs links for `{tenant}` only; derive it again after rotating the master key",
                key.key_id()
            );
            println!("{}", key.to_json());
        }
        Command::Lake(command) => lake::run(command).await?,
        Command::Report(command) => report::run(command).await?,
        Command::Networks(command) => networks::run(command)?,
        Command::Alert(command) => alert::run(command).await?,
        Command::Suppression(command) => suppression::run(command).await?,
        Command::Provider(command) => provider::run(command).await?,
        Command::Dashboard(command) => dashboard::run(command).await?,
    }
    Ok(())
}
