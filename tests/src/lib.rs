//! Harness for the end-to-end tests: the AWS emulator (moto, from the project's
//! virtualenv, started here unless `AWS_ENDPOINT_URL` names one already running), a
//! freshly named stack per test, and the local gateway in front of the real handlers.

use anyhow::{Context, Result};
use beacon_aws::dynamo::apikeys::DynamoApiKeys;
use beacon_domain::apikey::{hash_api_key, new_api_key, ApiKeyRecord, ApiKeyStore};
use beacon_domain::config::Env;
use beacon_domain::tracking::token::Keyring;
use beacon_local::gateway::{self, GatewayOptions, RunningGateway};
use beacon_local::stack::{self, Stack};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod faulty_store;
pub mod flaky;

/// The emulator endpoint for this test process.
pub fn emulator() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
        ] {
            if std::env::var_os(k).is_none() {
                std::env::set_var(k, v);
            }
        }
        if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
            return endpoint;
        }
        let endpoint = start_moto().expect("starting moto for the tests");
        std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
        endpoint
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `moto_server` from the project's virtualenv; it dies with this process.
fn start_moto() -> Result<String> {
    let python = stack::venv_python()?;
    let moto = python.with_file_name("moto_server");
    let port = free_port();
    let log = std::env::temp_dir().join(format!("beacon-test-moto-{port}.log"));
    let log_file = std::fs::File::create(&log)?;
    // Spawned from a thread that never ends, because the parent-death signal fires
    // when the spawning *thread* exits, and test threads come and go.
    let (tx, rx) = std::sync::mpsc::channel();
    let moto_path = moto.clone();
    std::thread::spawn(move || {
        let mut cmd = Command::new(&moto_path);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .stdin(Stdio::null());
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let spawned = cmd.spawn();
        let ok = spawned.is_ok();
        tx.send(spawned.map(|_| ()).map_err(|e| e.to_string()))
            .unwrap();
        if ok {
            loop {
                std::thread::park();
            }
        }
    });
    rx.recv()?
        .map_err(|e| anyhow::anyhow!("spawning {}: {e}", moto.display()))?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "moto did not start; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(endpoint)
}

/// A stack of its own in the emulator, with the gateway serving its functions.
pub struct TestStack {
    pub stack: Stack,
    pub aws: aws_config::SdkConfig,
    pub gateway: RunningGateway,
    /// A collect API key of tenant `acme`.
    pub api_key: String,
    pub keyring: Keyring,
}

impl TestStack {
    /// Provisions a freshly named stack and starts a gateway for it. With
    /// `functions_endpoint`, the functions reach AWS through that endpoint (a faulty
    /// proxy) while the test itself still reads the emulator directly.
    pub async fn start_through(functions_endpoint: Option<&str>) -> Result<TestStack> {
        let endpoint = emulator();
        let name = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let stack = stack::provision(endpoint, &name, &base)?;
        let aws = beacon_aws::config::aws_config().await;
        let collect = &stack.function("collect").context("collect function")?.1.env;
        let api_key = issue_key(&aws, &collect["BEACON_API_KEYS_TABLE"], "acme").await?;
        let keyring = beacon_aws::config::keyring(
            &Env::from_map(
                stack
                    .function("open-pixel")
                    .context("open-pixel")?
                    .1
                    .env
                    .clone(),
            ),
            &aws,
        )
        .await?;
        let functions_aws = match functions_endpoint {
            // A config of its own: one derived from `aws` would keep reading
            // AWS_ENDPOINT_URL from the environment, which wins over a builder setting.
            Some(url) => aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(aws.region().cloned())
                .credentials_provider(aws.credentials_provider().context("credentials")?)
                .endpoint_url(url)
                .build(),
            None => aws.clone(),
        };
        let gateway = gateway::start(
            &stack,
            &functions_aws,
            ([127, 0, 0, 1], port).into(),
            GatewayOptions {
                trust_forwarded_for: true,
            },
        )
        .await?;
        Ok(TestStack {
            stack,
            aws,
            gateway,
            api_key,
            keyring,
        })
    }

    pub async fn start() -> Result<TestStack> {
        Self::start_through(None).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway.url)
    }

    pub fn stream_name(&self) -> String {
        self.stack.function("collect").unwrap().1.env["BEACON_STREAM_NAME"].clone()
    }

    /// Every event on this stack's stream.
    pub async fn stream_events(&self) -> Result<Vec<beacon_domain::Event>> {
        beacon_local::stream::read_all(
            &aws_sdk_kinesis::Client::new(&self.aws),
            &self.stream_name(),
        )
        .await
    }
}

/// Stores a new API key for `tenant` and returns it.
pub async fn issue_key(aws: &aws_config::SdkConfig, table: &str, tenant: &str) -> Result<String> {
    let key = new_api_key();
    DynamoApiKeys::new(aws_sdk_dynamodb::Client::new(aws), table)
        .save(&ApiKeyRecord {
            key_hash: hash_api_key(&key),
            tenant_id: tenant.into(),
            name: "test".into(),
            created_at: String::new(),
            revoked: false,
        })
        .await?;
    Ok(key)
}

/// An HTTP client that, like a test should, does not follow redirects.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}
