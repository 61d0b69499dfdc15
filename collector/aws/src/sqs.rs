//! The SQS backend of `edgevote_queue::Queue`.
//!
//! Each region has a main queue and a dead-letter queue (DLQ) that the main queue's redrive
//! policy points at ([`create_queue_pair`]). The mapping to SQS:
//! - `send_batch` is `SendMessageBatch`, split so each request carries at most
//!   [`MAX_BATCH`] messages and [`MAX_BODY_BYTES`] of bodies (the SQS payload limit);
//! - `receive` is `ReceiveMessage` (long polling) with the `ApproximateReceiveCount` and
//!   `SentTimestamp` system attributes;
//! - `delete_batch` / `change_visibility` are the batch calls, in chunks of [`MAX_BATCH`];
//!   entries whose receipt handle is stale (the message was deleted or received again) are
//!   ignored, as the trait asks;
//! - `dead_letter` sends the body to the DLQ with the reason in the message attribute
//!   [`REASON_ATTRIBUTE`], then deletes the message from the main queue. If the delete fails the
//!   message is redelivered and may be dead-lettered twice (the DLQ is for people, who dedup by
//!   [`ORIGINAL_ID_ATTRIBUTE`]). Messages SQS moves itself (redrive after `maxReceiveCount`) have
//!   no reason attribute and are reported with [`REDRIVE_REASON`]. The attributes add about
//!   100 bytes plus the reason to the message, so a body within that of the queue's size limit
//!   cannot be dead-lettered this way (`dead_letter` fails; the redrive policy still moves it);
//! - `peek_dead_letters` receives DLQ messages, hiding them for [`PEEK_HIDE_SECS`] so successive
//!   receives return new ones, then makes them visible again at once;
//! - `stats` is `GetQueueAttributes`. SQS has no attribute for the oldest message's age (that is
//!   a CloudWatch metric), so `oldest_age_ms` is always 0.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry,
    DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use edgevote_queue::{
    DeadLetter, MAX_BATCH, MAX_BODY_BYTES, MAX_VISIBILITY, Queue, QueueError, QueueStats, Received,
    bounded_reason, check_receive, check_send, check_visibility,
};
use serde::Deserialize;

/// Message attribute (String) of a dead letter: why it was dead-lettered.
pub const REASON_ATTRIBUTE: &str = "edgevote_reason";
/// Message attribute (String) of a dead letter: the id of the message on the main queue.
pub const ORIGINAL_ID_ATTRIBUTE: &str = "edgevote_message_id";
/// Message attribute (Number) of a dead letter: its receive count when it was dead-lettered.
pub const RECEIVE_COUNT_ATTRIBUTE: &str = "edgevote_receive_count";
/// Reason reported for dead letters that SQS moved by the redrive policy.
pub const REDRIVE_REASON: &str = "max_receives_exceeded";
/// Most handles in one `delete_batch` or `change_visibility` call.
pub const MAX_HANDLES: usize = 10 * MAX_BATCH;
/// Most dead letters one `peek_dead_letters` call returns.
pub const MAX_PEEK: usize = 1_000;
/// How long `peek_dead_letters` hides the dead letters it has read (released when it returns).
pub const PEEK_HIDE_SECS: i32 = 30;
/// Long-poll wait of each peek receive (short polls may miss messages on SQS).
pub const PEEK_WAIT_SECS: i32 = 1;
/// Message retention of both queues: 14 days, the SQS maximum.
pub const RETENTION_SECS: u32 = 14 * 24 * 3600;
/// Batch entry error codes that mean "stale receipt handle": ignored by delete and visibility.
const STALE_HANDLE_CODES: [&str; 3] = [
    "ReceiptHandleIsInvalid",
    "AWS.SimpleQueueService.ReceiptHandleIsInvalid",
    "MessageNotInflight",
];

/// Where a region's queues are.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SqsQueueConfig {
    /// URL of the main queue.
    pub queue_url: String,
    /// URL of the dead-letter queue (the target of the main queue's redrive policy).
    pub dead_letter_queue_url: String,
    /// AWS region of both queues, e.g. `eu-west-1`.
    pub region: String,
    /// Custom endpoint (moto, LocalStack); `None` for AWS itself.
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

