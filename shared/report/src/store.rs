//! Where reports live: definitions and run records in a DynamoDB table, files in S3,
//! mail through SES v2. Each behind a small trait with one AWS adapter and one
//! in-memory twin for tests.
//!
//! The reports table (`pk`, `sk`):
//! - a definition: `pk` `DEF#{tenant}`, `sk` `{id}`, attribute `definition` (JSON);
//! - a run: `pk` `RUN#{tenant}#{id}`, `sk` `{period key}`, attributes `status`,
//!   `lease_until`, `attempts`, `error`, `files`, `message_id`, `updated_at`.

use super::definition::ReportDefinition;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use beacon_aws::dynamo::string_attribute;
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ReportStoreError {
    #[error("report `{0}` already exists; delete it first or choose another id")]
    Exists(String),
    #[error("{0}")]
    Unavailable(String),
}

/// An SDK error (DynamoDB, S3 or SES) with its whole chain of causes, as every other
/// adapter of the project reports them.
fn unavailable<E: std::error::Error + 'static>(
    what: &str,
) -> impl FnOnce(E) -> ReportStoreError + '_ {
    move |e| ReportStoreError::Unavailable(format!("{what}: {}", DisplayErrorContext(&e)))
}

/// Report definitions, per tenant.
pub trait Definitions: Send + Sync {
    /// Stores a new definition; an existing id is an error, never overwritten.
    fn create(
        &self,
        def: &ReportDefinition,
    ) -> impl Future<Output = Result<(), ReportStoreError>> + Send;
    fn get(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<ReportDefinition>, ReportStoreError>> + Send;
    fn list(
        &self,
        tenant: &str,
    ) -> impl Future<Output = Result<Vec<ReportDefinition>, ReportStoreError>> + Send;
    /// True when something was deleted.
    fn delete(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = Result<bool, ReportStoreError>> + Send;
    /// Every tenant's definitions: what the schedule walks.
    fn all(&self) -> impl Future<Output = Result<Vec<ReportDefinition>, ReportStoreError>> + Send;
}

/// Where a run of one report for one period stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Being rendered; safe to take over once the lease has expired.
    Rendering,
    /// Handed to SES: whether it went out is unknown until the call returns, so a
    /// run found in this state after its lease is never sent again automatically.
    Sending,
    Sent,
    /// Failed before anything was handed to SES; the next trigger retries it.
    Failed,
}

impl RunStatus {
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Rendering => "rendering",
            RunStatus::Sending => "sending",
            RunStatus::Sent => "sent",
            RunStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        [
            RunStatus::Rendering,
            RunStatus::Sending,
            RunStatus::Sent,
            RunStatus::Failed,
        ]
        .into_iter()
        .find(|r| r.name() == s)
    }
}

/// A run record, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub period: String,
    pub status: RunStatus,
    pub attempts: u32,
    pub error: Option<String>,
    pub files: Vec<String>,
    pub message_id: Option<String>,
    pub updated_at: String,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This caller owns the run now (the attempt number, from 1).
    Claimed(u32),
    /// Someone else holds it, it was sent, or its outcome is unknown: do nothing.
    Taken(RunRecord),
}

