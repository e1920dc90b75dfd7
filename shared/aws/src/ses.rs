//! Amazon SES: sending a finished MIME message ([`beacon_domain::mail::Mailer`]).

use aws_sdk_sesv2::error::DisplayErrorContext;
use beacon_domain::mail::{MailError, Mailer};

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
