//! Sending a finished MIME message, for reports and alerts alike: the [`Mailer`] port,
//! its SES adapter and an in-memory fake.

use aws_sdk_sesv2::error::DisplayErrorContext;
use std::future::Future;
use std::sync::Mutex;
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

/// The SES v2 adapter (raw content: the caller builds the message).
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
}

impl SesMailer {
    pub fn new(client: aws_sdk_sesv2::Client) -> Self {
        SesMailer { client }
    }
}

impl Mailer for SesMailer {
    async fn send(&self, from: &str, to: &[String], raw: Vec<u8>) -> Result<String, MailError> {
        use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};
        let raw = RawMessage::builder()
            .data(aws_sdk_sesv2::primitives::Blob::new(raw))
            .build()
            .map_err(|e| MailError(format!("building the message: {e}")))?;
        let out = self
            .client
            .send_email()
            .from_email_address(from)
            .destination(
                Destination::builder()
                    .set_to_addresses(Some(to.to_vec()))
                    .build(),
            )
            .content(EmailContent::builder().raw(raw).build())
            .send()
            .await
            .map_err(|e| MailError(format!("sending through SES: {}", DisplayErrorContext(&e))))?;
        Ok(out.message_id.unwrap_or_default())
    }
}

/// One message kept by [`MemoryMailer`]: sender, recipients, raw MIME.
pub type SentMail = (String, Vec<String>, Vec<u8>);

/// Mail kept in memory; can be made to fail.
#[derive(Default)]
pub struct MemoryMailer {
    pub sent: Mutex<Vec<SentMail>>,
    pub failing: std::sync::atomic::AtomicBool,
}

impl Mailer for MemoryMailer {
    async fn send(&self, from: &str, to: &[String], raw: Vec<u8>) -> Result<String, MailError> {
        if self.failing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(MailError("the mailer is failing on purpose".into()));
        }
        let mut sent = self.sent.lock().unwrap();
        sent.push((from.to_string(), to.to_vec(), raw));
        Ok(format!("memory-{}", sent.len()))
    }
}
