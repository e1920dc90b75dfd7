//! `beacon alert`: a tenant's alert rules, budget and notice destinations, and an
//! evaluation now. `evaluate` runs in-process exactly what the alerts function runs on
//! its schedule (same code, same tables, SES and webhooks).

use anyhow::{bail, Context, Result};
use beacon_aws::config::aws_config;
use beacon_aws::dynamo::alerts::DynamoAlerts;
use beacon_aws::dynamo::rollup_reader::DynamoRollupReader;
use beacon_aws::ses::SesMailer;
use beacon_aws::webhook::HttpWebhooks;
use beacon_aws::webhook::SystemLookup;
use beacon_domain::alert::evaluate::{Alerter, Settings};
use beacon_domain::alert::outbound::Policy;
use beacon_domain::alert::store::{rule_key, AlertStore, AlertStoreExt, BUDGET_KEY, NOTIFY_KEY};
use beacon_domain::alert::{
    defaults, effective, is_builtin, new_secret, validate_email, validate_webhook_url, verify,
    Budget, Destinations, RuleInput, Status, Webhook,
};
use beacon_domain::config::Env;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args)]
pub struct Table {
    /// The alerts table (stack output AlertsTableName).
    #[arg(long, env = "BEACON_ALERTS_TABLE")]
    table: String,
}

/// One rule of one tenant.
#[derive(Args)]
pub struct RuleRef {
    #[arg(long)]
    tenant: String,
    #[arg(long)]
    id: String,
    #[command(flatten)]
    table: Table,
}

#[derive(Subcommand)]
pub enum AlertCommand {
    /// Add or replace a rule (from flags, or a JSON file with --from-file). A rule with
    /// a built-in's id (ses-bounce-rate, ses-complaint-rate) replaces it.
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long, required_unless_present = "from_file")]
        id: Option<String>,
        /// bounce_rate, complaint_rate, delivery_rate, open_rate, error_rate or spend.
        #[arg(long, required_unless_present = "from_file")]
        metric: Option<String>,
        /// >, >=, <, <= (or above, at_least, below, at_most).
        #[arg(long)]
        operator: Option<String>,
        /// A percentage for rates ("5%"), an amount for spend (250).
        #[arg(long)]
        threshold: Option<String>,
        /// Anomaly rule instead: delivery rate more than this many standard deviations
        /// below its 7-day hourly baseline.
        #[arg(long)]
        sigmas: Option<f64>,
        /// Whole hours or days, 1h to 7d (default 24h; 1h for anomalies).
        #[arg(long)]
        window: Option<String>,
        /// The least traffic the window must hold to be judged (default 100 for rates).
        #[arg(long)]
        min_volume: Option<u64>,
        /// A JSON rule: {"id", "metric", "operator", "threshold", "window", ...}.
        #[arg(long, conflicts_with_all = ["id", "metric", "operator", "threshold", "sigmas", "window", "min_volume"])]
        from_file: Option<PathBuf>,
        #[command(flatten)]
        table: Table,
    },
    /// The tenant's rules in force (built-in and own), each with its state.
    List {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        table: Table,
    },
    /// Remove a rule (a built-in rule is disabled instead).
    Remove(RuleRef),
    /// Turn a rule off (it is listed, not judged).
    Disable(RuleRef),
    /// Turn a rule back on.
    Enable(RuleRef),
    /// Where the tenant's notices go: email addresses and one webhook. A new webhook
    /// gets a signing secret, printed once.
    Notify {
        #[arg(long)]
        tenant: String,
        /// Email addresses (repeatable; replaces the list when given).
        #[arg(long = "email")]
        emails: Vec<String>,
        /// The webhook URL: https to a public address (http to this machine only with
        /// BEACON_ALLOW_LOCAL_WEBHOOKS=1, for local development).
        #[arg(long)]
        webhook: Option<String>,
        /// Make a new signing secret for the webhook.
        #[arg(long)]
        rotate_secret: bool,
        /// Remove every destination.
        #[arg(long, conflicts_with_all = ["emails", "webhook", "rotate_secret"])]
        clear: bool,
        #[command(flatten)]
        table: Table,
    },
    /// The monthly budget: notices at 75%, 90% and 100% of it (UTC months).
    Budget {
        #[arg(long)]
        tenant: String,
        /// The amount, in the currency of the events' costs.
        #[arg(long, required_unless_present = "clear")]
        monthly: Option<f64>,
        #[arg(long)]
        currency: Option<String>,
        #[arg(long, conflicts_with_all = ["monthly", "currency"])]
        clear: bool,
        #[command(flatten)]
        table: Table,
    },
    /// Judge the rules now (every tenant, or one) and send what changed.
    Evaluate {
        #[arg(long)]
        tenant: Option<String>,
        /// The rollups table (stack output RollupsTableName).
        #[arg(long, env = "BEACON_ROLLUPS_TABLE")]
        rollups_table: String,
        /// The SES identity notices come from.
        #[arg(long, env = "BEACON_ALERTS_FROM")]
        from: String,
        #[command(flatten)]
        table: Table,
    },
    /// Check a webhook request's signature as a receiver would.
    Verify {
        /// The signing secret (whsec_...).
        #[arg(long, env = "BEACON_WEBHOOK_SECRET")]
        secret: String,
        /// The Beacon-Signature header.
        #[arg(long)]
        signature: String,
        /// The request body, as received.
        #[arg(long)]
        body_file: PathBuf,
        /// Seconds the signature's time may be off.
        #[arg(long, default_value_t = 300)]
        tolerance: i64,
    },
}