/// A queue on Amazon SQS.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    dlq_url: String,
}

fn sdk_err<E: std::error::Error>(stage: &'static str) -> impl FnOnce(E) -> QueueError {
    move |e| QueueError::backend(stage, DisplayErrorContext(e))
}

/// Whole seconds of a duration, for SQS's integer fields (bounded by the callers' checks).
fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

impl SqsQueue {
    /// Connects with the SDK configuration of `config` (see [`crate::client::sdk_config`]).
    pub async fn connect(config: &SqsQueueConfig) -> Self {
        let sdk = crate::client::sdk_config(&config.region, config.endpoint_url.as_deref()).await;
        Self::with_client(
            Client::new(&sdk),
            &config.queue_url,
            &config.dead_letter_queue_url,
        )
    }

    /// Uses an explicit client (tests, or a client configured by the caller).
    pub fn with_client(client: Client, queue_url: &str, dead_letter_queue_url: &str) -> Self {
        SqsQueue {
            client,
            queue_url: queue_url.to_owned(),
            dlq_url: dead_letter_queue_url.to_owned(),
        }
    }

    /// The main queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// The dead-letter queue's URL.
    pub fn dead_letter_queue_url(&self) -> &str {
        &self.dlq_url
    }

    /// Sends one `SendMessageBatch` of at most [`MAX_BATCH`] bodies; returns the message ids.
    async fn send_chunk(&self, bodies: &[String]) -> Result<Vec<String>, QueueError> {
        let entries = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .map_err(sdk_err("send"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(sdk_err("send"))?;
        if !out.failed().is_empty() {
            return Err(batch_failure("send", out.failed().iter()));
        }
        let mut ids = vec![None; bodies.len()];
        for entry in out.successful() {
            if let Some(slot) = entry
                .id()
                .parse::<usize>()
                .ok()
                .and_then(|i| ids.get_mut(i))
            {
                *slot = Some(entry.message_id().to_owned());
            }
        }
        ids.into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| QueueError::backend("send", "SendMessageBatch left entries unanswered"))
    }

    /// Deletes up to [`MAX_BATCH`] messages with one `DeleteMessageBatch`.
    async fn delete_chunk(&self, handles: &[String]) -> Result<(), QueueError> {
        let entries = handles
            .iter()
            .enumerate()
            .map(|(i, handle)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build()
                    .map_err(sdk_err("delete"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(sdk_err("delete"))?;
        check_handle_failures("delete", out.failed())
    }

    /// Sets the visibility of up to [`MAX_BATCH`] messages with one batch call.
    async fn visibility_chunk(&self, handles: &[String], seconds: i32) -> Result<(), QueueError> {
        let stage = "change_visibility";
        let entries = handles
            .iter()
            .enumerate()
            .map(|(i, handle)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .visibility_timeout(seconds)
                    .build()
                    .map_err(sdk_err(stage))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(sdk_err(stage))?;
        check_handle_failures(stage, out.failed())
    }

    /// Receives up to `max` dead letters and hides them for [`PEEK_HIDE_SECS`].
    async fn peek_round(&self, max: usize) -> Result<Vec<(String, DeadLetter)>, QueueError> {
        let stage = "dead_letters";
        let out = self
            .client
            .receive_message()
            .queue_url(&self.dlq_url)
            .max_number_of_messages(
                i32::try_from(max.min(MAX_BATCH)).expect("at most MAX_BATCH (10) messages"),
            )
            .wait_time_seconds(PEEK_WAIT_SECS)
            .visibility_timeout(PEEK_HIDE_SECS)
            .message_attribute_names(REASON_ATTRIBUTE)
            .message_attribute_names(ORIGINAL_ID_ATTRIBUTE)
            .message_attribute_names(RECEIVE_COUNT_ATTRIBUTE)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(sdk_err(stage))?;
        out.messages().iter().map(dead_letter_of).collect()
    }

    /// Makes peeked dead letters visible again (best effort: they reappear anyway after
    /// [`PEEK_HIDE_SECS`]).
    async fn release_dead_letters(&self, handles: &[String]) {
        for chunk in handles.chunks(MAX_BATCH).take(MAX_PEEK.div_ceil(MAX_BATCH)) {
            let entries = chunk.iter().enumerate().filter_map(|(i, handle)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .build()
                    .ok()
            });
            let sent = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.dlq_url)
                .set_entries(Some(entries.collect()))
                .send()
                .await;
            if let Err(e) = sent {
                tracing::warn!(error = %DisplayErrorContext(&e), "dead letters not released after peek");
            }
        }
    }

    async fn depths(
        &self,
        url: &str,
        names: &[QueueAttributeName],
    ) -> Result<Vec<u64>, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(sdk_err("stats"))?;
        let attributes = out.attributes();
        names
            .iter()
            .map(|name| {
                attributes
                    .and_then(|a| a.get(name))
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| QueueError::backend("stats", format!("no numeric {name}")))
            })
            .collect()
    }
}

/// Fails on any entry whose handle is not merely stale.
fn check_handle_failures(
    stage: &'static str,
    failed: &[BatchResultErrorEntry],
) -> Result<(), QueueError> {
    let (stale, real): (Vec<_>, Vec<_>) = failed
        .iter()
        .partition(|e| STALE_HANDLE_CODES.contains(&e.code()));
    for entry in &stale {
        tracing::debug!(stage, code = entry.code(), "stale receipt handle ignored");
    }
    if real.is_empty() {
        return Ok(());
    }
    Err(batch_failure(stage, real.into_iter()))
}

fn batch_failure<'a>(
    stage: &'static str,
    failed: impl Iterator<Item = &'a BatchResultErrorEntry>,
) -> QueueError {
    let detail: Vec<String> = failed
        .take(MAX_BATCH)
        .map(|e| {
            format!(
                "entry {}: {} {}",
                e.id(),
                e.code(),
                e.message().unwrap_or("")
            )
        })
        .collect();
    tracing::warn!(stage, failures = detail.len(), "sqs batch entries failed");
    QueueError::backend(stage, detail.join("; "))
}

