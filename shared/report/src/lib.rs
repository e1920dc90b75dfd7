//! Scheduled reports: definitions and their cadence ([`definition`]), the period that
//! just closed in the definition's time zone ([`period`]), the numbers of that period
//! read from the rollups ([`data`], into a [`model::ReportData`]), the files
//! ([`render`]), the email ([`mail`]), where they go ([`store`]: definitions and runs
//! in DynamoDB, files in S3, mail through SES) and the once-per-period run ([`run`]).

pub mod data;
pub mod definition;
pub mod mail;
pub mod model;
pub mod period;
pub mod render;
pub mod run;
pub mod store;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