/// Run records: at most one send per report and period.
pub trait Runs: Send + Sync {
    /// Takes the run of `period` if it was never tried, failed, or was abandoned while
    /// rendering (lease expired). One conditional write: of two concurrent claims, one
    /// wins.
    fn claim(
        &self,
        tenant: &str,
        id: &str,
        period: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> impl Future<Output = Result<Claim, ReportStoreError>> + Send;
    /// Moves a claimed run on (`Sending`, `Sent` with the message id and files,
    /// `Failed` with the error).
    fn update(
        &self,
        tenant: &str,
        id: &str,
        period: &str,
        status: RunStatus,
        detail: RunDetail,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), ReportStoreError>> + Send;
    /// Every run of a report, by period.
    fn history(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = Result<Vec<RunRecord>, ReportStoreError>> + Send;
}

/// What a status update records besides the status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunDetail {
    pub error: Option<String>,
    pub files: Vec<String>,
    pub message_id: Option<String>,
}

fn def_pk(tenant: &str) -> String {
    format!("DEF#{tenant}")
}

fn run_pk(tenant: &str, id: &str) -> String {
    format!("RUN#{tenant}#{id}")
}

/// The DynamoDB adapter of [`Definitions`] and [`Runs`].
#[derive(Debug, Clone)]
pub struct DynamoReports {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn parse_definition(item: &HashMap<String, AttributeValue>) -> Option<ReportDefinition> {
    serde_json::from_str(&string_attribute(item, "definition")?).ok()
}

fn parse_run(item: &HashMap<String, AttributeValue>) -> Option<RunRecord> {
    Some(RunRecord {
        period: string_attribute(item, "sk")?,
        status: RunStatus::parse(&string_attribute(item, "status")?)?,
        attempts: item
            .get("attempts")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        error: string_attribute(item, "error"),
        files: item
            .get("files")
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
            .unwrap_or_default(),
        message_id: string_attribute(item, "message_id"),
        updated_at: string_attribute(item, "updated_at").unwrap_or_default(),
    })
}

impl DynamoReports {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoReports {
            client,
            table: table.into(),
        }
    }

    async fn query_pk(
        &self,
        pk: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, ReportStoreError> {
        beacon_aws::dynamo::query_partition(&self.client, &self.table, pk, false)
            .await
            .map_err(unavailable("reading reports"))
    }
}

impl Definitions for DynamoReports {
    async fn create(&self, def: &ReportDefinition) -> Result<(), ReportStoreError> {
        let json = serde_json::to_string(def).expect("a definition serializes");
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(def_pk(&def.tenant)))
            .item("sk", s(&def.id))
            .item("definition", s(json))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(ReportStoreError::Exists(def.id.clone()))
            }
            Err(e) => Err(unavailable("storing the report")(e)),
        }
    }

    async fn get(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<ReportDefinition>, ReportStoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(def_pk(tenant)))
            .key("sk", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable("reading the report"))?;
        Ok(out.item.as_ref().and_then(parse_definition))
    }

    async fn list(&self, tenant: &str) -> Result<Vec<ReportDefinition>, ReportStoreError> {
        Ok(self
            .query_pk(&def_pk(tenant))
            .await?
            .iter()
            .filter_map(parse_definition)
            .collect())
    }

    async fn delete(&self, tenant: &str, id: &str) -> Result<bool, ReportStoreError> {
        beacon_aws::dynamo::delete_existing(&self.client, &self.table, def_pk(tenant), id)
            .await
            .map_err(unavailable("deleting the report"))
    }

    async fn all(&self) -> Result<Vec<ReportDefinition>, ReportStoreError> {
        // Definitions are few (tens per tenant) and read once an hour: a filtered Scan
        // is cheaper than keeping an index of them.
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :def)")
                .expression_attribute_values(":def", s("DEF#"))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable("listing reports"))?;
            out.extend(page.items().iter().filter_map(parse_definition));
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}

