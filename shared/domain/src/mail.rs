//! Sending a finished MIME message, for reports and alerts alike: the [`Mailer`] port.
//! Its SES adapter is `beacon_aws::ses`; an in-memory one is in `crate::testkit`.

use std::future::Future;
use thiserror::Error;

/// Why a message was not sent.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct MailError(pub String);

/// Sends a finished MIME message.
pub trait Mailer: Send + Sync {
    /// The provider's message id.
    fn send(
        &self,
        from: &str,
        to: &[String],
        raw: Vec<u8>,
    ) -> impl Future<Output = Result<String, MailError>> + Send;
}