/// Splits bodies into SQS requests: at most [`MAX_BATCH`] messages and [`MAX_BODY_BYTES`] of
/// bodies each.
fn send_chunks(bodies: &[String]) -> Vec<&[String]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, body) in bodies.iter().enumerate() {
        if i > start && (i - start == MAX_BATCH || bytes + body.len() > MAX_BODY_BYTES) {
            chunks.push(&bodies[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += body.len();
    }
    if start < bodies.len() {
        chunks.push(&bodies[start..]);
    }
    chunks
}

fn check_handles(stage: &'static str, handles: &[String]) -> Result<(), QueueError> {
    if handles.len() > MAX_HANDLES {
        return Err(QueueError::Invalid {
            stage,
            detail: format!("{} handles, at most {MAX_HANDLES}", handles.len()),
        });
    }
    Ok(())
}

fn system_number(
    stage: &'static str,
    message: &Message,
    name: MessageSystemAttributeName,
) -> Result<u64, QueueError> {
    message
        .attributes()
        .and_then(|a| a.get(&name))
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| QueueError::backend(stage, format!("message without numeric {name}")))
}

fn required<'a>(
    stage: &'static str,
    value: Option<&'a str>,
    what: &str,
) -> Result<&'a str, QueueError> {
    value.ok_or_else(|| QueueError::backend(stage, format!("message without {what}")))
}

fn received_of(message: &Message) -> Result<Received, QueueError> {
    let stage = "receive";
    let count = system_number(
        stage,
        message,
        MessageSystemAttributeName::ApproximateReceiveCount,
    )?;
    Ok(Received {
        id: required(stage, message.message_id(), "id")?.to_owned(),
        handle: required(stage, message.receipt_handle(), "receipt handle")?.to_owned(),
        body: required(stage, message.body(), "body")?.to_owned(),
        receive_count: u32::try_from(count).unwrap_or(u32::MAX),
        sent_at_ms: system_number(stage, message, MessageSystemAttributeName::SentTimestamp)?,
    })
}

