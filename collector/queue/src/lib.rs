//! The regional queue between edges and collectors, with Amazon SQS semantics:
//! at-least-once, unordered delivery; a visibility timeout after each receive; a receive count;
//! a dead-letter queue after `max_receives`; batch send, receive and delete.
//!
//! [`Queue`] is the trait every backend implements. [`embedded::EmbeddedQueue`] is the durable
//! on-disk backend the local stack uses (redb); the SQS backend lives in `edgevote-aws`.
//! Edge hosts use `send_batch`; collectors use the rest.

pub mod embedded;

use std::time::Duration;

use async_trait::async_trait;

/// Most messages in one send, receive or delete call (the SQS batch limit).
pub const MAX_BATCH: usize = 10;
/// Largest message body in bytes (the classic SQS limit).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Longest visibility timeout (SQS: 12 hours).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);
/// Longest long-poll wait (SQS: 20 s).
pub const MAX_WAIT: Duration = Duration::from_secs(20);
/// Longest dead-letter reason kept.
pub const MAX_REASON_BYTES: usize = 512;

/// A message handed to a consumer. It stays invisible to other consumers until the visibility
/// timeout passes; delete it (with `handle`) once its work is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Stable id of the message.
    pub id: String,
    /// Handle for delete / visibility calls; valid for this receive only.
    pub handle: String,
    /// The body.
    pub body: String,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
    /// When the message was sent, unix milliseconds.
    pub sent_at_ms: u64,
}

/// A message moved to the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Id of the original message.
    pub id: String,
    /// Why it was dead-lettered (a stable code, optionally with detail).
    pub reason: String,
    /// The body.
    pub body: String,
    /// Receive count when it was moved.
    pub receive_count: u32,
}

/// Depths and ages, for metrics and `edgevote up`'s table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages ready to be received.
    pub visible: u64,
    /// Messages received and not yet deleted or visible again.
    pub in_flight: u64,
    /// Messages in the dead-letter queue.
    pub dead_letters: u64,
    /// Age of the oldest message, in milliseconds (0 when empty).
    pub oldest_age_ms: u64,
    /// Durable commits the queue's own writer has made since this process opened it (the
    /// embedded queue: each one fsync); `None` for a service that does not say (SQS).
    pub commits: Option<u64>,
}

/// Why a queue call failed. The stage names the call.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The backend failed (I/O, storage, network, service error).
    #[error("queue {stage} failed: {detail}")]
    Backend {
        /// The call that failed (`send`, `receive`, ...).
        stage: &'static str,
        /// The backend's message.
        detail: String,
    },
    /// A request broke a bound (batch size, body size, timeout).
    #[error("queue {stage} refused: {detail}")]
    Invalid {
        /// The call.
        stage: &'static str,
        /// What was out of bounds.
        detail: String,
    },
}

impl QueueError {
    /// Shorthand for [`QueueError::Backend`].
    pub fn backend(stage: &'static str, detail: impl std::fmt::Display) -> Self {
        QueueError::Backend {
            stage,
            detail: detail.to_string(),
        }
    }
}

/// A queue with SQS semantics.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Appends up to [`MAX_BATCH`] messages. When this returns `Ok`, every message is durable
    /// (fsync'd, or accepted by SQS); on `Err` none or some may be, so the caller must treat
    /// the whole batch as unsent and may resend it (consumers dedup).
    async fn send_batch(&self, bodies: Vec<String>) -> Result<Vec<String>, QueueError>;

    /// Receives up to `max` (≤ [`MAX_BATCH`]) visible messages, waiting up to `wait` for the
    /// first one, and hides them for `visibility`.
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Received>, QueueError>;

    /// Deletes received messages. Handles from an earlier receive of a message that has since
    /// been received again are ignored (the newer consumer owns it).
    async fn delete_batch(&self, handles: Vec<String>) -> Result<(), QueueError>;

    /// Sets the remaining visibility of received messages (to extend work on a slow batch, or
    /// 0 to release them at once).
    async fn change_visibility(
        &self,
        handles: Vec<String>,
        visibility: Duration,
    ) -> Result<(), QueueError>;

    /// Moves a received message to the dead-letter queue with a reason.
    async fn dead_letter(&self, message: &Received, reason: &str) -> Result<(), QueueError>;

    /// Reads up to `max` dead letters without removing them (operators, tests).
    async fn peek_dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError>;

    /// Current depths.
    async fn stats(&self) -> Result<QueueStats, QueueError>;
}

/// Checks the bounds every backend enforces on a send.
pub fn check_send(bodies: &[String]) -> Result<(), QueueError> {
    if bodies.is_empty() || bodies.len() > MAX_BATCH {
        return Err(QueueError::Invalid {
            stage: "send",
            detail: format!("{} messages, expected 1..={MAX_BATCH}", bodies.len()),
        });
    }
    if let Some(body) = bodies
        .iter()
        .find(|b| b.len() > MAX_BODY_BYTES || b.is_empty())
    {
        return Err(QueueError::Invalid {
            stage: "send",
            detail: format!(
                "body of {} bytes, expected 1..={MAX_BODY_BYTES}",
                body.len()
            ),
        });
    }
    Ok(())
}

/// Checks the bounds of a receive.
pub fn check_receive(max: usize, wait: Duration, visibility: Duration) -> Result<(), QueueError> {
    let problem = if max == 0 || max > MAX_BATCH {
        Some(format!("max {max}, expected 1..={MAX_BATCH}"))
    } else if wait > MAX_WAIT {
        Some(format!("wait {wait:?} longer than {MAX_WAIT:?}"))
    } else {
        None
    };
    match problem {
        Some(detail) => Err(QueueError::Invalid {
            stage: "receive",
            detail,
        }),
        None => check_visibility("receive", visibility),
    }
}

/// Checks a visibility timeout (of a receive, or a change of visibility): at most
/// [`MAX_VISIBILITY`], as SQS allows. Every backend checks it, the simulated one too.
pub fn check_visibility(stage: &'static str, visibility: Duration) -> Result<(), QueueError> {
    if visibility > MAX_VISIBILITY {
        return Err(QueueError::Invalid {
            stage,
            detail: format!("visibility {visibility:?} longer than {MAX_VISIBILITY:?}"),
        });
    }
    Ok(())
}

/// Truncates a dead-letter reason to [`MAX_REASON_BYTES`] on a character boundary.
pub fn bounded_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_BYTES {
        return reason;
    }
    let mut end = MAX_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Current unix time in milliseconds: the embedded backend's own clock (send times,
/// visibility). Other crates take the wall clock from `edgevote_signer::clock`.
pub(crate) fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    millis(since)
}

/// A duration in whole milliseconds, saturating (visibility timeouts, ages).
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
