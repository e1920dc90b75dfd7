//! The data lake: every event as Athena-ready Parquet in S3, partitioned by event hour.
//!
//! Layout (one bucket):
//!
//! ```text
//! staging/events/dt=YYYY-MM-DD/hour=HH/{stream}_{shard}_{first}_{last}.parquet   (ETL)
//! curated/events/dt=YYYY-MM-DD/hour=HH/events.parquet                           (compaction)
//! ```
//!
//! Events are placed by **event time** (a late event goes to its own hour), in UTC.
//!
//! Why the rows in `curated/` are each there exactly once, at every moment:
//!
//! 1. **Staging is at least once.** The ETL function writes each batch's events of one
//!    hour to one staging object whose key is derived from the shard and the first and
//!    last sequence numbers of those records. A retried invocation of the same batch
//!    writes the same keys with the same rows, so it overwrites instead of adding. A
//!    batch cut differently on a retry (bisection, a partial batch response) can leave
//!    two pieces holding the same events: staging may repeat rows, never lose them.
//! 2. **Curated is one object per hour.** Compaction reads the hour's curated object (if
//!    any) and its staging pieces, drops duplicate `(tenant_id, event_id)`s, and writes
//!    the result back as **one** object. An S3 PUT is atomic: a reader lists either the
//!    old object or the new one, never both and never half of one. No row can be seen
//!    twice (one object, deduplicated) or go missing (the new object holds the old
//!    object's rows plus the pieces').
//! 3. **Pieces are deleted only after** the curated object holding their rows is
//!    written. A crash in between leaves pieces whose rows are already curated; the next
//!    run merges them again and the dedupe drops them.
//! 4. **Concurrent compactions** (the schedule and a `beacon lake rebuild`) cannot lose
//!    each other's rows: the curated PUT is conditional on the ETag read at the start
//!    (`If-Match`, or `If-None-Match: *` for a new hour). The loser starts the hour over.
//! 5. **Late events** land in staging for their own hour after it was compacted; the
//!    next scheduled run finds the new pieces and merges them into that hour's object.
//!
//! Analysts query `curated/` (the `events` table). `staging/` (`events_staging`) is the
//! last hour or so, at least once: dedupe on `event_id` when reading it, and never
//! union it with `events` (a row can be in both between steps 2 and 3).

pub mod store;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use base64::Engine;
use beacon_domain::event::stream::{decode, DeadLetter, DeadLetterSink, StreamRecord};
use beacon_domain::event::{BounceType, DeviceClass, Event, EventType, RequestContext};
use chrono::{DateTime, Duration, DurationRound, NaiveDate, TimeZone, Utc};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, LazyLock};
use thiserror::Error;

/// Where the ETL function writes, one piece per batch and hour.
pub const STAGING_PREFIX: &str = "staging/events/";
/// Where compaction writes, one object per hour: the `events` table.
pub const CURATED_PREFIX: &str = "curated/events/";
/// The curated object's name within its hour.
pub const CURATED_FILE: &str = "events.parquet";
/// Rows per Arrow batch handed to the writer: bounds the memory of the column builders.
const ROWS_PER_BATCH: usize = 65_536;
/// Row groups of about 128 MB: what Athena splits a file by.
const ROW_GROUP_BYTES: usize = 128 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum LakeError {
    /// A conditional write found the object changed: another compaction ran meanwhile.
    #[error("{0} changed during compaction")]
    Conflict(String),
    #[error("lake store: {0}")]
    Store(String),
    #[error("parquet: {0}")]
    Format(String),
}

impl From<parquet::errors::ParquetError> for LakeError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        LakeError::Format(e.to_string())
    }
}

impl From<arrow_schema::ArrowError> for LakeError {
    fn from(e: arrow_schema::ArrowError) -> Self {
        LakeError::Format(e.to_string())
    }
}

// --- the table ------------------------------------------------------------------------

fn text(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn time(name: &str) -> Field {
    // Millisecond UTC: what Athena keeps; the timezone makes arrow-rs mark the column
    // isAdjustedToUTC, so Athena reads it as a UTC instant.
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        false,
    )
}

/// The list element's name as the Parquet spec (and Athena) want it.
fn key_list_field() -> Arc<Field> {
    Arc::new(Field::new("element", DataType::Utf8, false))
}

/// The events table, column by column (the Glue tables in the template say the same).
/// Names are lowercase with `_`; `type` is `event_type` so no query needs quoting.
pub static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        text("event_id", false),
        text("tenant_id", false),
        text("event_type", false),
        time("event_time"),
        time("received_at"),
        text("campaign_id", true),
        text("message_id", true),
        text("recipient_id", true),
        text("channel", true),
        text("provider", true),
        text("link_url", true),
        text("bounce_type", true),
        text("reason", true),
        Field::new("cost", DataType::Float64, true),
        Field::new("value", DataType::Float64, true),
        text("currency", true),
        Field::new("duration_ms", DataType::Int64, true),
        // Free-form: values of any JSON type, so a JSON string (json_extract_scalar in
        // Athena) rather than a map, which would force every value to one type.
        text("properties", true),
        // The property names, for cheap `contains(property_keys, 'plan')` filters.
        Field::new("property_keys", DataType::List(key_list_field()), true),
        text("ip", true),
        text("user_agent", true),
        text("device_class", true),
        // The range list the full client IP fell in, looked up at the edge before it was
        // anonymized: `apple-proxy`, `scanners`, `unlisted` (null: no lists to check).
        text("network", true),
        // The classifier's verdict for opens and clicks (null for other types): machine
        // opens and suspected bot clicks, as the rollups count them.
        Field::new("machine", DataType::Boolean, true),
        text("machine_reason", true),
    ]))
});

/// ZSTD, statistics per page (row-group statistics included), Parquet list naming.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("3 is a valid zstd level"),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_coerce_types(true)
        .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
        .set_created_by("beacon lake".into())
        .build()
}

fn bounce_name(b: BounceType) -> &'static str {
    match b {
        BounceType::Hard => "hard",
        BounceType::Soft => "soft",
    }
}

/// The classifier's verdict for one event: `(machine, reason)`, for opens and clicks.
pub fn machine_verdict(e: &Event) -> Option<(bool, &'static str)> {
    beacon_domain::verdict::classify::machine_verdict(&e.into())
}

/// Events as one Arrow batch of [`SCHEMA`].
pub fn to_record_batch(events: &[Event]) -> Result<RecordBatch, LakeError> {
    let mut columns = EventColumns::with_capacity(events.len());
    for e in events {
        columns.push(e);
    }
    columns.finish()
}