impl Runs for DynamoReports {
    async fn claim(
        &self,
        tenant: &str,
        id: &str,
        period: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Claim, ReportStoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(run_pk(tenant, id)))
            .key("sk", s(period))
            .update_expression(
                "SET #status = :rendering, lease_until = :lease, updated_at = :now \
                 ADD attempts :one REMOVE #error",
            )
            .condition_expression(
                "attribute_not_exists(pk) OR #status = :failed \
                 OR (#status = :rendering AND lease_until < :now)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":rendering", s(RunStatus::Rendering.name()))
            .expression_attribute_values(":failed", s(RunStatus::Failed.name()))
            .expression_attribute_values(":lease", s((now + lease).to_rfc3339()))
            .expression_attribute_values(":now", s(now.to_rfc3339()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Claim::Claimed(
                out.attributes
                    .as_ref()
                    .and_then(parse_run)
                    .map_or(1, |r| r.attempts),
            )),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                let current = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .key("pk", s(run_pk(tenant, id)))
                    .key("sk", s(period))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(unavailable("reading the run"))?;
                let record = current.item.as_ref().and_then(parse_run).ok_or_else(|| {
                    ReportStoreError::Unavailable(
                        "the run record vanished after a failed claim".into(),
                    )
                })?;
                Ok(Claim::Taken(record))
            }
            Err(e) => Err(unavailable("claiming the run")(e)),
        }
    }

    async fn update(
        &self,
        tenant: &str,
        id: &str,
        period: &str,
        status: RunStatus,
        detail: RunDetail,
        now: DateTime<Utc>,
    ) -> Result<(), ReportStoreError> {
        let mut expr = "SET #status = :status, updated_at = :now".to_string();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(run_pk(tenant, id)))
            .key("sk", s(period))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status.name()))
            .expression_attribute_values(":now", s(now.to_rfc3339()));
        if let Some(e) = detail.error {
            expr.push_str(", #error = :error");
            req = req
                .expression_attribute_names("#error", "error")
                .expression_attribute_values(":error", s(e));
        }
        if !detail.files.is_empty() {
            expr.push_str(", files = :files");
            req = req.expression_attribute_values(
                ":files",
                AttributeValue::L(detail.files.into_iter().map(s).collect()),
            );
        }
        if let Some(m) = detail.message_id {
            expr.push_str(", message_id = :mid");
            req = req.expression_attribute_values(":mid", s(m));
        }
        req.update_expression(expr)
            .send()
            .await
            .map_err(unavailable("recording the run"))?;
        Ok(())
    }

    async fn history(&self, tenant: &str, id: &str) -> Result<Vec<RunRecord>, ReportStoreError> {
        Ok(self
            .query_pk(&run_pk(tenant, id))
            .await?
            .iter()
            .filter_map(parse_run)
            .collect())
    }
}

/// A run in memory by (tenant, report, period): its record and lease end.
type MemoryRuns = BTreeMap<(String, String, String), (RunRecord, DateTime<Utc>)>;

/// Definitions and runs in memory, with the same conditions as the DynamoDB adapter.
#[derive(Default)]
pub struct MemoryReports {
    defs: Mutex<BTreeMap<(String, String), ReportDefinition>>,
    runs: Mutex<MemoryRuns>,
}

impl Definitions for MemoryReports {
    async fn create(&self, def: &ReportDefinition) -> Result<(), ReportStoreError> {
        let mut defs = self.defs.lock().unwrap();
        let key = (def.tenant.clone(), def.id.clone());
        if defs.contains_key(&key) {
            return Err(ReportStoreError::Exists(def.id.clone()));
        }
        defs.insert(key, def.clone());
        Ok(())
    }

