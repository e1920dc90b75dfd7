//! `beacon-local`: run Beacon on one machine against the AWS emulator.

use anyhow::{Context, Result};
use beacon_local::demo::{self, DemoOptions};
use beacon_local::gateway::{self, GatewayOptions};
use beacon_local::stack;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "beacon-local",
    about = "Beacon on one machine, against the local AWS emulator"
)]
struct Cli {
    /// The emulator's endpoint (scripts/moto.sh sets it).
    #[arg(long, env = "AWS_ENDPOINT_URL", global = true)]
    endpoint: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the template's stream, tables, buckets and secrets in the emulator.
    Provision {
        #[arg(long, default_value = "beacon")]
        stack: String,
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        public_base_url: String,
    },
    /// Provision, then serve the HTTP functions on the template's routes.
    Serve {
        #[arg(long, default_value = "beacon")]
        stack: String,
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        /// Take the client address from X-Forwarded-For (for simulated traffic).
        #[arg(long)]
        trust_forwarded_for: bool,
        /// The tenant whose dashboard link is printed.
        #[arg(long, default_value = demo::TENANT)]
        tenant: String,
    },
    /// Run the end-to-end demo: a simulated campaign through the real endpoints.
    Demo {
        #[arg(long, default_value_t = 1000)]
        recipients: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value = "out")]
        out: PathBuf,
        #[arg(long, default_value = "beacon")]
        stack: String,
        /// After the demo, keep serving the dashboard until Ctrl-C: `always`, `never`, or
        /// `auto` (when stdin is a terminal and CI is not set).
        #[arg(long, value_enum, default_value_t = Linger::Auto)]
        serve: Linger,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Linger {
    Auto,
    Always,
    Never,
}

impl Linger {
    fn wanted(self) -> bool {
        use std::io::IsTerminal;
        match self {
            Linger::Always => true,
            Linger::Never => false,
            Linger::Auto => std::io::stdin().is_terminal() && std::env::var_os("CI").is_none(),
        }
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
    tracing_subscriber_init();
    let cli = Cli::parse();
    // The functions' CloudWatch metric lines would drown the terminal; keep them aside.
    let metrics = std::path::Path::new(".beacon/metrics.ndjson");
    beacon_domain::metrics::write_to_file(metrics)
        .with_context(|| format!("opening {}", metrics.display()))?;
    let endpoint = cli
        .endpoint
        .context("no emulator endpoint: set AWS_ENDPOINT_URL or pass --endpoint (scripts/moto.sh run -- ... does this)")?;
    match cli.command {
        Command::Provision {
            stack,
            public_base_url,
        } => {
            let created = stack::provision(&endpoint, &stack, &public_base_url)?;
            println!("{}", serde_json::to_string_pretty(&created.resources)?);
        }
        Command::Serve {
            stack,
            listen,
            trust_forwarded_for,
            tenant,
        } => {
            let created = stack::provision(&endpoint, &stack, &format!("http://{listen}"))?;
            let aws = beacon_aws::config::aws_config().await;
            let gw = gateway::start(
                &created,
                &aws,
                listen,
                GatewayOptions {
                    trust_forwarded_for,
                },
            )
            .await?;
            for route in &gw.routes {
                eprintln!("{route}  ->  {}", gw.url);
            }
            // The stream consumers, polled like Lambda's event source mapping does.
            let consumers = beacon_local::consumers::build(&created, &aws)?;
            for c in &consumers {
                eprintln!("stream {}  ->  {}", c.poller.mapping.stream, c.name);
            }
            let polling = beacon_local::consumers::poll_forever(consumers);
            let link =
                beacon_local::dashboard::link(&created, &aws, &tenant, &gw.url, "make serve")
                    .await?;
            eprintln!("dashboard of tenant `{tenant}` (read-only, for 2 days):\n  {link}");
            eprintln!("serving on {} (Ctrl-C to stop)", gw.url);
            tokio::signal::ctrl_c().await?;
            polling.abort();
            gw.stop().await;
        }
        Command::Demo {
            recipients,
            seed,
            out,
            stack,
            serve,
        } => {
            let summary = demo::run(
                &endpoint,
                &DemoOptions {
                    recipients,
                    seed,
                    out_dir: out,
                    stack_name: stack,
                    serve: serve.wanted(),
                },
            )
            .await?;
            anyhow::ensure!(
                summary.matches,
                "the stream, the rollups or the lake do not match the ground truth"
            );
        }
    }
    Ok(())
}

/// Human-readable logs for a terminal, warnings and up unless RUST_LOG says otherwise.
fn tracing_subscriber_init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