/// The column builders of [`SCHEMA`], filled one event at a time, so a stream of
/// events becomes batches without holding the events themselves.
struct EventColumns {
    rows: usize,
    event_id: StringBuilder,
    tenant_id: StringBuilder,
    event_type: StringBuilder,
    event_time: TimestampMillisecondBuilder,
    received_at: TimestampMillisecondBuilder,
    /// campaign_id, message_id, recipient_id, channel, provider, link_url, bounce_type,
    /// reason: in schema order.
    optional: [StringBuilder; 8],
    cost: Float64Builder,
    value: Float64Builder,
    currency: StringBuilder,
    duration: Int64Builder,
    properties: StringBuilder,
    keys: ListBuilder<StringBuilder>,
    ip: StringBuilder,
    user_agent: StringBuilder,
    device_class: StringBuilder,
    network: StringBuilder,
    machine: BooleanBuilder,
    machine_reason: StringBuilder,
    scratch: Vec<u8>,
}

impl EventColumns {
    fn with_capacity(n: usize) -> Self {
        let strings = || StringBuilder::with_capacity(n, n * 16);
        EventColumns {
            rows: 0,
            event_id: strings(),
            tenant_id: strings(),
            event_type: strings(),
            event_time: TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC"),
            received_at: TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC"),
            optional: std::array::from_fn(|_| strings()),
            cost: Float64Builder::with_capacity(n),
            value: Float64Builder::with_capacity(n),
            currency: strings(),
            duration: Int64Builder::with_capacity(n),
            properties: strings(),
            keys: ListBuilder::new(StringBuilder::new()).with_field(key_list_field()),
            ip: strings(),
            user_agent: strings(),
            device_class: strings(),
            network: strings(),
            machine: BooleanBuilder::with_capacity(n),
            machine_reason: strings(),
            scratch: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.rows
    }

    fn push(&mut self, e: &Event) {
        self.rows += 1;
        self.event_id.append_value(&e.event_id);
        self.tenant_id.append_value(&e.tenant_id);
        self.event_type.append_value(e.kind.as_str());
        self.event_time
            .append_value(e.event_time.timestamp_millis());
        self.received_at
            .append_value(e.received_at.timestamp_millis());
        let texts = [
            e.campaign_id.as_deref(),
            e.message_id.as_deref(),
            e.recipient_id.as_deref(),
            e.channel.as_deref(),
            e.provider.as_deref(),
            e.link_url.as_deref(),
            e.bounce_type.map(bounce_name),
            e.reason.as_deref(),
        ];
        for (builder, v) in self.optional.iter_mut().zip(texts) {
            builder.append_option(v);
        }
        self.cost.append_option(e.cost);
        self.value.append_option(e.value);
        self.currency.append_option(e.currency.as_deref());
        self.duration.append_option(e.duration_ms);
        if e.properties.is_empty() {
            self.properties.append_null();
            self.keys.append_null();
        } else {
            // Through a reused buffer: no clone of the map and no String per row.
            self.scratch.clear();
            serde_json::to_writer(&mut self.scratch, &e.properties)
                .expect("a JSON map always serializes");
            self.properties
                .append_value(std::str::from_utf8(&self.scratch).expect("serde_json writes UTF-8"));
            for k in e.properties.keys() {
                self.keys.values().append_value(k);
            }
            self.keys.append(true);
        }
        self.ip.append_option(e.context.ip.as_deref());
        self.user_agent
            .append_option(e.context.user_agent.as_deref());
        self.device_class
            .append_option(e.context.device_class.map(|d| d.as_str()));
        self.network.append_option(e.context.network.as_deref());
        let verdict = machine_verdict(e);
        self.machine.append_option(verdict.map(|v| v.0));
        self.machine_reason.append_option(verdict.map(|v| v.1));
    }

    /// The rows pushed so far as one batch; the builders start over, empty.
    fn finish(&mut self) -> Result<RecordBatch, LakeError> {
        self.rows = 0;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.tenant_id.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.event_time.finish()),
            Arc::new(self.received_at.finish()),
        ];
        columns.extend(
            self.optional
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.extend([
            Arc::new(self.cost.finish()) as ArrayRef,
            Arc::new(self.value.finish()),
            Arc::new(self.currency.finish()),
            Arc::new(self.duration.finish()),
            Arc::new(self.properties.finish()),
            Arc::new(self.keys.finish()),
            Arc::new(self.ip.finish()),
            Arc::new(self.user_agent.finish()),
            Arc::new(self.device_class.finish()),
            Arc::new(self.network.finish()),
            Arc::new(self.machine.finish()),
            Arc::new(self.machine_reason.finish()),
        ]);
        Ok(RecordBatch::try_new(SCHEMA.clone(), columns)?)
    }
}

/// A column of `batch` by name, or a clear error.
fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, LakeError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| LakeError::Format(format!("no column `{name}`")))
}

fn utc(ms: i64) -> Result<DateTime<Utc>, LakeError> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| LakeError::Format(format!("timestamp {ms} out of range")))
}

/// Events back from a batch of [`SCHEMA`] (columns are found by name, so files with
/// more columns than this version knows still read). The derived columns (`machine`,
/// `property_keys`) are not read: they are computed again on every write.
pub fn from_record_batch(batch: &RecordBatch) -> Result<Vec<Event>, LakeError> {
    let string = |name: &str| -> Result<_, LakeError> {
        column(batch, name)?
            .as_string_opt::<i32>()
            .ok_or_else(|| LakeError::Format(format!("`{name}` is not a string column")))
    };
    let millis = |name: &str| -> Result<_, LakeError> {
        column(batch, name)?
            .as_primitive_opt::<TimestampMillisecondType>()
            .ok_or_else(|| LakeError::Format(format!("`{name}` is not a millisecond timestamp")))
    };
    let (event_id, tenant_id, event_type) = (
        string("event_id")?,
        string("tenant_id")?,
        string("event_type")?,
    );
    let (event_time, received_at) = (millis("event_time")?, millis("received_at")?);
    let names = [
        "campaign_id",
        "message_id",
        "recipient_id",
        "channel",
        "provider",
        "link_url",
        "bounce_type",
        "reason",
        "currency",
        "properties",
        "ip",
        "user_agent",
        "device_class",
    ];
    let texts: HashMap<&str, _> = names
        .iter()
        .map(|n| string(n).map(|c| (*n, c)))
        .collect::<Result<_, _>>()?;
    let float = |name: &str| -> Result<_, LakeError> {
        column(batch, name)?
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| LakeError::Format(format!("`{name}` is not a double column")))
    };
    let (cost, value) = (float("cost")?, float("value")?);
    let duration = column(batch, "duration_ms")?
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| LakeError::Format("`duration_ms` is not a bigint column".into()))?;
    let opt = |name: &str, i: usize| -> Option<String> {
        let c = texts[name];
        (!c.is_null(i)).then(|| c.value(i).to_string())
    };
    // Files written before the column existed have none: every row reads as unlabelled.
    let network = match batch.column_by_name("network") {
        None => None,
        Some(_) => Some(string("network")?),
    };
    let mut events = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let kind = EventType::parse(event_type.value(i)).map_err(|e| LakeError::Format(e.0))?;
        let mut e = Event::new(
            event_id.value(i).to_string(),
            tenant_id.value(i).to_string(),
            kind,
            utc(event_time.value(i))?,
            utc(received_at.value(i))?,
        );
        e.campaign_id = opt("campaign_id", i);
        e.message_id = opt("message_id", i);
        e.recipient_id = opt("recipient_id", i);
        e.channel = opt("channel", i);
        e.provider = opt("provider", i);
        e.link_url = opt("link_url", i);
        e.bounce_type = match opt("bounce_type", i).as_deref() {
            None => None,
            Some("hard") => Some(BounceType::Hard),
            Some("soft") => Some(BounceType::Soft),
            Some(other) => return Err(LakeError::Format(format!("bounce_type `{other}`"))),
        };
        e.reason = opt("reason", i);
        e.cost = (!cost.is_null(i)).then(|| cost.value(i));
        e.value = (!value.is_null(i)).then(|| value.value(i));
        e.currency = opt("currency", i);
        e.duration_ms = (!duration.is_null(i)).then(|| duration.value(i));
        if let Some(json) = opt("properties", i) {
            e.properties = serde_json::from_str(&json)
                .map_err(|err| LakeError::Format(format!("properties: {err}")))?;
        }
        e.context = RequestContext {
            ip: opt("ip", i),
            user_agent: opt("user_agent", i),
            device_class: match opt("device_class", i).as_deref() {
                None => None,
                Some(name) => Some(
                    serde_json::from_value::<DeviceClass>(serde_json::Value::String(
                        name.to_string(),
                    ))
                    .map_err(|err| LakeError::Format(format!("device_class: {err}")))?,
                ),
            },
            network: network
                .filter(|c| !c.is_null(i))
                .map(|c| c.value(i).to_string()),
        };
        events.push(e);
    }
    Ok(events)
}

