//! `beacon report`: manage a tenant's scheduled reports and run one now. `run` does
//! in-process exactly what the report function does on demand (same code, same
//! tables, bucket and SES), and can also write the files to a local folder.

use anyhow::{bail, Context, Result};
use beacon_aws::config::aws_config;
use beacon_aws::dynamo::rollup_reader::DynamoRollupReader;
use beacon_aws::ses::SesMailer;
use beacon_report::definition::DefinitionInput;
use beacon_report::model::Format;
use beacon_report::period::Period;
use beacon_report::run::{Reporter, Settings};
use beacon_report::store::{Definitions, DynamoReports, Runs, S3ReportFiles};
use beacon_report::{data, render};
use chrono::Utc;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args)]
pub struct Tables {
    /// The reports table (stack output ReportsTableName).
    #[arg(long, env = "BEACON_REPORTS_TABLE")]
    table: String,
}

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Define a scheduled report (from flags, or a JSON file with --from-file).
    Create {
        #[arg(long)]
        tenant: String,
        /// Lowercase letters, digits and `-`, unique per tenant.
        #[arg(long, required_unless_present = "from_file")]
        id: Option<String>,
        #[arg(long, required_unless_present = "from_file")]
        name: Option<String>,
        /// daily, weekly (ISO weeks, from Monday) or monthly.
        #[arg(long, required_unless_present = "from_file")]
        cadence: Option<String>,
        /// IANA time zone the periods are days, weeks and months of.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// Limit the report to these campaigns (repeatable).
        #[arg(long = "campaign")]
        campaigns: Vec<String>,
        /// Limit the report to these channels, `email` or `email/ses` (repeatable).
        #[arg(long = "channel")]
        channels: Vec<String>,
        /// Summary metrics (repeatable; default: the usual ten). See docs/reports.md.
        #[arg(long = "metric")]
        metrics: Vec<String>,
        /// series, top_links, channels, deliverability (repeatable; default: all the scope allows).
        #[arg(long = "breakdown")]
        breakdowns: Vec<String>,
        /// html, csv, json, xlsx, pdf (repeatable; default html, csv, xlsx, pdf).
        #[arg(long = "format")]
        formats: Vec<String>,
        /// Who receives it (repeatable).
        #[arg(long = "recipient")]
        recipients: Vec<String>,
        /// How many links the top-links section lists (default 100, at most 1000).
        #[arg(long)]
        top_links: Option<usize>,
        /// A JSON definition (fields as above: id, name, cadence, timezone, campaigns,
        /// channels, metrics, breakdowns, formats, recipients, top_links).
        #[arg(long, conflicts_with_all = ["id", "name", "cadence"])]
        from_file: Option<PathBuf>,
        #[command(flatten)]
        tables: Tables,
    },
    /// List a tenant's reports.
    List {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        tables: Tables,
    },
    /// Show a report's definition and its runs.
    Show {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        tables: Tables,
    },
    /// Delete a report (its files and run history stay).
    Delete {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        tables: Tables,
    },
    /// Render a report now and send it (outside the schedule's once-per-period record).
    Run {
        #[arg(long)]
        tenant: String,
        id: String,
        /// A period key of the report's cadence (2026-11-22, 2026-W47, 2026-11);
        /// default: the one that has just closed.
        #[arg(long)]
        period: Option<String>,
        /// Also write the files here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Render and write files only: nothing to S3 or SES.
        #[arg(long, requires = "out")]
        no_send: bool,
        #[command(flatten)]
        tables: Tables,
        /// The rollups table (stack output RollupsTableName).
        #[arg(long, env = "BEACON_ROLLUPS_TABLE")]
        rollups_table: String,
        /// The reports bucket (stack output ReportsBucketName).
        #[arg(
            long,
            env = "BEACON_REPORTS_BUCKET",
            required_unless_present = "no_send"
        )]
        bucket: Option<String>,
        /// The verified SES sender.
        #[arg(long, env = "BEACON_REPORTS_FROM", required_unless_present = "no_send")]
        from: Option<String>,
    },
}

