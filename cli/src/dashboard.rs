//! `beacon dashboard`: read-only dashboard links (sign, list, revoke).
//!
//! A link is signed with the dashboard keys (`BEACON_DASHBOARD_KEYS` or the secret
//! named by `BEACON_DASHBOARD_KEYS_SECRET`, the stack's `DashboardKeysSecretArn`) and
//! recorded in the rollups table, where the stats function checks it on every request:
//! `revoke` stops it at once.

use anyhow::{bail, Context, Result};
use beacon_aws::config::aws_config;
use beacon_aws::dynamo::dashboard_links::DynamoDashboardLinks;
use beacon_domain::config::Env;
use beacon_domain::dashboard::access::{issue, open_url, parse_lifetime, LinkStore};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct Table {
    /// The rollups table (stack output RollupsTableName).
    #[arg(long, env = "BEACON_ROLLUPS_TABLE")]
    table: String,
}

#[derive(Subcommand)]
pub enum DashboardCommand {
    /// Print a signed, read-only dashboard link for a tenant (or one of its campaigns).
    Link {
        #[arg(long)]
        tenant: String,
        /// Show this campaign only.
        #[arg(long)]
        campaign: Option<String>,
        /// How long the link works: 30m, 12h, 7d (default 7d, at most 90d).
        #[arg(long, default_value = "7d")]
        expires: String,
        /// Who or what the link is for, shown by `links`.
        #[arg(long)]
        note: Option<String>,
        /// The API's public URL (stack output ApiUrl).
        #[arg(long, env = "BEACON_PUBLIC_BASE_URL")]
        base_url: String,
        #[command(flatten)]
        table: Table,
    },
    /// A tenant's links, newest first (id, scope, expiry, revoked).
    Links {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        table: Table,
    },
    /// Revoke a link by its id: it stops working on the next request.
    Revoke {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        table: Table,
    },
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn store(table: &Table) -> DynamoDashboardLinks {
    let aws = aws_config().await;
    DynamoDashboardLinks::new(aws_sdk_dynamodb::Client::new(&aws), table.table.clone())
}

pub async fn run(command: DashboardCommand) -> Result<()> {
    match command {
        DashboardCommand::Link {
            tenant,
            campaign,
            expires,
            note,
            base_url,
            table,
        } => {
            beacon_domain::tenant::check(&tenant)?;
            if let Some(c) = &campaign {
                beacon_domain::event::validate::check_campaign(c)?;
            }
            let lifetime = parse_lifetime(&expires).map_err(anyhow::Error::msg)?;
            let aws = aws_config().await;
            let keys = beacon_aws::config::dashboard_keys(&Env::process(), &aws)
                .await?
                .context("set BEACON_DASHBOARD_KEYS_SECRET (stack output DashboardKeysSecretArn) or BEACON_DASHBOARD_KEYS")?;
            let (record, token) = issue(
                &keys,
                &store(&table).await,
                &tenant,
                campaign.as_deref(),
                lifetime,
                note,
                Utc::now(),
            )
            .await?;
            let link = record.link;
            let until = DateTime::from_timestamp(link.expires_at, 0).expect("in range");
            eprintln!(
                "link {} for {} until {} (revoke: beacon dashboard revoke --tenant {tenant} {})",
                link.id,
                match &campaign {
                    Some(c) => format!("campaign `{c}` of `{tenant}`"),
                    None => format!("tenant `{tenant}`"),
                },
                rfc3339(until),
                link.id
            );
            println!("{}", open_url(&base_url, &token));
        }
        DashboardCommand::Links { tenant, table } => {
            beacon_domain::tenant::check(&tenant)?;
            let links = store(&table).await.list(&tenant).await?;
            if links.is_empty() {
                eprintln!("`{tenant}` has no dashboard links");
            }
            let now = Utc::now().timestamp();
            for r in links {
                let state = match (&r.revoked_at, r.link.expires_at < now) {
                    (Some(at), _) => format!("revoked {at}"),
                    (None, true) => "expired".into(),
                    (None, false) => "active".into(),
                };
                let until = DateTime::from_timestamp(r.link.expires_at, 0).expect("in range");
                println!(
                    "{}\t{}\t{}\tuntil {}\t{}\t{}",
                    r.link.id,
                    r.link.campaign.as_deref().unwrap_or("(all campaigns)"),
                    state,
                    rfc3339(until),
                    r.created_at,
                    r.note.unwrap_or_default()
                );
            }
        }
        DashboardCommand::Revoke { tenant, id, table } => {
            beacon_domain::tenant::check(&tenant)?;
            let at = rfc3339(Utc::now());
            if !store(&table).await.revoke(&tenant, &id, &at).await? {
                bail!("`{tenant}` has no dashboard link `{id}` (see `beacon dashboard links`)");
            }
            eprintln!("revoked link {id} of `{tenant}`");
        }
    }
    Ok(())
}