/// Events as one Parquet file.
pub fn write_parquet(events: &[Event]) -> Result<Vec<u8>, LakeError> {
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, SCHEMA.clone(), Some(writer_properties()))?;
    for chunk in events.chunks(ROWS_PER_BATCH) {
        writer.write(&to_record_batch(chunk)?)?;
    }
    writer.close()?;
    Ok(out)
}

/// Every event of a Parquet file.
pub fn read_parquet(bytes: Vec<u8>) -> Result<Vec<Event>, LakeError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))?
        .with_batch_size(ROWS_PER_BATCH)
        .build()?;
    let mut events = Vec::new();
    for batch in reader {
        events.extend(from_record_batch(&batch?)?);
    }
    Ok(events)
}

/// Drops repeated `(tenant_id, event_id)`s, keeping the first received (the original,
/// as the rollups count it), and sorts by tenant, event time and id so that row-group
/// statistics let Athena skip other tenants' rows. Returns the rows and how many went.
pub fn dedupe(mut events: Vec<Event>) -> (Vec<Event>, usize) {
    events.sort_by(|a, b| {
        (&a.tenant_id, &a.event_id, a.received_at).cmp(&(&b.tenant_id, &b.event_id, b.received_at))
    });
    let before = events.len();
    events.dedup_by(|later, first| {
        later.tenant_id == first.tenant_id && later.event_id == first.event_id
    });
    let dropped = before - events.len();
    events.sort_by(|a, b| {
        (&a.tenant_id, a.event_time, &a.event_id).cmp(&(&b.tenant_id, b.event_time, &b.event_id))
    });
    (events, dropped)
}

// --- partitions and keys ----------------------------------------------------------------

/// One hour of event time, UTC: `dt=YYYY-MM-DD/hour=HH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    start: DateTime<Utc>,
}

impl Partition {
    /// The hour `t` falls in.
    pub fn of(t: DateTime<Utc>) -> Partition {
        Partition {
            start: t
                .duration_trunc(Duration::hours(1))
                .expect("an hour divides any representable time"),
        }
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    pub fn end(&self) -> DateTime<Utc> {
        self.start + Duration::hours(1)
    }

    pub fn next(&self) -> Partition {
        Partition { start: self.end() }
    }

    /// `dt=2026-11-23/hour=07`, the Hive layout Athena's projection and DuckDB read.
    pub fn path(&self) -> String {
        self.start.format("dt=%Y-%m-%d/hour=%H").to_string()
    }

    /// The partition a key lies in, from its `dt=.../hour=.../` segments.
    pub fn from_key(key: &str) -> Option<Partition> {
        let mut parts = key.split('/');
        let dt = parts.find_map(|p| p.strip_prefix("dt="))?;
        let hour: u32 = parts.next()?.strip_prefix("hour=")?.parse().ok()?;
        let day = NaiveDate::parse_from_str(dt, "%Y-%m-%d").ok()?;
        let start = day.and_hms_opt(hour, 0, 0)?.and_utc();
        Some(Partition { start })
    }

    /// The hours from the start of `from` to the end of `to` (dates, inclusive).
    pub fn days(from: NaiveDate, to: NaiveDate) -> Vec<Partition> {
        let mut p = Partition::of(from.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
        let end = (to + chrono::Days::new(1))
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc();
        let mut out = Vec::new();
        while p.start < end {
            out.push(p);
            p = p.next();
        }
        out
    }

    pub fn staging_prefix(&self) -> String {
        format!("{STAGING_PREFIX}{}/", self.path())
    }

    pub fn curated_key(&self) -> String {
        format!("{CURATED_PREFIX}{}/{CURATED_FILE}", self.path())
    }
}

/// A staging piece's key: the same records always give the same key, so a retried
/// invocation overwrites its own pieces. `shard` is `stream/shardId-...`.
pub fn staging_key(p: Partition, shard: &str, first_sequence: &str, last_sequence: &str) -> String {
    let shard: String = shard
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{}{shard}_{first_sequence}_{last_sequence}.parquet",
        p.staging_prefix()
    )
}

// --- where the lake lives ---------------------------------------------------------------

/// One object of the lake, as a listing gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeObject {
    pub key: String,
    pub size: i64,
}

/// When a write may happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutIf {
    Always,
    /// Only if the object does not exist yet.
    Absent,
    /// Only if the object still has this ETag.
    Unchanged(String),
}

/// The lake's object store: S3 in AWS ([`crate::store::S3Lake`]), memory in tests.
pub trait LakeStore: Send + Sync {
    /// The object and its ETag, or `None` if there is none.
    fn get(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<(Vec<u8>, String)>, LakeError>> + Send;
    /// Writes an object; a failed condition is [`LakeError::Conflict`].
    fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        condition: PutIf,
    ) -> impl Future<Output = Result<(), LakeError>> + Send;
    /// Every object under `prefix`.
    fn list(&self, prefix: &str)
        -> impl Future<Output = Result<Vec<LakeObject>, LakeError>> + Send;
    /// Deletes these objects (missing ones are no error).
    fn delete(&self, keys: &[String]) -> impl Future<Output = Result<(), LakeError>> + Send;
}

// --- ETL: stream batch to staging --------------------------------------------------------