fn string_attribute<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message.message_attributes()?.get(name)?.string_value()
}

/// A dead letter from a DLQ message, with the DLQ receipt handle.
fn dead_letter_of(message: &Message) -> Result<(String, DeadLetter), QueueError> {
    let stage = "dead_letters";
    let dlq_id = required(stage, message.message_id(), "id")?;
    // Our own peek counted as one receive.
    let seen = system_number(
        stage,
        message,
        MessageSystemAttributeName::ApproximateReceiveCount,
    )?;
    let recorded = string_attribute(message, RECEIVE_COUNT_ATTRIBUTE).and_then(|n| n.parse().ok());
    let letter = DeadLetter {
        id: string_attribute(message, ORIGINAL_ID_ATTRIBUTE)
            .unwrap_or(dlq_id)
            .to_owned(),
        reason: string_attribute(message, REASON_ATTRIBUTE)
            .unwrap_or(REDRIVE_REASON)
            .to_owned(),
        body: required(stage, message.body(), "body")?.to_owned(),
        receive_count: recorded
            .unwrap_or_else(|| u32::try_from(seen.saturating_sub(1)).unwrap_or(u32::MAX)),
    };
    let handle = required(stage, message.receipt_handle(), "receipt handle")?;
    Ok((handle.to_owned(), letter))
}

fn attribute(
    stage: &'static str,
    data_type: &str,
    value: &str,
) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type(data_type)
        .string_value(value)
        .build()
        .map_err(sdk_err(stage))
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send_batch(&self, bodies: Vec<String>) -> Result<Vec<String>, QueueError> {
        check_send(&bodies)?;
        let mut ids = Vec::with_capacity(bodies.len());
        for chunk in send_chunks(&bodies) {
            ids.extend(self.send_chunk(chunk).await?);
        }
        tracing::debug!(messages = ids.len(), queue = %self.queue_url, "sqs batch sent");
        Ok(ids)
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        check_receive(max, wait, visibility)?;
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(
                i32::try_from(max).expect("check_receive bounds max to 1..=MAX_BATCH"),
            )
            .wait_time_seconds(secs(wait))
            .visibility_timeout(secs(visibility))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(sdk_err("receive"))?;
        out.messages().iter().map(received_of).collect()
    }

    async fn delete_batch(&self, handles: Vec<String>) -> Result<(), QueueError> {
        check_handles("delete", &handles)?;
        for chunk in handles.chunks(MAX_BATCH) {
            self.delete_chunk(chunk).await?;
        }
        Ok(())
    }

    async fn change_visibility(
        &self,
        handles: Vec<String>,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        let stage = "change_visibility";
        check_handles(stage, &handles)?;
        check_visibility(stage, visibility)?;
        for chunk in handles.chunks(MAX_BATCH) {
            self.visibility_chunk(chunk, secs(visibility)).await?;
        }
        Ok(())
    }

    async fn dead_letter(&self, message: &Received, reason: &str) -> Result<(), QueueError> {
        let stage = "dead_letter";
        // SQS refuses empty attribute values.
        let reason = Some(bounded_reason(reason))
            .filter(|r| !r.is_empty())
            .unwrap_or("unspecified");
        self.client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(&message.body)
            .message_attributes(REASON_ATTRIBUTE, attribute(stage, "String", reason)?)
            .message_attributes(
                ORIGINAL_ID_ATTRIBUTE,
                attribute(stage, "String", &message.id)?,
            )
            .message_attributes(
                RECEIVE_COUNT_ATTRIBUTE,
                attribute(stage, "Number", &message.receive_count.to_string())?,
            )
            .send()
            .await
            .map_err(sdk_err(stage))?;
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(&message.handle)
            .send()
            .await
            .map_err(sdk_err(stage))?;
        tracing::warn!(id = %message.id, receive_count = message.receive_count, reason, "queue message dead-lettered");
        Ok(())
    }

    async fn peek_dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let max = max.min(MAX_PEEK);
        let (mut letters, mut handles) = (Vec::new(), Vec::new());
        let mut seen = HashSet::new();
        for _ in 0..max.div_ceil(MAX_BATCH) {
            let round = match self.peek_round(max - letters.len()).await {
                Ok(round) => round,
                Err(e) => {
                    self.release_dead_letters(&handles).await;
                    return Err(e);
                }
            };
            if round.is_empty() {
                break;
            }
            for (handle, letter) in round {
                handles.push(handle);
                if letters.len() < max && seen.insert(letter.id.clone()) {
                    letters.push(letter);
                }
            }
        }
        self.release_dead_letters(&handles).await;
        Ok(letters)
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let main = self
            .depths(
                &self.queue_url,
                &[
                    QueueAttributeName::ApproximateNumberOfMessages,
                    QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                ],
            )
            .await?;
        let dead = self
            .depths(
                &self.dlq_url,
                &[QueueAttributeName::ApproximateNumberOfMessages],
            )
            .await?;
        let one_per_name = "depths answers one number per attribute asked, or an error";
        Ok(QueueStats {
            visible: *main.first().expect(one_per_name),
            in_flight: *main.get(1).expect(one_per_name),
            dead_letters: *dead.first().expect(one_per_name),
            oldest_age_ms: 0,
            commits: None,
        })
    }
}

