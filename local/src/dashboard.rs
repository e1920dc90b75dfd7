//! The dashboard on the local stack: a signed read-only link made as `beacon dashboard
//! link` makes one (with the stack's dashboard keys, recorded in its rollups table), and
//! screenshots of every page through it (`scripts/dashboard_shots.py`, headless
//! Chromium).

use crate::stack::{self, Stack};
use anyhow::{ensure, Context, Result};
use beacon_aws::dynamo::dashboard_links::DynamoDashboardLinks;
use beacon_domain::config::Env;
use beacon_domain::dashboard::access::{issue, open_url};
use std::path::{Path, PathBuf};

/// How long the local links work: a working day and then some.
const LIFETIME_SECONDS: i64 = 2 * 86_400;

/// A signed link to `tenant`'s dashboard on the gateway at `base_url`.
pub async fn link(
    stack: &Stack,
    aws: &aws_config::SdkConfig,
    tenant: &str,
    base_url: &str,
    note: &str,
) -> Result<String> {
    let (_, stats) = stack
        .function("stats")
        .context("stats function in the template")?;
    let env = Env::from_map(stats.env.clone());
    let keys = beacon_aws::config::dashboard_keys(&env, aws)
        .await?
        .context("the stack has no dashboard keys")?;
    let table = stats
        .env
        .get("BEACON_ROLLUPS_TABLE")
        .context("BEACON_ROLLUPS_TABLE")?;
    let store = DynamoDashboardLinks::new(aws_sdk_dynamodb::Client::new(aws), table.clone());
    let (_, token) = issue(
        &keys,
        &store,
        tenant,
        None,
        LIFETIME_SECONDS,
        Some(note.to_string()),
        chrono::Utc::now(),
    )
    .await?;
    Ok(open_url(base_url, &token))
}

/// Screenshots of every page (desktop and phone) through `link`, showing `campaign` on
/// the campaign page, written to `out_dir`; returns the files.
pub fn screenshots(link: &str, campaign: &str, out_dir: &Path) -> Result<Vec<PathBuf>> {
    let output = std::process::Command::new(stack::venv_python()?)
        .arg(stack::repo_root().join("scripts/dashboard_shots.py"))
        .arg(link)
        .arg(out_dir)
        .args(["--campaign", campaign])
        .output()
        .context("running scripts/dashboard_shots.py")?;
    ensure!(
        output.status.success(),
        "scripts/dashboard_shots.py failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(PathBuf::from)
        .collect())
}