/// One staging piece to write: the batch's events of one hour.
#[derive(Debug, Clone)]
pub struct Piece {
    pub partition: Partition,
    pub key: String,
    pub events: Vec<Event>,
}

/// What a stream batch becomes: pieces per hour, and poison records with why.
#[derive(Debug, Clone, Default)]
pub struct StagingPlan {
    pub pieces: Vec<Piece>,
    pub dead_letters: Vec<DeadLetter>,
}

/// Decodes one shard's records (in sequence order) and groups them by event hour.
/// Records that are not events are dead letters, reason included (the same decoding
/// and rules as the rollups: [`decode`]).
pub fn plan_staging(records: &[StreamRecord]) -> StagingPlan {
    let mut plan = StagingPlan::default();
    // (shard, hour) -> (first sequence, last sequence, events)
    let mut groups: BTreeMap<(String, Partition), (String, String, Vec<Event>)> = BTreeMap::new();
    for r in records {
        match decode(&r.data) {
            Ok(e) => {
                let g = groups
                    .entry((r.shard.clone(), Partition::of(e.event_time)))
                    .or_insert_with(|| (r.sequence.clone(), r.sequence.clone(), Vec::new()));
                g.1 = r.sequence.clone();
                g.2.push(e);
            }
            Err(reason) => plan.dead_letters.push(DeadLetter {
                shard: r.shard.clone(),
                sequence: r.sequence.clone(),
                reason: format!("lake: {reason}"),
                data_base64: base64::engine::general_purpose::STANDARD.encode(&r.data),
            }),
        }
    }
    plan.pieces = groups
        .into_iter()
        .map(|((shard, partition), (first, last, events))| Piece {
            key: staging_key(partition, &shard, &first, &last),
            partition,
            events,
        })
        .collect();
    plan
}

/// What the ETL did with a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Staged {
    pub events: usize,
    pub pieces: usize,
    pub dead_letters: usize,
    pub bytes: usize,
}

/// Writes a batch to staging: dead letters first (so none is lost if a write fails
/// later; a retry sends them again, which is harmless), then one piece per hour.
/// Any error means the whole batch must be delivered again; its keys are the same.
pub async fn stage_batch<L: LakeStore, D: DeadLetterSink>(
    lake: &L,
    dead: &D,
    records: &[StreamRecord],
) -> Result<Staged, LakeError> {
    let plan = plan_staging(records);
    if !plan.dead_letters.is_empty() {
        dead.send(&plan.dead_letters)
            .await
            .map_err(|e| LakeError::Store(format!("dead-letter queue: {e}")))?;
    }
    let mut staged = Staged {
        dead_letters: plan.dead_letters.len(),
        ..Staged::default()
    };
    for piece in plan.pieces {
        let body = write_parquet(&piece.events)?;
        staged.bytes += body.len();
        staged.events += piece.events.len();
        staged.pieces += 1;
        lake.put(&piece.key, body, PutIf::Always).await?;
    }
    Ok(staged)
}

// --- compaction: staging to curated ------------------------------------------------------

/// What compaction did with one hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    pub partition: Partition,
    /// Rows of the curated object before.
    pub existing: usize,
    /// Staging pieces merged and deleted.
    pub pieces: usize,
    /// Rows read from pieces (and backfill input).
    pub added: usize,
    /// Duplicate event ids dropped.
    pub duplicates: usize,
    /// Rows of the curated object now.
    pub rows: usize,
    pub bytes: usize,
    /// Whether a curated object was written (nothing to do otherwise).
    pub written: bool,
}

/// How often an hour is started over when another compaction wrote it meanwhile.
const CONFLICT_ATTEMPTS: usize = 5;

/// Merges the hour's staging pieces (and `extra` events, for a backfill) into its
/// curated object. With `rewrite`, the curated object is written again even without
/// new rows (a rebuild: the current writer and classifier). The order of the steps is
/// the exactly-once argument at the top of this module.
pub async fn compact_partition<L: LakeStore>(
    lake: &L,
    partition: Partition,
    extra: &[Event],
    rewrite: bool,
) -> Result<Compacted, LakeError> {
    let curated = partition.curated_key();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let current = lake.get(&curated).await?;
        let pieces: Vec<String> = lake
            .list(&partition.staging_prefix())
            .await?
            .into_iter()
            .map(|o| o.key)
            .filter(|k| k.ends_with(".parquet"))
            .collect();
        let (mut rows, condition) = match current {
            Some((body, etag)) => (read_parquet(body)?, PutIf::Unchanged(etag)),
            None => (Vec::new(), PutIf::Absent),
        };
        let existing = rows.len();
        let mut report = Compacted {
            partition,
            existing,
            pieces: pieces.len(),
            added: extra.len(),
            duplicates: 0,
            rows: existing,
            bytes: 0,
            written: false,
        };
        if pieces.is_empty() && extra.is_empty() && !(rewrite && existing > 0) {
            return Ok(report);
        }
        for key in &pieces {
            // Gone: another run merged it, and its condition below tells us if we raced.
            if let Some((body, _)) = lake.get(key).await? {
                let events = read_parquet(body)?;
                report.added += events.len();
                rows.extend(events);
            }
        }
        rows.extend_from_slice(extra);
        let (rows, duplicates) = dedupe(rows);
        let body = write_parquet(&rows)?;
        report.duplicates = duplicates;
        report.rows = rows.len();
        report.bytes = body.len();
        match lake.put(&curated, body, condition).await {
            Ok(()) => {}
            Err(LakeError::Conflict(_)) if attempt < CONFLICT_ATTEMPTS => continue,
            Err(e) => return Err(e),
        }
        // Only now: the curated object holds every row of these pieces.
        lake.delete(&pieces).await?;
        report.written = true;
        return Ok(report);
    }
}

/// The hours that have staging pieces, each with its piece count.
pub async fn staged_partitions<L: LakeStore>(
    lake: &L,
) -> Result<BTreeMap<Partition, usize>, LakeError> {
    let mut out = BTreeMap::new();
    for object in lake.list(STAGING_PREFIX).await? {
        if let Some(p) = Partition::from_key(&object.key) {
            *out.entry(p).or_insert(0) += 1;
        }
    }
    Ok(out)
}

/// The scheduled step: compacts every hour with staging pieces that ended at least
/// `grace` before `now` (the ETL's batching and retries are done with it by then; a
/// later straggler is merged by a later run). Hours are done oldest first.
pub async fn compact_closed<L: LakeStore>(
    lake: &L,
    now: DateTime<Utc>,
    grace: Duration,
) -> Result<Vec<Compacted>, LakeError> {
    let mut done = Vec::new();
    for partition in staged_partitions(lake).await?.into_keys() {
        if partition.end() + grace <= now {
            done.push(compact_partition(lake, partition, &[], false).await?);
        }
    }
    Ok(done)
}

/// A [`LakeStore`] in memory, for tests: ETags change on every write.
#[derive(Debug, Default)]
pub struct MemoryLake {
    objects: std::sync::Mutex<BTreeMap<String, (Vec<u8>, u64)>>,
    writes: std::sync::atomic::AtomicU64,
}

