//! The local stack: what `scripts/provision.py` created in the emulator from
//! `infra/template.yaml`, with each function's environment resolved as CloudFormation
//! would resolve it. Reading it keeps local names, routes and settings equal to AWS's.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone, Deserialize)]
pub struct Stack {
    pub stack: String,
    pub endpoint: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub resources: BTreeMap<String, serde_json::Value>,
    pub functions: BTreeMap<String, Function>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Function {
    pub binary: String,
    #[serde(default)]
    pub env: HashMap<String, String>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub schedules: Vec<serde_json::Value>,
    #[serde(default)]
    pub streams: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Route {
    pub method: String,
    pub path: String,
}

impl Stack {
    pub fn load(path: &Path) -> Result<Stack> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// The function built from `binary`, with its logical name.
    pub fn function(&self, binary: &str) -> Option<(&str, &Function)> {
        self.functions
            .iter()
            .find(|(_, f)| f.binary == binary)
            .map(|(name, f)| (name.as_str(), f))
    }

    /// A resource's physical name (`EventStream` → `beacon-events`).
    pub fn resource_name(&self, logical_id: &str) -> Option<&str> {
        self.resources.get(logical_id)?.get("name")?.as_str()
    }
}

/// Where the project's files are: the workspace root.
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .expect("local/ sits in the workspace")
        .to_path_buf()
}

/// The project virtualenv's Python (created by `scripts/venv.sh`).
pub fn venv_python() -> Result<PathBuf> {
    let venv = std::env::var_os("BEACON_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv"));
    let python = venv.join("bin/python");
    anyhow::ensure!(
        python.exists(),
        "{} is missing: run `make venv` (or scripts/venv.sh) first",
        python.display()
    );
    Ok(python)
}

/// Provisions `stack` in the emulator at `endpoint` from the SAM template, and
/// returns what was created.
pub fn provision(endpoint: &str, stack: &str, public_base_url: &str) -> Result<Stack> {
    let root = repo_root();
    let output = Command::new(venv_python()?)
        .arg(root.join("scripts/provision.py"))
        .args([
            "--endpoint",
            endpoint,
            "--stack",
            stack,
            "--public-base-url",
            public_base_url,
        ])
        .arg("--template")
        .arg(root.join("infra/template.yaml"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .context("running scripts/provision.py")?;
    anyhow::ensure!(
        output.status.success(),
        "provisioning failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).context("reading the provisioning output")
}
