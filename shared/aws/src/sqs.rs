//! The SQS adapter for dead letters: records that can never be applied, with why.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use beacon_domain::event::stream::{DeadLetter, DeadLetterError, DeadLetterSink};

#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsDeadLetters {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        SqsDeadLetters {
            client,
            queue_url: queue_url.into(),
        }
    }
}

/// SQS messages are at most 256 KB; a larger record keeps its reason and a prefix.
const MAX_BODY: usize = 200 * 1024;

impl DeadLetterSink for SqsDeadLetters {
    async fn send(&self, letters: &[DeadLetter]) -> Result<(), DeadLetterError> {
        for chunk in letters.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, letter)| {
                    let mut letter = letter.clone();
                    if letter.data_base64.len() > MAX_BODY {
                        letter.data_base64.truncate(MAX_BODY);
                        letter
                            .reason
                            .push_str(" (record truncated in this message)");
                    }
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(serde_json::to_string(&letter).expect("serializable"))
                        .build()
                        .expect("id and body are set")
                })
                .collect();
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    DeadLetterError(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
                })?;
            if let Some(f) = out.failed().first() {
                return Err(DeadLetterError(format!(
                    "SQS refused a dead letter: {}",
                    f.message().unwrap_or(f.code())
                )));
            }
        }
        Ok(())
    }
}