fn store(aws: &aws_config::SdkConfig, table: &Table) -> DynamoAlerts {
    DynamoAlerts::new(aws_sdk_dynamodb::Client::new(aws), &table.table)
}

pub async fn run(command: AlertCommand) -> Result<()> {
    if let AlertCommand::Verify {
        secret,
        signature,
        body_file,
        tolerance,
    } = &command
    {
        let body =
            std::fs::read(body_file).with_context(|| format!("reading {}", body_file.display()))?;
        verify(
            secret,
            signature,
            &body,
            chrono::Utc::now().timestamp(),
            *tolerance,
        )
        .map_err(anyhow::Error::msg)?;
        println!("signature valid");
        return Ok(());
    }
    let aws = aws_config().await;
    match command {
        AlertCommand::Add {
            tenant,
            id,
            metric,
            operator,
            threshold,
            sigmas,
            window,
            min_volume,
            from_file,
            table,
        } => {
            check_tenant(&tenant)?;
            let input: RuleInput = match from_file {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    serde_json::from_str(&text)
                        .with_context(|| format!("{} is not an alert rule", path.display()))?
                }
                None => RuleInput {
                    id: id.unwrap_or_default(),
                    metric: metric.unwrap_or_default(),
                    operator,
                    // As typed: "5%" for rates, "250" for spend (both read from text).
                    threshold: threshold.map(serde_json::Value::String),
                    sigmas,
                    window,
                    min_volume,
                    enabled: None,
                },
            };
            let rule = input.validate()?;
            store(&aws, &table)
                .put_json(&tenant, &rule_key(&rule.id), &rule, None)
                .await?;
            eprintln!(
                "rule `{}` of tenant `{tenant}`: {}",
                rule.id,
                rule.describe()
            );
        }
        AlertCommand::List { tenant, table } => {
            let cfg = store(&aws, &table).tenant(&tenant).await?;
            for rule in effective(&cfg.rules) {
                let state = cfg.states.get(&rule.id).cloned().unwrap_or_default();
                let status = match (rule.enabled, state.status) {
                    (false, _) => "disabled".to_string(),
                    (true, Status::Ok) => "ok".to_string(),
                    (true, Status::Firing) => {
                        format!("FIRING since {}", state.since.as_deref().unwrap_or("?"))
                    }
                };
                let origin = if is_builtin(&rule.id) {
                    " (built-in)"
                } else {
                    ""
                };
                println!("{}{origin}: {}  [{status}]", rule.id, rule.describe());
                if !state.unsent.is_empty() {
                    println!("  {} notice(s) not yet delivered", state.unsent.len());
                }
            }
            match &cfg.budget {
                Some(b) => println!(
                    "budget: {:.2}{} a month; notified this month up to {}%",
                    b.monthly,
                    b.currency
                        .as_deref()
                        .map(|c| format!(" {c}"))
                        .unwrap_or_default(),
                    cfg.budget_state.level
                ),
                None => println!("budget: none"),
            }
            let d = &cfg.destinations;
            println!("notices to: {}", d.describe());
            if d.is_empty() {
                eprintln!("warning: no destinations; rules are judged but nobody is told (beacon alert notify)");
            }
        }
        AlertCommand::Remove(RuleRef { tenant, id, table }) => {
            let alerts = store(&aws, &table);
            if is_builtin(&id) {
                set_enabled(&alerts, &tenant, &id, false).await?;
                eprintln!(
                    "`{id}` is built in: disabled it instead (beacon alert enable brings it back)"
                );
            } else if alerts.delete(&tenant, &rule_key(&id)).await? {
                alerts
                    .delete(&tenant, &beacon_domain::alert::store::state_key(&id))
                    .await?;
                eprintln!("removed rule `{id}` of tenant `{tenant}`");
            } else {
                bail!("tenant `{tenant}` has no rule `{id}`");
            }
        }
        AlertCommand::Disable(RuleRef { tenant, id, table }) => {
            set_enabled(&store(&aws, &table), &tenant, &id, false).await?;
            eprintln!("disabled `{id}`");
        }
        AlertCommand::Enable(RuleRef { tenant, id, table }) => {
            set_enabled(&store(&aws, &table), &tenant, &id, true).await?;
            eprintln!("enabled `{id}`");
        }
        AlertCommand::Notify {
            tenant,
            emails,
            webhook,
            rotate_secret,
            clear,
            table,
        } => {
            check_tenant(&tenant)?;
            let alerts = store(&aws, &table);
            let mut to = alerts.tenant(&tenant).await?.destinations;
            if clear {
                to = Destinations::default();
            }
            if !emails.is_empty() {
                for e in &emails {
                    validate_email(e).map_err(anyhow::Error::msg)?;
                }
                to.emails = emails;
            }
            let mut new_secret_made = None;
            if let Some(url) = webhook {
                let checked = validate_webhook_url(&url, webhook_policy()?, &SystemLookup)
                    .await
                    .map_err(anyhow::Error::msg)?;
                if let Some(why) = &checked.unresolved {
                    eprintln!("warning: {why}; its addresses are checked on every delivery");
                }
                let url = checked.url.to_string();
                let secret = match &to.webhook {
                    Some(w) if !rotate_secret => w.secret.clone(),
                    _ => {
                        let s = new_secret();
                        new_secret_made = Some(s.clone());
                        s
                    }
                };
                to.webhook = Some(Webhook { url, secret });
            } else if rotate_secret {
                let w = to
                    .webhook
                    .as_mut()
                    .context("no webhook to rotate the secret of")?;
                w.secret = new_secret();
                new_secret_made = Some(w.secret.clone());
            }
            alerts.put_json(&tenant, NOTIFY_KEY, &to, None).await?;
            eprintln!("notices of `{tenant}` go to: {}", to.describe());
            if let Some(secret) = new_secret_made {
                eprintln!("webhook signing secret (shown once; verify Beacon-Signature with it):");
                println!("{secret}");
            }
        }
        AlertCommand::Budget {
            tenant,
            monthly,
            currency,
            clear,
            table,
        } => {
            check_tenant(&tenant)?;
            let alerts = store(&aws, &table);
            if clear {
                alerts.delete(&tenant, BUDGET_KEY).await?;
                eprintln!("no budget for `{tenant}`");
            } else {
                let budget = Budget::new(monthly.unwrap_or_default(), currency)
                    .map_err(anyhow::Error::msg)?;
                alerts.put_json(&tenant, BUDGET_KEY, &budget, None).await?;
                eprintln!(
                    "budget of `{tenant}`: {:.2} a month; notices at 75%, 90% and 100%",
                    budget.monthly
                );
            }
        }
        AlertCommand::Evaluate {
            tenant,
            rollups_table,
            from,
            table,
        } => {
            let dynamo = aws_sdk_dynamodb::Client::new(&aws);
            let reader = DynamoRollupReader::new(dynamo, rollups_table);
            let alerts = store(&aws, &table);
            let mailer = SesMailer::new(aws_sdk_sesv2::Client::new(&aws));
            let webhooks = HttpWebhooks::new(std::time::Duration::from_secs(5), webhook_policy()?);
            let settings = Settings { from };
            let alerter = Alerter {
                reader: &reader,
                store: &alerts,
                mailer: &mailer,
                webhooks: &webhooks,
                settings: &settings,
            };
            let now = chrono::Utc::now();
            let outcomes = match tenant {
                Some(t) => vec![alerter.evaluate(&t, now).await],
                None => alerter.run_all(now).await.map_err(anyhow::Error::msg)?,
            };
            println!("{}", serde_json::to_string_pretty(&outcomes)?);
            if let Some(o) = outcomes.iter().find(|o| o.error.is_some()) {
                bail!(
                    "tenant `{}` was not evaluated: {}",
                    o.tenant,
                    o.error.as_deref().unwrap_or_default()
                );
            }
        }
        AlertCommand::Verify { .. } => unreachable!("handled above"),
    }
    Ok(())
}

/// Where webhooks may go: public https addresses, and this machine too with
/// `BEACON_ALLOW_LOCAL_WEBHOOKS=1` (local development).
fn webhook_policy() -> Result<Policy> {
    Ok(Policy::from_env(&Env::process())?)
}

fn check_tenant(tenant: &str) -> Result<()> {
    beacon_domain::tenant::check(tenant).map_err(anyhow::Error::from)
}

async fn set_enabled(alerts: &DynamoAlerts, tenant: &str, id: &str, enabled: bool) -> Result<()> {
    let cfg = alerts.tenant(tenant).await?;
    let mut rule = cfg
        .rules
        .iter()
        .find(|r| r.id == id)
        .cloned()
        .or_else(|| defaults().into_iter().find(|d| d.id == id))
        .with_context(|| format!("tenant `{tenant}` has no rule `{id}`"))?;
    rule.enabled = enabled;
    alerts.put_json(tenant, &rule_key(id), &rule, None).await?;
    Ok(())
}
