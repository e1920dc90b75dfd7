//! The table: its Arrow schema, events to and from record batches, Parquet bytes, and
//! dropping duplicate event ids.

use crate::*;
use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use beacon_domain::event::{BounceType, DeviceClass, Event, EventType, RequestContext};
use chrono::{DateTime, TimeZone, Utc};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

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
pub(crate) struct EventColumns {
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
    pub(crate) fn with_capacity(n: usize) -> Self {
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

    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    pub(crate) fn push(&mut self, e: &Event) {
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
    pub(crate) fn finish(&mut self) -> Result<RecordBatch, LakeError> {
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
pub(crate) fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, LakeError> {
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
