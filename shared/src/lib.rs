//! Beacon's shared library: the domain (events, validation, tracking tokens, rollups,
//! alerts, engagement) as plain Rust, and the small adapters to AWS behind traits. The
//! features whose dependencies only some functions need have crates of their own beside
//! it: the lake (`shared/lake`, arrow and parquet), reports (`shared/report`: charts,
//! XLSX, PDF, MIME) and email instrumentation (`shared/instrument`, an HTML rewriter).
//!
//! Follow one open: `beacon-instrument` puts a signed pixel URL in the email; the open-pixel
//! function verifies it with [`token`], builds the event with [`tracking`] and hands it
//! to an [`sink::EventSink`], which in AWS is the Kinesis stream.

pub mod aggregate;
pub mod alert;
pub mod alert_run;
pub mod alert_store;
pub mod apikey;
pub mod audience_store;
pub mod classify;
pub mod config;
pub mod context;
pub mod deadletter;
pub mod dynamo;
pub mod engagement;
pub mod event;
pub mod http;
pub mod labeled;
pub mod mail;
pub mod metrics;
pub mod month_pack;
pub mod networks;
pub mod outbound;
pub mod rollup;
pub mod rollup_store;
pub mod s3;
pub mod segment_snapshot;
pub mod sink;
pub mod stats;
pub mod stats_store;
pub mod stream;
pub mod suppression;
pub mod tenant;
pub mod testkit;
pub mod token;
pub mod tracking;
pub mod trail;
pub mod validate;

pub use event::{Event, EventType};
