//! Beacon's adapters to AWS: one module per service, each implementing the ports of
//! `beacon-domain` (a DynamoDB store, the Kinesis sink, the SQS dead-letter queue, the SES
//! mailer), plus what every function does at start ([`config`]) and the HTTP glue of the
//! API Gateway functions ([`http`]). Nothing here decides anything: the rules are in
//! `beacon-domain`; this crate moves bytes to and from AWS.
//!
//! Each service is a feature (`dynamo`, `kinesis`, `sqs`, `ses`, `s3`, plus `http` and
//! `webhook`), so a function builds only the SDKs it uses.
//!
//! The lake and the reports keep their S3 adapters in their own crates (`beacon-lake`,
//! `beacon-report`), so a function that writes neither never builds arrow, parquet or
//! the renderers.

pub mod config;
#[cfg(feature = "dynamo")]
pub mod dynamo;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "kinesis")]
pub mod kinesis;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "ses")]
pub mod ses;
#[cfg(feature = "sqs")]
pub mod sqs;
#[cfg(feature = "webhook")]
pub mod webhook;

#[cfg(feature = "testkit")]
pub mod testkit;
