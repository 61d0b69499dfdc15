//! Group commit: the envelopes of concurrent votes are packed into one queue message (one
//! envelope per line), bounded by count, bytes and a few milliseconds of waiting. Each waiting
//! vote learns the outcome only once the message is durable, so a receipt is never signed for a
//! vote that could still be lost.
//!
//! When the queue refuses a message and the spill log is enabled, the message is fsync'd to the
//! spill log instead and the votes are acknowledged; [`forward_spill`] moves spilled messages
//! to the queue when it is back (also after a restart). A message forwarded twice (crash
//! between the send and the spill delete) is deduplicated by the collector, whose store keys
//! ballots by vote id.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use edgevote_queue::Queue;
use edgevote_queue::embedded::EmbeddedQueue;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::config::GroupCommitConfig;
use crate::metrics::Metrics;

/// Commits in flight at once (one being written while the next batch fills).
const COMMITS_IN_FLIGHT: usize = 2;
/// Pause of the spill forwarder between attempts while the queue is down.
const FORWARD_RETRY: Duration = Duration::from_millis(500);

/// Why a vote could not be made durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    /// The queue refused the message and the spill log is off (or failed too).
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// The committer is shutting down.
    #[error("edge host is shutting down")]
    ShuttingDown,
    /// The envelope alone is larger than a queue message may be.
    #[error("envelope of {0} bytes does not fit in a queue message")]
    TooLarge(usize),
}

/// Where a vote ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Durable {
    /// In the regional queue, in the message with this id.
    Queued(String),
    /// In the local spill log (fsync'd), to be forwarded.
    Spilled(String),
}

struct Pending {
    envelope: String,
    done: oneshot::Sender<Result<Durable, CommitError>>,
}

/// The handle requests use to commit their envelope.
#[derive(Debug, Clone)]
pub struct Committer {
    tx: mpsc::Sender<Pending>,
    max_message_bytes: usize,
}

impl Committer {
    /// Starts the group-commit task over `queue` (and `spill`, if enabled).
    pub fn start(
        config: GroupCommitConfig,
        queue: Arc<dyn Queue>,
        spill: Option<Arc<EmbeddedQueue>>,
        metrics: Arc<Metrics>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let committer = Committer {
            tx,
            max_message_bytes: config.max_message_bytes,
        };
        let task = tokio::spawn(run(config, rx, queue, spill, metrics));
        (committer, task)
    }

    /// Commits one envelope; returns once it is durable (or definitely not).
    pub async fn commit(&self, envelope: String) -> Result<Durable, CommitError> {
        if envelope.len() + 1 > self.max_message_bytes {
            return Err(CommitError::TooLarge(envelope.len()));
        }
        let (done, outcome) = oneshot::channel();
        self.tx
            .send(Pending { envelope, done })
            .await
            .map_err(|_| CommitError::ShuttingDown)?;
        outcome.await.map_err(|_| CommitError::ShuttingDown)?
    }
}

async fn run(
    config: GroupCommitConfig,
    mut rx: mpsc::Receiver<Pending>,
    queue: Arc<dyn Queue>,
    spill: Option<Arc<EmbeddedQueue>>,
    metrics: Arc<Metrics>,
) {
    let in_flight = Arc::new(Semaphore::new(COMMITS_IN_FLIGHT));
    let mut carry: Option<Pending> = None;
    loop {
        let Some(first) = carry.take().or(rx.recv().await) else {
            break; // every sender dropped: shutdown
        };
        let (batch, next) = fill(first, &mut rx, &config).await;
        carry = next;
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let (queue, spill, metrics) = (Arc::clone(&queue), spill.clone(), Arc::clone(&metrics));
        tokio::spawn(async move {
            write(batch, queue.as_ref(), spill.as_deref(), &metrics).await;
            drop(permit);
        });
    }
    // Wait for the last writes before reporting the committer stopped.
    let _ = in_flight.acquire_many(COMMITS_IN_FLIGHT as u32).await;
}

