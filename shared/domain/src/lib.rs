//! Beacon's domain, in plain Rust: no AWS SDK, no Lambda runtime, no HTTP, no async
//! runtime. Everything here is unit-tested without AWS; the functions pair it with the
//! adapters of `beacon-aws` (one module per AWS service) and, where they need them,
//! the lake (`beacon-lake`), reports (`beacon-report`) and email instrumentation
//! (`beacon-instrument`).
//!
//! A port (a trait a function needs a store or a sender behind) lives here beside the
//! domain that uses it; its AWS implementation is in `beacon-aws`, its in-memory one in
//! `testkit` (the `testkit` feature: tests and benchmarks only).
//!
//! Follow one open: `beacon-instrument` puts a signed pixel URL in the email; the open
//! pixel verifies it ([`tracking::token`]), builds the event ([`tracking`], [`event`])
//! and puts it on the stream ([`tracking::sink`]). The aggregate gives it a verdict
//! ([`verdict`]) and folds it into the rollups exactly once ([`rollup::aggregate`]); the
//! stats API reads them back ([`rollup::reader`], [`stats`]).

/// Declares an error that is a message for a person (a refusal, what a store or a
/// provider answered): it shows as the message, and reads as one (`error.contains(..)`).
#[macro_export]
macro_rules! message_error {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[error("{0}")]
        pub struct $name(pub String);

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

// What happened: the event model, its validation, and the stream that carries it.
pub mod event;
pub mod tenant;

// Tracking links: tokens, and turning a verified one into an event.
pub mod tracking;

// Provider events (SES, SendGrid, Mailgun, Postmark, Twilio): verified and mapped.
pub mod ingest;

// Human or machine.
pub mod verdict;

// What the events add up to, and reading it back.
pub mod rollup;
pub mod stats;

// Acting on the numbers: alerts, and the recipients behind them.
pub mod alert;
pub mod audience;

// Access and delivery: API keys, dashboard links, mail, configuration, metrics.
pub mod apikey;
pub mod config;
pub mod dashboard;
pub mod mail;
pub mod metrics;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use event::{Event, EventType};