impl MemoryLake {
    pub fn keys(&self) -> Vec<String> {
        self.objects.lock().unwrap().keys().cloned().collect()
    }
}

impl LakeStore for MemoryLake {
    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, LakeError> {
        Ok(self
            .objects
            .lock()
            .unwrap()
            .get(key)
            .map(|(body, tag)| (body.clone(), tag.to_string())))
    }

    async fn put(&self, key: &str, body: Vec<u8>, condition: PutIf) -> Result<(), LakeError> {
        let mut objects = self.objects.lock().unwrap();
        let current = objects.get(key).map(|(_, tag)| tag.to_string());
        let ok = match (&condition, &current) {
            (PutIf::Always, _) => true,
            (PutIf::Absent, None) => true,
            (PutIf::Unchanged(want), Some(have)) => want == have,
            _ => false,
        };
        if !ok {
            return Err(LakeError::Conflict(key.to_string()));
        }
        let tag = self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        objects.insert(key.to_string(), (body, tag));
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<LakeObject>, LakeError> {
        Ok(self
            .objects
            .lock()
            .unwrap()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (body, _))| LakeObject {
                key: k.clone(),
                size: body.len() as i64,
            })
            .collect())
    }

    async fn delete(&self, keys: &[String]) -> Result<(), LakeError> {
        let mut objects = self.objects.lock().unwrap();
        for k in keys {
            objects.remove(k);
        }
        Ok(())
    }
}

// --- NDJSON to Parquet ----------------------------------------------------------------

/// How many bad lines a conversion reports in detail (the rest are only counted).
pub const BAD_LINES_REPORTED: usize = 10;

/// How [`convert_ndjson`] reads and writes.
#[derive(Debug, Clone, Copy)]
pub struct ConvertOptions {
    /// Rows per Arrow batch handed to the writer: bounds the column builders' memory.
    pub rows_per_batch: usize,
    /// Once the writer's buffered row group holds this much memory it is written out,
    /// so memory stays bounded whatever the input size (and row groups stay near the
    /// 128 MB Athena splits by).
    pub memory_budget: usize,
    /// Fail at the first line that is not an event instead of skipping it.
    pub strict: bool,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            rows_per_batch: ROWS_PER_BATCH,
            memory_budget: ROW_GROUP_BYTES,
            strict: false,
        }
    }
}

/// A line that is not an event, by its number in the input (from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: u64,
    pub reason: String,
}

/// What a conversion did, so far (progress) or in all (the result).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Converted {
    /// Events written.
    pub rows: u64,
    /// Lines that are not events, skipped.
    pub bad_lines: u64,
    /// The first [`BAD_LINES_REPORTED`] of them.
    pub first_bad: Vec<BadLine>,
    /// Parquet bytes written (the whole file once the conversion is done).
    pub bytes: u64,
    /// Row groups written.
    pub row_groups: usize,
    /// The most memory the writer's buffered row group held after any batch.
    pub peak_writer_memory: usize,
}