/// Collects envelopes after `first` until a bound is hit; returns the batch and, if the next
/// envelope did not fit, that envelope.
async fn fill(
    first: Pending,
    rx: &mut mpsc::Receiver<Pending>,
    config: &GroupCommitConfig,
) -> (Vec<Pending>, Option<Pending>) {
    let deadline = tokio::time::Instant::now() + config.max_wait();
    let mut bytes = first.envelope.len();
    let mut batch = vec![first];
    while batch.len() < config.max_envelopes {
        let next = match rx.try_recv() {
            Ok(next) => next,
            // No waiting configured: do not even arm a timer (its 1 ms tick would be the wait).
            Err(_) if config.max_wait_ms == 0 => break,
            Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(next)) => next,
                _ => break,
            },
        };
        if bytes + 1 + next.envelope.len() > config.max_message_bytes {
            return (batch, Some(next));
        }
        bytes += 1 + next.envelope.len();
        batch.push(next);
    }
    (batch, None)
}

async fn write(
    batch: Vec<Pending>,
    queue: &dyn Queue,
    spill: Option<&EmbeddedQueue>,
    metrics: &Metrics,
) {
    let body = batch
        .iter()
        .map(|p| p.envelope.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let count = batch.len() as u64;
    let outcome = match queue.send_batch(vec![body.clone()]).await {
        Ok(ids) => {
            metrics.group_commits.fetch_add(1, Ordering::Relaxed);
            metrics
                .envelopes_committed
                .fetch_add(count, Ordering::Relaxed);
            Ok(Durable::Queued(ids.into_iter().next().unwrap_or_default()))
        }
        Err(e) => {
            metrics.queue_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(stage = "commit", error = %e, envelopes = count, "queue refused a group commit");
            spill_or_refuse(body, spill, e.to_string(), count, metrics).await
        }
    };
    for pending in batch {
        let _ = pending.done.send(outcome.clone());
    }
}

async fn spill_or_refuse(
    body: String,
    spill: Option<&EmbeddedQueue>,
    queue_error: String,
    count: u64,
    metrics: &Metrics,
) -> Result<Durable, CommitError> {
    let Some(spill) = spill else {
        metrics
            .envelopes_refused
            .fetch_add(count, Ordering::Relaxed);
        return Err(CommitError::Unavailable(queue_error));
    };
    match spill.send_batch(vec![body]).await {
        Ok(ids) => {
            metrics
                .envelopes_spilled
                .fetch_add(count, Ordering::Relaxed);
            Ok(Durable::Spilled(ids.into_iter().next().unwrap_or_default()))
        }
        Err(e) => {
            metrics
                .envelopes_refused
                .fetch_add(count, Ordering::Relaxed);
            tracing::error!(stage = "spill", error = %e, "spill log refused a write");
            Err(CommitError::Unavailable(format!(
                "{queue_error}; spill log: {e}"
            )))
        }
    }
}

/// Moves spilled messages to the queue until `stop` is set: receive from the spill log, send
/// to the queue, delete from the spill log.
pub async fn forward_spill(
    spill: Arc<EmbeddedQueue>,
    queue: Arc<dyn Queue>,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let forwarded = forward_once(&spill, queue.as_ref(), &metrics).await;
        if !forwarded {
            tokio::select! {
                _ = tokio::time::sleep(FORWARD_RETRY) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// One forwarding round; true when it moved something (so the caller goes on at once).
async fn forward_once(spill: &EmbeddedQueue, queue: &dyn Queue, metrics: &Metrics) -> bool {
    let received = match spill
        .receive(
            edgevote_queue::MAX_BATCH,
            Duration::ZERO,
            Duration::from_secs(30),
        )
        .await
    {
        Ok(messages) if !messages.is_empty() => messages,
        _ => return false,
    };
    for message in received {
        let envelopes = message.body.lines().count() as u64;
        if let Err(e) = queue.send_batch(vec![message.body.clone()]).await {
            tracing::warn!(stage = "forward", error = %e, "queue still unavailable; spill kept");
            let _ = spill
                .change_visibility(vec![message.handle], Duration::ZERO)
                .await;
            return false;
        }
        if let Err(e) = spill.delete_batch(vec![message.handle]).await {
            // Sent but not deleted: it will be sent again and deduplicated by the collector.
            tracing::warn!(stage = "forward", error = %e, "spill delete failed");
        }
        metrics
            .envelopes_forwarded
            .fetch_add(envelopes, Ordering::Relaxed);
    }
    true
}
