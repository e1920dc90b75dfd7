//! `beacon suppression`: look recipients up on a tenant's suppression list, add or
//! remove them by hand, and export a channel's list as CSV or JSON lines.

use anyhow::{bail, Context, Result};
use beacon_aws::config::aws_config;
use beacon_aws::dynamo::audience::DynamoAudience;
use beacon_domain::audience::engagement::Changes;
use beacon_domain::audience::reader::AudienceReader;
use beacon_domain::audience::suppression::{Reason, Suppression};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;

#[derive(Args)]
pub struct Where {
    #[arg(long)]
    tenant: String,
    #[arg(long, default_value = "email")]
    channel: String,
    /// The rollups table, which holds the list (stack output RollupsTableName).
    #[arg(long, env = "BEACON_ROLLUPS_TABLE")]
    table: String,
}

#[derive(Subcommand)]
pub enum SuppressionCommand {
    /// Whether recipients are suppressed (exit status 1 if any is).
    Check {
        #[command(flatten)]
        at: Where,
        #[arg(required = true)]
        recipients: Vec<String>,
    },
    /// Put recipients on the list by hand (reason `manual`).
    Add {
        #[command(flatten)]
        at: Where,
        #[arg(required = true)]
        recipients: Vec<String>,
    },
    /// Take a recipient off the list (a new hard bounce, complaint or unsubscribe puts
    /// them back).
    Remove {
        #[command(flatten)]
        at: Where,
        recipient: String,
    },
    /// Write the channel's whole list, in recipient order.
    Export {
        #[command(flatten)]
        at: Where,
        /// csv (recipient, since, reasons, campaign) or jsonl.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Where to write (`-` for standard output).
        #[arg(long, default_value = "-")]
        out: PathBuf,
    },
}

pub async fn run(command: SuppressionCommand) -> Result<()> {
    let aws = aws_config().await;
    let audience = |at: &Where| DynamoAudience::new(aws_sdk_dynamodb::Client::new(&aws), &at.table);
    match command {
        SuppressionCommand::Check { at, recipients } => {
            let found = audience(&at)
                .suppressed(&at.tenant, &at.channel, &recipients)
                .await?;
            for r in &recipients {
                match found.get(r) {
                    Some(e) => println!(
                        "{r}: suppressed since {} ({})",
                        e.since,
                        e.reasons
                            .keys()
                            .map(|r| r.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    None => println!("{r}: not suppressed"),
                }
            }
            if !found.is_empty() {
                std::process::exit(1);
            }
        }
        SuppressionCommand::Add { at, recipients } => {
            let now = chrono::Utc::now().timestamp_millis();
            let entries: Vec<Suppression> = recipients
                .iter()
                .map(|r| Suppression {
                    tenant: at.tenant.clone(),
                    channel: at.channel.clone(),
                    recipient: r.clone(),
                    reason: Reason::Manual,
                    at_ms: now,
                    campaign: None,
                })
                .collect();
            audience(&at).write(&entries, &Changes::default()).await?;
            eprintln!(
                "suppressed {} recipient(s) on {}",
                entries.len(),
                at.channel
            );
        }
        SuppressionCommand::Remove { at, recipient } => {
            if !audience(&at)
                .unsuppress(&at.tenant, &at.channel, &recipient)
                .await?
            {
                bail!(
                    "`{recipient}` is not on the {} list of `{}`",
                    at.channel,
                    at.tenant
                );
            }
            eprintln!("removed `{recipient}` from the {} list", at.channel);
        }
        SuppressionCommand::Export { at, format, out } => {
            if format != "csv" && format != "jsonl" {
                bail!("--format must be csv or jsonl, not `{format}`");
            }
            let sink: Box<dyn Write> = if out.as_os_str() == "-" {
                Box::new(std::io::stdout().lock())
            } else {
                Box::new(
                    std::fs::File::create(&out)
                        .with_context(|| format!("creating {}", out.display()))?,
                )
            };
            enum Out {
                Csv(Box<csv::Writer<Box<dyn Write>>>),
                Lines(Box<dyn Write>),
            }
            let mut out = if format == "csv" {
                let mut w = csv::Writer::from_writer(sink);
                w.write_record(["recipient", "channel", "since", "reasons", "campaign"])?;
                Out::Csv(Box::new(w))
            } else {
                Out::Lines(sink)
            };
            let store = audience(&at);
            let (mut cursor, mut total) = (None::<String>, 0usize);
            loop {
                let page = store
                    .suppression_page(&at.tenant, &at.channel, cursor.as_deref(), 1000)
                    .await?;
                for e in &page.items {
                    match &mut out {
                        Out::Csv(w) => {
                            let reasons: Vec<&str> = e.reasons.keys().map(|r| r.as_str()).collect();
                            w.write_record([
                                e.recipient.as_str(),
                                e.channel.as_str(),
                                e.since.as_str(),
                                &reasons.join(";"),
                                e.campaign.as_deref().unwrap_or(""),
                            ])?;
                        }
                        Out::Lines(w) => writeln!(w, "{}", serde_json::to_string(e)?)?,
                    }
                }
                total += page.items.len();
                eprint!("\rexported {total} entries");
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            match &mut out {
                Out::Csv(w) => w.flush()?,
                Out::Lines(w) => w.flush()?,
            }
            eprintln!(
                "\rexported {total} entries of the {} list of `{}`",
                at.channel, at.tenant
            );
        }
    }
    Ok(())
}