/// Converts NDJSON events (one [`Event`] as JSON a line, as on the stream) to one
/// Parquet file of [`SCHEMA`], streaming: a batch of rows at a time, with the buffered
/// row group written out at `options.memory_budget`, so memory does not grow with the
/// input. Blank lines are ignored; lines that are not events are counted and skipped
/// (or fail the conversion when `options.strict`). `progress` is called after each batch.
pub fn convert_ndjson<R: std::io::BufRead, W: std::io::Write + Send>(
    mut input: R,
    output: W,
    options: ConvertOptions,
    mut progress: impl FnMut(&Converted),
) -> Result<Converted, LakeError> {
    let rows_per_batch = options.rows_per_batch.max(1);
    let mut writer = ArrowWriter::try_new(output, SCHEMA.clone(), Some(writer_properties()))?;
    let mut columns = EventColumns::with_capacity(rows_per_batch);
    let mut done = Converted::default();
    let mut line = Vec::with_capacity(4096);
    let mut number = 0u64;
    loop {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .map_err(|e| LakeError::Format(format!("reading line {}: {e}", number + 1)))?;
        if read > 0 {
            number += 1;
            let text = line.trim_ascii();
            if !text.is_empty() {
                match decode(text) {
                    Ok(e) => columns.push(&e),
                    Err(reason) if options.strict => {
                        return Err(LakeError::Format(format!("line {number}: {reason}")));
                    }
                    Err(reason) => {
                        done.bad_lines += 1;
                        if done.first_bad.len() < BAD_LINES_REPORTED {
                            done.first_bad.push(BadLine {
                                line: number,
                                reason: reason.to_string(),
                            });
                        }
                    }
                }
            }
        }
        let end = read == 0;
        if columns.len() >= rows_per_batch || (end && columns.len() > 0) {
            let batch = columns.finish()?;
            writer.write(&batch)?;
            done.rows += batch.num_rows() as u64;
            let buffered = writer.memory_size();
            done.peak_writer_memory = done.peak_writer_memory.max(buffered);
            if buffered >= options.memory_budget {
                writer.flush()?;
            }
            done.row_groups = writer.flushed_row_groups().len();
            done.bytes = writer.bytes_written() as u64;
            progress(&done);
        }
        if end {
            break;
        }
    }
    let metadata = writer.finish()?;
    done.row_groups = metadata.num_row_groups();
    done.bytes = writer.bytes_written() as u64;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_domain::testkit::memory::MemoryDeadLetters;
    use parquet::basic::{LogicalType, Type as PhysicalType};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use serde_json::json;
    use std::sync::Mutex;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn event(id: &str, kind: EventType, time: &str) -> Event {
        let mut e = Event::new(id.into(), "acme".into(), kind, at(time), at(time));
        e.campaign_id = Some("spring".into());
        e.message_id = Some(format!("m-{id}"));
        e.recipient_id = Some(format!("r-{id}"));
        e
    }

    fn full_event() -> Event {
        let mut e = event("e-full", EventType::Opened, "2026-11-23T10:15:00.123Z");
        e.received_at = at("2026-11-23T10:15:01.456Z");
        e.channel = Some("email".into());
        e.provider = Some("ses".into());
        e.link_url = Some("https://shop.example/a".into());
        e.bounce_type = Some(BounceType::Soft);
        e.reason = Some("452 mailbox full".into());
        e.cost = Some(0.0001);
        e.value = Some(59.9);
        e.currency = Some("EUR".into());
        e.duration_ms = Some(1840);
        e.properties = json!({"plan": "pro", "seats": 3, "trial": true})
            .as_object()
            .unwrap()
            .clone();
        e.context = RequestContext {
            ip: Some("203.0.113.0".into()),
            user_agent: Some("Mozilla/5.0".into()),
            device_class: Some(DeviceClass::Other),
            network: Some("apple-proxy".into()),
        };
        e
    }

    fn record(seq: u64, e: &Event) -> StreamRecord {
        StreamRecord {
            shard: "beacon-events/shardId-000000000000".into(),
            sequence: format!("4965{seq:020}"),
            data: beacon_domain::tracking::sink::encode_record(e),
        }
    }

    async fn curated(lake: &MemoryLake, p: Partition) -> Vec<Event> {
        match lake.get(&p.curated_key()).await.unwrap() {
            Some((body, _)) => read_parquet(body).unwrap(),
            None => Vec::new(),
        }
    }

    #[test]
    fn every_field_survives_a_round_trip() {
        let mut plain = event("e-plain", EventType::Sent, "2026-11-23T10:00:00Z");
        plain.campaign_id = None;
        let events = vec![full_event(), plain];
        let back = read_parquet(write_parquet(&events).unwrap()).unwrap();
        assert_eq!(back, events);
    }

    #[test]
    fn files_from_before_the_network_column_read_as_unlabelled() {
        let events = vec![full_event()];
        let batch = to_record_batch(&events).unwrap();
        let network = SCHEMA.index_of("network").unwrap();
        assert_eq!(
            SCHEMA.field(network - 1).name(),
            "device_class",
            "next to the request context"
        );
        let keep: Vec<usize> = (0..SCHEMA.fields().len())
            .filter(|&i| i != network)
            .collect();
        let old = batch.project(&keep).unwrap();
        let mut body = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut body, old.schema(), None).unwrap();
        writer.write(&old).unwrap();
        writer.close().unwrap();
        let back = read_parquet(body).unwrap();
        let mut expected = events.clone();
        expected[0].context.network = None;
        assert_eq!(back, expected);
        assert_eq!(from_record_batch(&batch).unwrap(), events);
    }

    #[test]
    fn the_file_is_what_athena_reads_well() {
        let body = write_parquet(&[full_event()]).unwrap();
        let reader = SerializedFileReader::new(bytes::Bytes::from(body)).unwrap();
        let meta = reader.metadata();
        let schema = meta.file_metadata().schema_descr();
        for col in schema.columns() {
            // No unsigned integers anywhere, and times are millisecond UTC instants.
            if let Some(LogicalType::Integer(int)) = col.logical_type_ref() {
                assert!(int.is_signed, "{} is unsigned", col.path());
            }
            if col.path().string() == "event_time" || col.path().string() == "received_at" {
                assert_eq!(col.physical_type(), PhysicalType::INT64);
                match col.logical_type_ref() {
                    Some(LogicalType::Timestamp(t)) => {
                        assert!(t.is_adjusted_to_u_t_c);
                        assert!(matches!(t.unit, parquet::basic::TimeUnit::MILLIS));
                    }
                    other => panic!("{} is {other:?}", col.path()),
                }
            }
        }
        let list = schema
            .columns()
            .iter()
            .find(|c| c.path().string().starts_with("property_keys"))
            .unwrap();
        assert_eq!(list.path().string(), "property_keys.list.element");
        let group = meta.row_group(0);
        for chunk in group.columns() {
            assert!(
                matches!(chunk.compression(), Compression::ZSTD(_)),
                "{}",
                chunk.column_path()
            );
            assert!(chunk.statistics().is_some(), "{}", chunk.column_path());
        }
    }

    #[test]
    fn the_arrow_schema_has_no_unsigned_or_zoneless_times() {
        for f in SCHEMA.fields() {
            assert!(!f.data_type().is_unsigned_integer(), "{}", f.name());
            if let DataType::Timestamp(unit, tz) = f.data_type() {
                assert_eq!((unit, tz.as_deref()), (&TimeUnit::Millisecond, Some("UTC")));
            }
            assert!(
                f.name()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                f.name()
            );
        }
    }

    #[test]
    fn machine_opens_and_bot_clicks_are_marked() {
        let mut mpp = event("o1", EventType::Opened, "2026-11-23T10:00:00Z");
        mpp.context.user_agent = Some("Mozilla/5.0".into());
        let mut human = event("o2", EventType::Opened, "2026-11-23T10:00:00Z");
        human.context.user_agent = Some("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4)".into());
        let sent = event("s1", EventType::Sent, "2026-11-23T10:00:00Z");
        let batch = to_record_batch(&[mpp, human, sent]).unwrap();
        let machine = column(&batch, "machine").unwrap().as_boolean();
        assert!(machine.value(0));
        assert!(!machine.value(1));
        assert!(machine.is_null(2));
        let reason = column(&batch, "machine_reason").unwrap().as_string::<i32>();
        assert_eq!(reason.value(0), "apple_mpp_agent");
    }

    #[test]
    fn partitions_follow_event_time_in_utc() {
        let p = Partition::of(at("2026-11-23T07:59:59.999+01:00"));
        assert_eq!(p.path(), "dt=2026-11-23/hour=06");
        assert_eq!(p.end(), at("2026-11-23T07:00:00Z"));
        assert_eq!(
            p.curated_key(),
            "curated/events/dt=2026-11-23/hour=06/events.parquet"
        );
        let key = staging_key(p, "beacon-events/shardId-000000000001", "49", "51");
        assert_eq!(
            key,
            "staging/events/dt=2026-11-23/hour=06/beacon-events_shardId-000000000001_49_51.parquet"
        );
        assert_eq!(Partition::from_key(&key), Some(p));
        assert_eq!(Partition::from_key(&p.curated_key()), Some(p));
        assert_eq!(Partition::from_key("staging/events/dt=2026-11-23/x"), None);
        let days = Partition::days(
            NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
        );
        assert_eq!(days.len(), 48);
        assert_eq!(days[47].path(), "dt=2026-11-24/hour=23");
    }

    #[test]
    fn a_batch_is_split_by_hour_with_late_events_in_their_own_and_poison_set_aside() {
        let a = event("a", EventType::Sent, "2026-11-23T10:59:00Z");
        let late = event("late", EventType::Delivered, "2026-11-20T03:00:00Z");
        let b = event("b", EventType::Sent, "2026-11-23T10:01:00Z");
        let mut records = vec![record(1, &a), record(2, &late), record(3, &b)];
        records.push(StreamRecord {
            data: b"{not json".to_vec(),
            ..record(4, &b)
        });
        let plan = plan_staging(&records);
        let keys: Vec<&str> = plan.pieces.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "staging/events/dt=2026-11-20/hour=03/beacon-events_shardId-000000000000_496500000000000000000002_496500000000000000000002.parquet",
                "staging/events/dt=2026-11-23/hour=10/beacon-events_shardId-000000000000_496500000000000000000001_496500000000000000000003.parquet",
            ]
        );
        assert_eq!(plan.pieces[1].events, vec![a, b]);
        assert_eq!(plan.dead_letters.len(), 1);
        assert!(
            plan.dead_letters[0]
                .reason
                .starts_with("lake: not an event"),
            "{}",
            plan.dead_letters[0].reason
        );
        // The same records give the same keys: a retry overwrites.
        let again = plan_staging(&records);
        assert_eq!(
            again.pieces.iter().map(|p| &p.key).collect::<Vec<_>>(),
            plan.pieces.iter().map(|p| &p.key).collect::<Vec<_>>()
        );
    }

    #[test]
    fn dedupe_keeps_the_first_received_per_tenant_and_id() {
        let first = event("x", EventType::Sent, "2026-11-23T10:00:00Z");
        let mut repeat = first.clone();
        repeat.received_at = at("2026-11-23T10:05:00Z");
        repeat.cost = Some(1.0);
        let mut other_tenant = first.clone();
        other_tenant.tenant_id = "globex".into();
        let (rows, dropped) = dedupe(vec![repeat, other_tenant.clone(), first.clone()]);
        assert_eq!(dropped, 1);
        assert_eq!(rows, vec![first, other_tenant]);
    }

    #[tokio::test]
    async fn retries_and_bisection_never_double_a_row_after_compaction() {
        let lake = MemoryLake::default();
        let letters = MemoryDeadLetters::default();
        let events: Vec<Event> = (0..10)
            .map(|i| event(&format!("e{i}"), EventType::Sent, "2026-11-23T10:00:00Z"))
            .collect();
        let records: Vec<StreamRecord> = events
            .iter()
            .enumerate()
            .map(|(i, e)| record(i as u64, e))
            .collect();
        // The whole batch, the same batch retried, then bisected halves.
        stage_batch(&lake, &letters, &records).await.unwrap();
        stage_batch(&lake, &letters, &records).await.unwrap();
        stage_batch(&lake, &letters, &records[..5]).await.unwrap();
        stage_batch(&lake, &letters, &records[5..]).await.unwrap();
        let p = Partition::of(events[0].event_time);
        assert_eq!(lake.list(&p.staging_prefix()).await.unwrap().len(), 3);

        // Not closed yet: nothing happens.
        let now = at("2026-11-23T11:05:00Z");
        let grace = Duration::minutes(10);
        assert!(compact_closed(&lake, now, grace).await.unwrap().is_empty());
        let done = compact_closed(&lake, at("2026-11-23T11:10:00Z"), grace)
            .await
            .unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(
            (
                done[0].pieces,
                done[0].added,
                done[0].duplicates,
                done[0].rows
            ),
            (3, 20, 10, 10)
        );
        assert_eq!(curated(&lake, p).await, events);
        assert!(lake.list(STAGING_PREFIX).await.unwrap().is_empty());

        // A re-run changes nothing; a late redelivery is merged and dropped.
        assert!(compact_closed(&lake, now + Duration::hours(1), grace)
            .await
            .unwrap()
            .is_empty());
        stage_batch(&lake, &letters, &records[3..4]).await.unwrap();
        let late = event("late", EventType::Opened, "2026-11-23T10:30:00Z");
        stage_batch(&lake, &letters, &[record(99, &late)])
            .await
            .unwrap();
        let done = compact_closed(&lake, now + Duration::days(1), grace)
            .await
            .unwrap();
        assert_eq!(
            (done[0].existing, done[0].duplicates, done[0].rows),
            (10, 1, 11)
        );
        let rows = curated(&lake, p).await;
        assert_eq!(rows.len(), 11);
        assert!(rows.contains(&late));
        assert!(letters.letters.lock().unwrap().is_empty());
    }

    /// Fails the first delete (a crash after the curated write), or writes the curated
    /// object behind the compaction's back once (a concurrent run).
    struct Interfering {
        inner: MemoryLake,
        fail_delete: std::sync::atomic::AtomicBool,
        sneak: Mutex<Option<(String, Vec<u8>)>>,
    }

    impl LakeStore for Interfering {
        async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, LakeError> {
            self.inner.get(key).await
        }
        async fn put(&self, key: &str, body: Vec<u8>, c: PutIf) -> Result<(), LakeError> {
            let sneak = self.sneak.lock().unwrap().take();
            if let Some((k, b)) = sneak {
                self.inner.put(&k, b, PutIf::Always).await?;
            }
            self.inner.put(key, body, c).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<LakeObject>, LakeError> {
            self.inner.list(prefix).await
        }
        async fn delete(&self, keys: &[String]) -> Result<(), LakeError> {
            if self
                .fail_delete
                .swap(false, std::sync::atomic::Ordering::SeqCst)
            {
                return Err(LakeError::Store("crashed before deleting".into()));
            }
            self.inner.delete(keys).await
        }
    }

    #[tokio::test]
    async fn a_crash_between_write_and_delete_and_a_concurrent_run_lose_and_double_nothing() {
        let a = event("a", EventType::Sent, "2026-11-23T10:00:00Z");
        let b = event("b", EventType::Sent, "2026-11-23T10:10:00Z");
        let p = Partition::of(a.event_time);
        let lake = Interfering {
            inner: MemoryLake::default(),
            fail_delete: true.into(),
            sneak: Mutex::new(None),
        };
        let letters = MemoryDeadLetters::default();
        stage_batch(&lake.inner, &letters, &[record(1, &a)])
            .await
            .unwrap();
        assert!(compact_partition(&lake, p, &[], false).await.is_err());
        // The piece is still there and its row is curated: the re-run drops it once.
        let again = compact_partition(&lake, p, &[], false).await.unwrap();
        assert_eq!((again.duplicates, again.rows), (1, 1));

        // Another run curates `b` between our read and our write: we start over.
        stage_batch(&lake.inner, &letters, &[record(2, &a)])
            .await
            .unwrap();
        let other = write_parquet(&[a.clone(), b.clone()]).unwrap();
        *lake.sneak.lock().unwrap() = Some((p.curated_key(), other));
        let done = compact_partition(&lake, p, &[], false).await.unwrap();
        assert_eq!(done.rows, 2);
        assert_eq!(curated(&lake.inner, p).await, vec![a, b]);
    }

    #[tokio::test]
    async fn a_rebuild_rewrites_and_backfills_an_hour() {
        let lake = MemoryLake::default();
        let a = event("a", EventType::Sent, "2026-11-23T10:00:00Z");
        let p = Partition::of(a.event_time);
        let nothing = compact_partition(&lake, p, &[], true).await.unwrap();
        assert!(!nothing.written, "no empty objects for empty hours");
        let first = compact_partition(&lake, p, std::slice::from_ref(&a), true)
            .await
            .unwrap();
        assert!(first.written);
        let again = compact_partition(&lake, p, std::slice::from_ref(&a), true)
            .await
            .unwrap();
        assert_eq!((again.existing, again.duplicates, again.rows), (1, 1, 1));
        assert_eq!(curated(&lake, p).await, vec![a]);
    }

    /// `n` events of every common kind, with distinct ids and times.
    fn many(n: usize) -> Vec<Event> {
        let kinds = [
            EventType::Sent,
            EventType::Delivered,
            EventType::Bounced,
            EventType::Opened,
            EventType::Clicked,
            EventType::Conversion,
        ];
        (0..n)
            .map(|i| {
                let time = Utc
                    .timestamp_millis_opt(1_795_392_000_000 + i as i64 * 997)
                    .unwrap();
                let mut e = event(
                    &format!("e-{i:08}"),
                    kinds[i % kinds.len()].clone(),
                    "2026-11-23T10:00:00.000Z",
                );
                e.event_time = time;
                e.received_at = time + Duration::milliseconds(150);
                match e.kind {
                    EventType::Bounced => {
                        e.bounce_type = Some(BounceType::Hard);
                        e.reason = Some(format!("550 5.1.1 user {i} unknown"));
                    }
                    EventType::Opened | EventType::Clicked => {
                        e.link_url = Some(format!("https://shop.example/p/{}", i % 50));
                        e.context = RequestContext {
                            ip: Some("203.0.113.0".into()),
                            user_agent: Some(if i % 3 == 0 {
                                "Mozilla/5.0".into()
                            } else {
                                format!("Mail/{i}")
                            }),
                            device_class: Some(DeviceClass::Mobile),
                            network: (i % 4 == 0).then(|| "unlisted".into()),
                        };
                    }
                    EventType::Conversion => {
                        // Quarters: exact in binary, so equal after the JSON trip (serde_json
                        // parses without float_roundtrip, which can be an ulp off).
                        e.value = Some(i as f64 / 4.0);
                        e.currency = Some("EUR".into());
                        e.properties = json!({"plan": "pro", "seats": i, "trial": i % 2 == 0})
                            .as_object()
                            .unwrap()
                            .clone();
                    }
                    _ => e.cost = Some(0.0001),
                }
                e
            })
            .collect()
    }

    fn ndjson(events: &[Event]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in events {
            out.extend(beacon_domain::tracking::sink::encode_record(e));
            out.push(b'\n');
        }
        out
    }

    fn convert(input: &[u8], options: ConvertOptions) -> Result<(Converted, Vec<u8>), LakeError> {
        let mut out = Vec::new();
        let done = convert_ndjson(input, &mut out, options, |_| {})?;
        Ok((done, out))
    }

    #[test]
    fn converting_ndjson_keeps_every_event_as_it_was() {
        let mut events = many(1_000);
        events.push(full_event());
        let mut input = ndjson(&events);
        // A blank line and a missing final newline are not bad lines.
        input.extend_from_slice(b"\n  \n");
        input.extend(beacon_domain::tracking::sink::encode_record(&events[0]));
        events.push(events[0].clone());
        let options = ConvertOptions {
            rows_per_batch: 64, // many batches, one of them partial
            ..ConvertOptions::default()
        };
        let mut calls = 0;
        let mut out = Vec::new();
        let done = convert_ndjson(&input[..], &mut out, options, |_| calls += 1).unwrap();
        assert_eq!(done.rows, events.len() as u64);
        assert_eq!((done.bad_lines, done.first_bad.len()), (0, 0));
        assert_eq!(done.bytes, out.len() as u64);
        assert_eq!(calls, events.len().div_ceil(64));
        assert_eq!(read_parquet(out.clone()).unwrap(), events);
        // The same file the batch writer makes, row for row.
        assert_eq!(
            read_parquet(write_parquet(&events).unwrap()).unwrap(),
            events
        );
        let file = SerializedFileReader::new(bytes::Bytes::from(out)).unwrap();
        assert_eq!(
            file.metadata().file_metadata().schema_descr().num_columns(),
            SCHEMA.fields().len()
        );
    }

    #[test]
    fn bad_lines_are_counted_and_reported_by_number_unless_strict() {
        let good = many(3);
        let mut input = Vec::new();
        let mut push = |line: &[u8]| {
            input.extend_from_slice(line);
            input.push(b'\n');
        };
        push(&beacon_domain::tracking::sink::encode_record(&good[0])); // line 1
        push(b"not json at all"); // 2
        push(&beacon_domain::tracking::sink::encode_record(&good[1])); // 3
        push(br#"{"event_id":"","tenant_id":"acme","type":"message.sent","event_time":"2026-11-23T10:00:00.000Z","received_at":"2026-11-23T10:00:00.000Z"}"#); // 4
        push(br#"{"event_id":"x","tenant_id":"acme","type":"message.nope","event_time":"2026-11-23T10:00:00.000Z","received_at":"2026-11-23T10:00:00.000Z"}"#); // 5
        for _ in 0..12 {
            push(b"{\"event_id\":"); // 6..=17: truncated
        }
        push(&beacon_domain::tracking::sink::encode_record(&good[2])); // 18

        let (done, out) = convert(&input, ConvertOptions::default()).unwrap();
        assert_eq!(done.rows, 3);
        assert_eq!(done.bad_lines, 15);
        let lines: Vec<u64> = done.first_bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [2, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert!(
            done.first_bad[0].reason.starts_with("not an event"),
            "{:?}",
            done.first_bad[0]
        );
        assert!(
            done.first_bad[1].reason.contains("must not be empty"),
            "{:?}",
            done.first_bad[1]
        );
        assert!(
            done.first_bad[2].reason.contains("message.nope"),
            "{:?}",
            done.first_bad[2]
        );
        assert_eq!(read_parquet(out).unwrap(), good);

        let strict = ConvertOptions {
            strict: true,
            ..ConvertOptions::default()
        };
        let err = convert(&input, strict).unwrap_err().to_string();
        assert!(err.contains("line 2: not an event"), "{err}");
        let clean = ndjson(&good);
        assert_eq!(convert(&clean, strict).unwrap().0.rows, 3);
    }

    #[test]
    fn the_writer_memory_stays_bounded_whatever_the_input_size() {
        const BUDGET: usize = 512 * 1024;
        let events = many(40_000);
        let input = ndjson(&events);
        let bounded = ConvertOptions {
            rows_per_batch: 500,
            memory_budget: BUDGET,
            strict: true,
        };
        let mut seen = Vec::new();
        let mut out = Vec::new();
        let done = convert_ndjson(&input[..], &mut out, bounded, |p| {
            seen.push(p.peak_writer_memory)
        })
        .unwrap();
        // The input is big enough that, unflushed, the writer would hold far more.
        let (unbounded, _) = convert(
            &input,
            ConvertOptions {
                memory_budget: usize::MAX,
                ..bounded
            },
        )
        .unwrap();
        assert!(
            unbounded.peak_writer_memory > 4 * BUDGET,
            "the input is too small to test the bound: {}",
            unbounded.peak_writer_memory
        );
        assert_eq!(unbounded.row_groups, 1);
        // Bounded: at most the budget plus the one batch that crossed it.
        assert!(seen.len() >= 80, "{} batches", seen.len());
        assert!(
            done.peak_writer_memory <= 2 * BUDGET,
            "writer held {} bytes, budget {BUDGET}",
            done.peak_writer_memory
        );
        assert!(done.row_groups > 4, "{} row groups", done.row_groups);
        assert_eq!(read_parquet(out).unwrap(), events);
    }
}
