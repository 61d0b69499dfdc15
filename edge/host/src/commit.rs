//! Group commit: concurrent votes are packed into one queue message, bounded by count, bytes
//! and a few milliseconds of waiting. Each waiting vote learns the outcome only once the message
//! is durable, so a receipt is never signed for a vote that could still be lost.
//!
//! A message holds two kinds of items, one envelope per line:
//! - envelopes a component sealed itself (component sealing), carried as they are;
//! - checked votes a component handed over (host sealing): their tokens are verified in one
//!   Ed25519 batch, refused ones are answered at once, and the rest are sealed into one
//!   envelope signed by the host. Their receipts are signed by the requests once durable.
//!
//! When the queue refuses a message and the spill log is enabled, the message is fsync'd to the
//! spill log instead and the votes are acknowledged; [`forward_spill`] moves spilled messages
//! to the queue when it is back (also after a restart). A message forwarded twice (crash
//! between the send and the spill delete) is deduplicated by the collector, whose store keys
//! ballots by vote id.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::sealer::Sealer;
use edgevote_edge_core::{Accepted, ENVELOPE_OVERHEAD_BYTES, Edge, HandedVote, Response};
use edgevote_queue::Queue;
use edgevote_queue::embedded::EmbeddedQueue;
use edgevote_shared::envelope::MAX_ENVELOPE_JWS_BYTES;
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
    /// Host sealing: the vote's token did not verify (the response says why); nothing stored.
    #[error("vote refused: {}", .0.error_code().unwrap_or_default())]
    Refused(Box<Response>),
    /// Host sealing: the votes could not be sealed into an envelope.
    #[error("sealing failed: {0}")]
    Sealing(String),
    /// No edge key the host holds is valid for the vote now (per the latest key set), or a
    /// component's envelope is signed with a key that is not: nothing is made durable.
    #[error("edge_key_expired: {0}")]
    KeyExpired(String),
}

/// Where a vote ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Durable {
    /// In the regional queue, in the message with this id.
    Queued(String),
    /// In the local spill log (fsync'd), to be forwarded.
    Spilled(String),
}

/// What one request waits to have committed.
enum Item {
    /// An envelope the component sealed (component sealing).
    Envelope(String),
    /// A checked vote for the host to verify and seal (host sealing).
    Vote(Box<HandedVote>),
}

impl Item {
    /// Bytes the item adds to the message (its envelope line, or its share of the host's).
    fn bytes(&self) -> usize {
        match self {
            Item::Envelope(envelope) => envelope.len(),
            Item::Vote(vote) => vote.envelope_bytes(),
        }
    }
}

/// A host-sealed vote as accepted, with the native edge whose key sealed its envelope: the one
/// that must sign its receipt.
type SealedBy = (Accepted, Arc<Edge>);

/// What a committed item learns: where it is durable, and for a host-sealed vote, the vote
/// as accepted and its sealer (for its receipt).
type Committed = Result<(Durable, Option<Box<SealedBy>>), CommitError>;

struct Pending {
    item: Item,
    done: oneshot::Sender<Committed>,
}

/// The handle requests use to commit their envelope or vote.
#[derive(Debug, Clone)]
pub struct Committer {
    tx: mpsc::Sender<Pending>,
    max_message_bytes: usize,
    metrics: Arc<Metrics>,
}

impl Committer {
    /// Starts the group-commit task over `queue` (and `spill`, if enabled); `sealer` verifies
    /// and seals host-sealed votes.
    pub fn start(
        config: GroupCommitConfig,
        queue: Arc<dyn Queue>,
        spill: Option<Arc<EmbeddedQueue>>,
        sealer: Arc<Sealer>,
        metrics: Arc<Metrics>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let committer = Committer {
            tx,
            max_message_bytes: config.max_message_bytes,
            metrics: Arc::clone(&metrics),
        };
        let writer = Writer {
            queue,
            spill,
            sealer,
            metrics,
        };
        let task = tokio::spawn(run(config, rx, Arc::new(writer)));
        (committer, task)
    }

    /// Commits one envelope; returns once it is durable (or definitely not).
    pub async fn commit(&self, envelope: String) -> Result<Durable, CommitError> {
        if envelope.len() + 1 > self.max_message_bytes {
            return Err(CommitError::TooLarge(envelope.len()));
        }
        self.submit(Item::Envelope(envelope)).await.map(|(d, _)| d)
    }

    /// Host sealing: verifies, seals and commits one checked vote; returns once it is durable
    /// (with the vote as accepted and the native edge whose key sealed it, which signs its
    /// receipt), refused, or definitely not durable.
    pub async fn commit_vote(
        &self,
        vote: HandedVote,
    ) -> Result<(Durable, Accepted, Arc<Edge>), CommitError> {
        let (durable, sealed) = self.submit(Item::Vote(Box::new(vote))).await?;
        let sealed = sealed.ok_or(CommitError::Sealing("vote lost in sealing".into()))?;
        let (accepted, edge) = *sealed;
        Ok((durable, accepted, edge))
    }