pub async fn run(command: ReportCommand) -> Result<()> {
    let aws = aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    let reports = |t: &Tables| DynamoReports::new(dynamo.clone(), &t.table);
    match command {
        ReportCommand::Create {
            tenant,
            id,
            name,
            cadence,
            timezone,
            campaigns,
            channels,
            metrics,
            breakdowns,
            formats,
            recipients,
            top_links,
            from_file,
            tables,
        } => {
            let input = match from_file {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    serde_json::from_str::<DefinitionInput>(&text)
                        .with_context(|| format!("{} is not a report definition", path.display()))?
                }
                None => DefinitionInput {
                    id: id.unwrap_or_default(),
                    name: name.unwrap_or_default(),
                    campaigns,
                    channels,
                    cadence: cadence.unwrap_or_default(),
                    timezone,
                    metrics,
                    breakdowns,
                    formats,
                    recipients,
                    top_links,
                },
            };
            let def = input.validate(&tenant, Utc::now())?;
            reports(&tables).create(&def).await?;
            println!("{}", serde_json::to_string_pretty(&def)?);
            eprintln!(
                "report `{}` created: {} in {}, first sent after the current period closes",
                def.id,
                def.cadence.name(),
                def.timezone
            );
        }
        ReportCommand::List { tenant, tables } => {
            let defs = reports(&tables).list(&tenant).await?;
            if defs.is_empty() {
                eprintln!("tenant `{tenant}` has no reports");
            }
            for d in defs {
                println!(
                    "{}\t{}\t{} ({})\t{}\t{}",
                    d.id,
                    d.name,
                    d.cadence.name(),
                    d.timezone,
                    d.formats
                        .iter()
                        .map(|f| f.extension())
                        .collect::<Vec<_>>()
                        .join(","),
                    d.recipients.join(",")
                );
            }
        }
        ReportCommand::Show { tenant, id, tables } => {
            let store = reports(&tables);
            let Some(def) = store.get(&tenant, &id).await? else {
                bail!("tenant `{tenant}` has no report `{id}`");
            };
            let runs = store.history(&tenant, &id).await?;
            let runs: Vec<serde_json::Value> = runs
                .iter()
                .map(|r| {
                    serde_json::json!({"period": r.period, "status": r.status.name(),
                        "attempts": r.attempts, "error": r.error, "files": r.files,
                        "message_id": r.message_id, "updated_at": r.updated_at})
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"definition": def, "runs": runs})
                )?
            );
        }
        ReportCommand::Delete { tenant, id, tables } => {
            if !reports(&tables).delete(&tenant, &id).await? {
                bail!("tenant `{tenant}` has no report `{id}`");
            }
            eprintln!("report `{id}` deleted");
        }
        ReportCommand::Run {
            tenant,
            id,
            period,
            out,
            no_send,
            tables,
            rollups_table,
            bucket,
            from,
        } => {
            let Some(def) = reports(&tables).get(&tenant, &id).await? else {
                bail!("tenant `{tenant}` has no report `{id}`");
            };
            let period = match period {
                None => Period::just_closed(def.cadence, def.tz(), Utc::now()),
                Some(key) => Period::parse_key(def.cadence, def.tz(), &key).with_context(|| {
                    format!(
                        "`{key}` is not a {} period (e.g. 2026-11-22, 2026-W47, 2026-11)",
                        def.cadence.name()
                    )
                })?,
            };
            let reader = DynamoRollupReader::new(dynamo.clone(), &rollups_table);
            let started = std::time::Instant::now();
            eprintln!("rendering `{id}` for {} ({})", period.label(), period.key());
            // Sending reads and renders the report once; the local copy reuses its numbers.
            let data = if no_send {
                data::build(&reader, &def, period, Utc::now()).await?
            } else {
                let settings = Settings {
                    from: from.expect("required unless --no-send"),
                    ..Settings::default()
                };
                let files = S3ReportFiles::new(
                    beacon_aws::s3::client(&aws),
                    bucket.expect("required unless --no-send"),
                );
                let mailer = SesMailer::new(aws_sdk_sesv2::Client::new(&aws));
                let reporter = Reporter {
                    reader: &reader,
                    files: &files,
                    mailer: &mailer,
                    settings: &settings,
                };
                let (prepared, message_id) = reporter.send_now(&def, period, Utc::now()).await?;
                for k in &prepared.keys {
                    eprintln!("  stored s3://{}/{k}", files.bucket());
                }
                eprintln!(
                    "  sent to {} (SES message {message_id})",
                    prepared.recipients.join(", ")
                );
                prepared.data
            };
            if let Some(dir) = &out {
                write_local(dir, &def.id, &def.formats, &data)?;
            }
            eprintln!("done in {:.1?}", started.elapsed());
        }
    }
    Ok(())
}

/// The report's files in `dir`, the HTML always, its chart beside it as `chart.png`.
fn write_local(
    dir: &std::path::Path,
    id: &str,
    formats: &[Format],
    data: &beacon_report::model::ReportData,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut formats = formats.to_vec();
    if !formats.contains(&Format::Html) {
        formats.push(Format::Html);
    }
    let chart = render::chart_png(data)?;
    for f in formats {
        let body = if f == Format::Html && chart.is_some() {
            render::html(data, Some("chart.png")).into_bytes()
        } else {
            render::render(data, f)?
        };
        let path = dir.join(format!("{id}-{}.{}", data.period.key, f.extension()));
        std::fs::write(&path, body)?;
        eprintln!("  wrote {}", path.display());
    }
    if let Some(png) = chart {
        let path = dir.join("chart.png");
        std::fs::write(&path, png)?;
        eprintln!("  wrote {}", path.display());
    }
    Ok(())
}
