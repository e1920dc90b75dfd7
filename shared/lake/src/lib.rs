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

pub mod compact;
pub mod convert;
pub mod etl;
pub mod partition;
pub mod schema;
pub mod store;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use compact::*;
pub use convert::*;
pub use etl::*;
pub use partition::*;
pub use schema::*;

use std::future::Future;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::column;
    use crate::testkit::MemoryLake;
    use arrow_array::cast::AsArray;
    use arrow_array::Array;
    use arrow_schema::{DataType, TimeUnit};
    use beacon_domain::event::stream::StreamRecord;
    use beacon_domain::event::{BounceType, DeviceClass, Event, EventType, RequestContext};
    use beacon_domain::testkit::memory::MemoryDeadLetters;
    use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Compression;
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