    /// The metrics the committer counts into (shared with its host).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    async fn submit(&self, item: Item) -> Committed {
        let (done, outcome) = oneshot::channel();
        self.tx
            .send(Pending { item, done })
            .await
            .map_err(|_| CommitError::ShuttingDown)?;
        outcome.await.map_err(|_| CommitError::ShuttingDown)?
    }
}

/// What a group commit writes with.
struct Writer {
    queue: Arc<dyn Queue>,
    spill: Option<Arc<EmbeddedQueue>>,
    sealer: Arc<Sealer>,
    metrics: Arc<Metrics>,
}

async fn run(config: GroupCommitConfig, mut rx: mpsc::Receiver<Pending>, writer: Arc<Writer>) {
    let in_flight = Arc::new(Semaphore::new(COMMITS_IN_FLIGHT));
    let mut carry: Option<Pending> = None;
    loop {
        // A carried item starts the next batch at once: awaiting `recv` first would hold it
        // back until another vote arrives (and `Option::or` would drop that vote).
        let first = match carry.take() {
            Some(carried) => carried,
            None => match rx.recv().await {
                Some(next) => next,
                None => break, // every sender dropped: shutdown
            },
        };
        let (batch, next) = fill(first, &mut rx, &config).await;
        carry = next;
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let writer = Arc::clone(&writer);
        tokio::spawn(async move {
            writer.write(batch).await;
            drop(permit);
        });
    }
    // Wait for the last writes before reporting the committer stopped.
    let _ = in_flight.acquire_many(COMMITS_IN_FLIGHT as u32).await;
}

/// Bytes one message's items take: all lines, and the host's envelope alone.
#[derive(Default)]
struct Size {
    message: usize,
    host_envelope: usize,
}

impl Size {
    /// The size with `item` added.
    fn plus(&self, item: &Item) -> Size {
        let bytes = item.bytes();
        match item {
            Item::Envelope(_) => Size {
                message: self.message + 1 + bytes,
                host_envelope: self.host_envelope,
            },
            Item::Vote(_) if self.host_envelope == 0 => Size {
                message: self.message + 1 + ENVELOPE_OVERHEAD_BYTES + bytes,
                host_envelope: ENVELOPE_OVERHEAD_BYTES + bytes,
            },
            Item::Vote(_) => Size {
                message: self.message + 1 + bytes,
                host_envelope: self.host_envelope + 1 + bytes,
            },
        }
    }

    /// Whether the message and the host's envelope are inside their bounds.
    fn fits(&self, max_message_bytes: usize) -> bool {
        self.message <= max_message_bytes && self.host_envelope <= MAX_ENVELOPE_JWS_BYTES
    }
}

/// Collects items after `first` until a bound is hit; returns the batch and, if the next item
/// did not fit, that item.
async fn fill(
    first: Pending,
    rx: &mut mpsc::Receiver<Pending>,
    config: &GroupCommitConfig,
) -> (Vec<Pending>, Option<Pending>) {
    let deadline = tokio::time::Instant::now() + config.max_wait();
    // The first item is taken even when alone it is over a bound: sealing splits or refuses it.
    let mut size = Size::default().plus(&first.item);
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
        let bigger = size.plus(&next.item);
        if !bigger.fits(config.max_message_bytes) {
            return (batch, Some(next));
        }
        size = bigger;
        batch.push(next);
    }
    (batch, None)
}

/// A host-sealed vote's request, waiting for durability with its accepted vote and sealer.
type SealedVote = (oneshot::Sender<Committed>, SealedBy);

impl Writer {
    async fn write(&self, batch: Vec<Pending>) {
        let mut lines = Vec::new();
        let mut waiting_envelopes = Vec::new();
        let mut handed = Vec::new();
        for pending in batch {
            match pending.item {
                Item::Envelope(envelope) => {
                    // Component sealing: never commit what collectors would refuse.
                    if let Err(detail) = self.sealer.check_envelope(&envelope) {
                        self.metrics
                            .votes_refused_key_expired
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(stage = "commit", detail = %detail, "component envelope signed with a key that is not valid; refused");
                        let _ = pending.done.send(Err(CommitError::KeyExpired(detail)));
                        continue;
                    }
                    lines.push(envelope);
                    waiting_envelopes.push(pending.done);
                }
                Item::Vote(vote) => handed.push((pending.done, *vote)),
            }
        }
        let votes_in_envelopes = lines.len() as u64;
        let (envelopes, waiting_votes) = self.seal(handed).await;
        let host_votes = waiting_votes.len() as u64;
        lines.extend(envelopes);
        if lines.is_empty() {
            return;
        }
        let outcome = self.store(lines, votes_in_envelopes + host_votes).await;
        for done in waiting_envelopes {
            let _ = done.send(outcome.clone().map(|d| (d, None)));
        }
        for (done, sealed) in waiting_votes {
            let _ = done.send(outcome.clone().map(|d| (d, Some(Box::new(sealed)))));
        }
    }