/// Creates (or finds, CreateQueue is idempotent) a dead-letter queue `{name}-dlq` and a main
/// queue `name` whose redrive policy moves a message there after `max_receives` receives.
/// Returns `(queue_url, dead_letter_queue_url)`. For tests and `edgevote` dev provisioning;
/// production queues come from the infrastructure templates.
pub async fn create_queue_pair(
    client: &Client,
    name: &str,
    max_receives: u32,
    visibility_timeout_secs: u32,
) -> Result<(String, String), QueueError> {
    let stage = "create_queue";
    if !(1..=1000).contains(&max_receives)
        || u64::from(visibility_timeout_secs) > MAX_VISIBILITY.as_secs()
    {
        return Err(QueueError::Invalid {
            stage,
            detail: format!(
                "max_receives {max_receives} (1..=1000), visibility {visibility_timeout_secs} s"
            ),
        });
    }
    let retention = (
        QueueAttributeName::MessageRetentionPeriod,
        RETENTION_SECS.to_string(),
    );
    let dlq_url = create_queue(client, &format!("{name}-dlq"), vec![retention.clone()]).await?;
    let dlq_arn = queue_arn(client, &dlq_url).await?;
    let redrive =
        format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receives}"}}"#);
    let attributes = vec![
        retention,
        (
            QueueAttributeName::VisibilityTimeout,
            visibility_timeout_secs.to_string(),
        ),
        (QueueAttributeName::RedrivePolicy, redrive),
    ];
    let url = create_queue(client, name, attributes).await?;
    tracing::info!(queue = %url, dead_letter_queue = %dlq_url, max_receives, "sqs queue pair ready");
    Ok((url, dlq_url))
}

async fn create_queue(
    client: &Client,
    name: &str,
    attributes: Vec<(QueueAttributeName, String)>,
) -> Result<String, QueueError> {
    let out = client
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes.into_iter().collect()))
        .send()
        .await
        .map_err(sdk_err("create_queue"))?;
    out.queue_url()
        .map(str::to_owned)
        .ok_or_else(|| QueueError::backend("create_queue", "CreateQueue returned no URL"))
}

async fn queue_arn(client: &Client, url: &str) -> Result<String, QueueError> {
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(sdk_err("create_queue"))?;
    out.attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| QueueError::backend("create_queue", format!("no QueueArn for {url}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_chunks_respect_count_and_bytes() {
        let small: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
        assert_eq!(send_chunks(&small).len(), 1);
        let big: Vec<String> = (0..3).map(|_| "x".repeat(MAX_BODY_BYTES / 2 + 1)).collect();
        let chunks = send_chunks(&big);
        assert_eq!(
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![1, 1, 1]
        );
        let halves: Vec<String> = (0..4).map(|_| "x".repeat(MAX_BODY_BYTES / 2)).collect();
        assert_eq!(send_chunks(&halves).len(), 2);
    }
}