    async fn get(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<ReportDefinition>, ReportStoreError> {
        let defs = self.defs.lock().unwrap();
        Ok(defs.get(&(tenant.to_string(), id.to_string())).cloned())
    }

    async fn list(&self, tenant: &str) -> Result<Vec<ReportDefinition>, ReportStoreError> {
        let defs = self.defs.lock().unwrap();
        Ok(defs
            .values()
            .filter(|d| d.tenant == tenant)
            .cloned()
            .collect())
    }

    async fn delete(&self, tenant: &str, id: &str) -> Result<bool, ReportStoreError> {
        let mut defs = self.defs.lock().unwrap();
        Ok(defs.remove(&(tenant.to_string(), id.to_string())).is_some())
    }

    async fn all(&self) -> Result<Vec<ReportDefinition>, ReportStoreError> {
        Ok(self.defs.lock().unwrap().values().cloned().collect())
    }
}

impl Runs for MemoryReports {
    async fn claim(
        &self,
        tenant: &str,
        id: &str,
        period: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Claim, ReportStoreError> {
        let mut runs = self.runs.lock().unwrap();
        let key = (tenant.to_string(), id.to_string(), period.to_string());
        if let Some((record, lease_until)) = runs.get(&key) {
            let free = record.status == RunStatus::Failed
                || (record.status == RunStatus::Rendering && *lease_until < now);
            if !free {
                return Ok(Claim::Taken(record.clone()));
            }
        }
        let attempts = runs.get(&key).map_or(0, |(r, _)| r.attempts) + 1;
        runs.insert(
            key,
            (
                RunRecord {
                    period: period.to_string(),
                    status: RunStatus::Rendering,
                    attempts,
                    error: None,
                    files: vec![],
                    message_id: None,
                    updated_at: now.to_rfc3339(),
                },
                now + lease,
            ),
        );
        Ok(Claim::Claimed(attempts))
    }

    async fn update(
        &self,
        tenant: &str,
        id: &str,
        period: &str,
        status: RunStatus,
        detail: RunDetail,
        now: DateTime<Utc>,
    ) -> Result<(), ReportStoreError> {
        let mut runs = self.runs.lock().unwrap();
        let key = (tenant.to_string(), id.to_string(), period.to_string());
        let (record, _) = runs.entry(key).or_insert_with(|| {
            (
                RunRecord {
                    period: period.to_string(),
                    status,
                    attempts: 0,
                    error: None,
                    files: vec![],
                    message_id: None,
                    updated_at: String::new(),
                },
                now,
            )
        });
        record.status = status;
        record.updated_at = now.to_rfc3339();
        if detail.error.is_some() {
            record.error = detail.error;
        }
        if !detail.files.is_empty() {
            record.files = detail.files;
        }
        if detail.message_id.is_some() {
            record.message_id = detail.message_id;
        }
        Ok(())
    }

    async fn history(&self, tenant: &str, id: &str) -> Result<Vec<RunRecord>, ReportStoreError> {
        let runs = self.runs.lock().unwrap();
        Ok(runs
            .iter()
            .filter(|((t, i, _), _)| t == tenant && i == id)
            .map(|(_, (r, _))| r.clone())
            .collect())
    }
}

/// Where report files go.
pub trait ReportFiles: Send + Sync {
    fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = Result<(), ReportStoreError>> + Send;
    /// A link that downloads `key` for `expires_in`.
    fn link(
        &self,
        key: &str,
        expires_in: std::time::Duration,
    ) -> impl Future<Output = Result<String, ReportStoreError>> + Send;
}

/// The S3 adapter: server-side encryption on every object.
#[derive(Debug, Clone)]
pub struct S3ReportFiles {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3ReportFiles {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        S3ReportFiles {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

impl ReportFiles for S3ReportFiles {
    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), ReportStoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body.into())
            .content_type(content_type)
            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
            .send()
            .await
            .map_err(unavailable("writing the report file"))?;
        Ok(())
    }

    async fn link(
        &self,
        key: &str,
        expires_in: std::time::Duration,
    ) -> Result<String, ReportStoreError> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in)
            .map_err(|e| ReportStoreError::Unavailable(format!("presigning: {e}")))?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(unavailable("presigning the report link"))?;
        Ok(req.uri().to_string())
    }
}

/// Files in memory.
#[derive(Default)]
pub struct MemoryReportFiles {
    pub files: Mutex<BTreeMap<String, (Vec<u8>, String)>>,
}

impl ReportFiles for MemoryReportFiles {
    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), ReportStoreError> {
        self.files
            .lock()
            .unwrap()
            .insert(key.to_string(), (body, content_type.to_string()));
        Ok(())
    }

    async fn link(
        &self,
        key: &str,
        _expires_in: std::time::Duration,
    ) -> Result<String, ReportStoreError> {
        Ok(format!("memory://{key}"))
    }
}