    /// Verifies the handed votes' tokens in one batch, answers the refused ones, and seals the
    /// rest into envelopes; the votes that failed sealing are answered too. CPU work (about
    /// 20 us a token): off the async threads.
    ///
    /// The keys are read once for the batch. Each vote is sealed with the first key the host
    /// holds that is valid, per the latest key set, both when the vote was received (its
    /// receipt's date) and now (the envelope's): the current key, or during a rotation the one
    /// it replaced for votes received before the successor's window. A vote with no such key
    /// is refused with `edge_key_expired`: no envelope collectors would refuse is ever sealed.
    async fn seal(
        &self,
        handed: Vec<(oneshot::Sender<Committed>, HandedVote)>,
    ) -> (Vec<String>, Vec<SealedVote>) {
        if handed.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let sealer = Arc::clone(&self.sealer);
        let metrics = Arc::clone(&self.metrics);
        let sealing = tokio::task::spawn_blocking(move || {
            let keys = sealer.state();
            let (waiting, votes): (Vec<_>, Vec<_>) = handed.into_iter().unzip();
            let now_ms = edgevote_queue::now_ms();
            // One group of votes per signer (index into the key state's signers).
            let mut groups: Vec<(usize, Vec<oneshot::Sender<Committed>>, Vec<Accepted>)> =
                Vec::new();
            let verified = keys.current().edge.verify_handed(votes);
            for (done, verified) in waiting.into_iter().zip(verified) {
                let vote = match verified {
                    Ok(vote) => vote,
                    Err(refusal) => {
                        metrics
                            .votes_refused_by_sealer
                            .fetch_add(1, Ordering::Relaxed);
                        let _ = done.send(Err(CommitError::Refused(Box::new(refusal))));
                        continue;
                    }
                };
                let signer = keys.signer_index(
                    sealer.edge_id(),
                    sealer.region(),
                    vote.vote.received_at_ms,
                    now_ms,
                );
                let Some(index) = signer else {
                    metrics
                        .votes_refused_key_expired
                        .fetch_add(1, Ordering::Relaxed);
                    let _ = done.send(Err(CommitError::KeyExpired(format!(
                        "no edge key of {} is valid for a vote received at {} ms sealed at \
                         {now_ms} ms (current key {}): the host waits for its successor",
                        sealer.edge_id(),
                        vote.vote.received_at_ms,
                        keys.current().kid
                    ))));
                    continue;
                };
                match groups.iter_mut().find(|(i, _, _)| *i == index) {
                    Some((_, senders, accepted)) => {
                        senders.push(done);
                        accepted.push(vote);
                    }
                    None => groups.push((index, vec![done], vec![vote])),
                }
            }
            let (mut envelopes, mut sealed_votes) = (Vec::new(), Vec::new());
            for (index, senders, accepted) in groups {
                let edge = keys.signer_edge(index);
                match edge.seal_batch(&accepted, now_ms) {
                    Ok(sealed) => {
                        envelopes.extend(sealed);
                        sealed_votes.extend(
                            senders
                                .into_iter()
                                .zip(accepted)
                                .map(|(done, vote)| (done, (vote, Arc::clone(&edge)))),
                        );
                    }
                    Err(e) => {
                        for done in senders {
                            let _ = done.send(Err(CommitError::Sealing(e.to_string())));
                        }
                    }
                }
            }
            (envelopes, sealed_votes)
        });
        match sealing.await {
            Ok(sealed) => sealed,
            // The blocking task panicked: its senders are dropped, so every vote of it hears
            // `ShuttingDown` and gets 503, no receipt.
            Err(e) => {
                tracing::error!(stage = "seal", error = %e, "sealing task failed");
                (Vec::new(), Vec::new())
            }
        }
    }

    /// Writes one message of `lines` holding `votes` votes: to the queue, or the spill log.
    async fn store(&self, lines: Vec<String>, votes: u64) -> Result<Durable, CommitError> {
        let envelopes = lines.len() as u64;
        let body = lines.join("\n");
        let metrics = &self.metrics;
        match self.queue.send_batch(vec![body.clone()]).await {
            Ok(ids) => {
                metrics.group_commits.fetch_add(1, Ordering::Relaxed);
                metrics
                    .envelopes_committed
                    .fetch_add(envelopes, Ordering::Relaxed);
                metrics.votes_committed.fetch_add(votes, Ordering::Relaxed);
                Ok(Durable::Queued(ids.into_iter().next().unwrap_or_default()))
            }
            Err(e) => {
                metrics.queue_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(stage = "commit", error = %e, votes, "queue refused a group commit");
                spill_or_refuse(body, self.spill.as_deref(), e.to_string(), votes, metrics).await
            }
        }
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
        let votes = votes_in(&message.body);
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
            .fetch_add(votes, Ordering::Relaxed);
    }
    true
}

/// Votes in a queue message: the sum over its envelopes (one per line). The envelopes are this
/// host's own; a line that does not decode counts as one.
fn votes_in(body: &str) -> u64 {
    body.lines()
        .map(|line| {
            edgevote_shared::decode_unverified::<edgevote_shared::QueueEnvelope>(line)
                .map_or(1, |envelope| envelope.votes.len() as u64)
        })
        .sum()
}
