//! Beacon's adapters to AWS: one module per service, each implementing the ports of
//! `beacon-domain` (a DynamoDB store, the Kinesis sink, the SQS dead-letter queue, the SES
//! mailer), plus what every function does at start ([`config`]) and the HTTP glue of the
//! API Gateway functions ([`http`]). Nothing here decides anything: the rules are in
//! `beacon-domain`; this crate moves bytes to and from AWS.
//!
//! The lake and the reports keep their S3 adapters in their own crates (`beacon-lake`,
//! `beacon-report`), so a function that writes neither never builds arrow, parquet or
//! the renderers.

pub mod config;
pub mod dynamo;
pub mod http;
pub mod kinesis;
pub mod s3;
pub mod ses;
pub mod sqs;
pub mod webhook;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
