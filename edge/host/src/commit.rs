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
use edgevote_edge_core::commit::{Batch, COMMITS_IN_FLIGHT, Item, Sealed, VoteRefused};
use edgevote_edge_core::{Accepted, Edge, HandedVote, Response};
use edgevote_queue::Queue;
use edgevote_queue::embedded::EmbeddedQueue;
use edgevote_shared::message;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::config::GroupCommitConfig;
use crate::metrics::{CommitClose, CommitPhase, Metrics};
use crate::pace::{Observation, Pace, Shift};

// The message format's byte bound must fit in what the queue takes.
const _: () = assert!(message::MAX_BYTES <= edgevote_queue::MAX_BODY_BYTES);
/// Most handed votes sealed on the async thread (about 100 us of signature work at most):
/// handing the work to a blocking thread costs a wake-up that, on a busy machine, took longer
/// than the work (measured: 0.2 to 3 ms for one to three votes at 1,600 votes/s on 2 cores).
const INLINE_SEAL_MAX_VOTES: usize = 4;
/// Pause of the spill forwarder between attempts while the queue is down.
const FORWARD_RETRY: Duration = Duration::from_millis(500);
/// A batch that waited this long for a commit slot makes the next one commit alone (see
/// [`CommitSlots`]). Between the regimes it separates: at half load a batch waits at most
/// 0.5 ms (p99), just past the saturation knee 20 to 35 ms. 2 ms measured no better at the
/// knee (README, Performance, nineteenth round).
pub const SLOT_PRESSURE: Duration = Duration::from_millis(5);

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

/// What a component-sealed envelope's request learns.
type EnvelopeReply = oneshot::Sender<Result<Durable, CommitError>>;
/// What a host-sealed vote's request learns: where it is durable, the vote as accepted, and
/// the native edge whose key sealed it (which must sign its receipt).
type VoteReply = oneshot::Sender<Result<(Durable, Accepted, Arc<Edge>), CommitError>>;
/// One request waiting in group commit.
type Pending = Item<EnvelopeReply, VoteReply>;

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
        let pace = Pace::new(&config);
        metrics.set_group_commit_window(pace.window(std::time::Instant::now()));
        let writer = Writer {
            queue,
            spill,
            sealer,
            metrics,
            pace,
        };
        let task = tokio::spawn(run(config, rx, Arc::new(writer)));
        (committer, task)
    }

    /// Commits one envelope; returns once it is durable (or definitely not).
    pub async fn commit(&self, envelope: String) -> Result<Durable, CommitError> {
        if envelope.len() > self.max_message_bytes {
            return Err(CommitError::TooLarge(envelope.len()));
        }
        let _counted = self.metrics.commit_started();
        let (reply, outcome) = oneshot::channel();
        self.submit(Item::Envelope {
            line: envelope,
            reply,
        })
        .await?;
        outcome.await.map_err(|_| CommitError::ShuttingDown)?
    }

    /// Host sealing: verifies, seals and commits one checked vote; returns once it is durable
    /// (with the vote as accepted and the native edge whose key sealed it, which signs its
    /// receipt), refused, or definitely not durable.
    pub async fn commit_vote(
        &self,
        vote: HandedVote,
    ) -> Result<(Durable, Accepted, Arc<Edge>), CommitError> {
        let _counted = self.metrics.commit_started();
        let (reply, outcome) = oneshot::channel();
        self.submit(Item::Vote {
            vote: Box::new(vote),
            reply,
        })
        .await?;
        outcome.await.map_err(|_| CommitError::ShuttingDown)?
    }

    /// The metrics the committer counts into (shared with its host).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    async fn submit(&self, pending: Pending) -> Result<(), CommitError> {
        self.tx
            .send(pending)
            .await
            .map_err(|_| CommitError::ShuttingDown)
    }
}

/// What a group commit writes with.
struct Writer {
    queue: Arc<dyn Queue>,
    spill: Option<Arc<EmbeddedQueue>>,
    sealer: Arc<Sealer>,
    metrics: Arc<Metrics>,
    /// The window, by how the commits lag.
    pace: Pace,
}

async fn run(config: GroupCommitConfig, mut rx: mpsc::Receiver<Pending>, writer: Arc<Writer>) {
    let mut slots = CommitSlots::new();
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
        let opened = tokio::time::Instant::now();
        let window = writer
            .pace
            .batch_window(std::time::Instant::now(), writer.metrics.vote_backlog());
        let stretched = window > config.max_wait();
        if stretched {
            writer
                .metrics
                .group_commit_stretched_windows
                .fetch_add(1, Ordering::Relaxed);
        }
        // A stretched window closes once an arrival finds the backlog gone: the load fell,
        // and its votes would wait for nothing.
        let keep_open = || !stretched || writer.pace.backlog_lasts(writer.metrics.vote_backlog());
        let (mut batch, next, late, why) = fill(first, &mut rx, &config, window, &keep_open).await;
        let closed = tokio::time::Instant::now();
        if let Some(why) = why {
            writer.metrics.count_commit_close(why);
        }
        writer
            .metrics
            .observe_commit_phase(CommitPhase::Late, late, batch.len());
        let alone = slots.alone();
        let Some((permit, next)) = top_up_until_free(&mut batch, next, &mut rx, &slots).await
        else {
            break;
        };
        carry = next;
        let slot_wait = closed.elapsed();
        slots.waited(slot_wait);
        writer
            .metrics
            .observe_commit_phase(CommitPhase::Slot, slot_wait, batch.len());
        if alone {
            writer
                .metrics
                .group_commits_alone
                .fetch_add(1, Ordering::Relaxed);
        }
        let writer = Arc::clone(&writer);
        tokio::spawn(async move {
            writer.write(batch).await;
            writer
                .metrics
                .group_commit_latency
                .observe(opened.elapsed());
            writer.observe(late + closed.elapsed());
            drop(permit);
        });
    }
    // Wait for the last writes before reporting the committer stopped.
    slots.drain().await;
}

/// The commit slots: at most [`COMMITS_IN_FLIGHT`] group commits seal and store at once. Two
/// keep one slow queue commit from holding up every vote behind it; but when batches have to
/// wait for a slot (the edge past its saturation knee: commits take tens of milliseconds on
/// busy cores), a batch that waits for one commit instead of the first of two takes in about
/// twice the arrivals and the edge sends about half the messages. So after a batch waited
/// [`SLOT_PRESSURE`] or more for its slot, the next one commits alone: it waits until no
/// commit is in flight (taking in arrivals meanwhile) and holds every slot while it writes; the
/// first batch that waits less goes back to a slot of its own.
struct CommitSlots {
    free: Arc<Semaphore>,
    alone: bool,
}

impl CommitSlots {
    fn new() -> Self {
        CommitSlots {
            free: Arc::new(Semaphore::new(COMMITS_IN_FLIGHT)),
            alone: false,
        }
    }

    /// Whether the next batch commits alone.
    fn alone(&self) -> bool {
        self.alone
    }

    /// The next batch's slots (all of them while it commits alone), once free; `None` when the
    /// semaphore is closed.
    async fn acquire(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let wanted = if self.alone { COMMITS_IN_FLIGHT } else { 1 };
        Arc::clone(&self.free)
            .acquire_many_owned(wanted as u32)
            .await
            .ok()
    }

    /// A batch got its slots after waiting `wait` since its window closed: whether the next
    /// one commits alone.
    fn waited(&mut self, wait: Duration) {
        self.alone = wait >= SLOT_PRESSURE;
    }

    /// Waits until no commit is in flight.
    async fn drain(&self) {
        let _ = self.free.acquire_many(COMMITS_IN_FLIGHT as u32).await;
    }
}

/// A batch of waiting requests.
type PendingBatch = Batch<EnvelopeReply, VoteReply>;

/// Collects items after `first` until a bound is hit, `window` is over or, after an arrival,
/// `keep_open` says no; returns the batch, the item that did not fit if any (it starts the
/// next batch), how late the window's timer fired (a starved task sees it late: part of the
/// lag [`Pace`] watches) and why the window closed (`None`: shutdown).
async fn fill(
    first: Pending,
    rx: &mut mpsc::Receiver<Pending>,
    config: &GroupCommitConfig,
    window: Duration,
    keep_open: &(dyn Fn() -> bool + Sync),
) -> (PendingBatch, Option<Pending>, Duration, Option<CommitClose>) {
    let deadline = tokio::time::Instant::now() + window;
    let mut batch = Batch::new(config.bounds());
    // The first item is always taken (see `Batch::offer`).
    if let Err(first) = batch.offer(first) {
        unreachable!("an empty batch takes any item: {first:?}");
    }
    while !batch.is_full() {
        let next = match rx.try_recv() {
            Ok(next) => next,
            // No waiting configured: do not even arm a timer (its 1 ms tick would be the wait).
            Err(_) if window.is_zero() => {
                return (batch, None, Duration::ZERO, Some(CommitClose::Window));
            }
            Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(next)) => next,
                // Shutdown: write what is here.
                Ok(None) => return (batch, None, Duration::ZERO, None),
                Err(_) => {
                    let late = tokio::time::Instant::now().saturating_duration_since(deadline);
                    return (batch, None, late, Some(CommitClose::Window));
                }
            },
        };
        if let Err(carried) = batch.offer(next) {
            return (
                batch,
                Some(carried),
                Duration::ZERO,
                Some(CommitClose::Full),
            );
        }
        if !keep_open() {
            return (batch, None, Duration::ZERO, Some(CommitClose::BacklogFell));
        }
    }
    (batch, None, Duration::ZERO, Some(CommitClose::Full))
}

/// Waits for a commit slot (all of them when the batch commits alone), and meanwhile keeps
/// adding arrivals to the closed batch (it waits anyway, so they cost no latency and the
/// message carries more votes). Returns the slots and the item that did not fit, if any;
/// `None` when the semaphore is closed.
async fn top_up_until_free(
    batch: &mut PendingBatch,
    mut next: Option<Pending>,
    rx: &mut mpsc::Receiver<Pending>,
    slots: &CommitSlots,
) -> Option<(tokio::sync::OwnedSemaphorePermit, Option<Pending>)> {
    // Bounded: each pass either takes the slot or adds one item to a batch that is not full.
    while next.is_none() && !batch.is_full() {
        tokio::select! {
            biased;
            permit = slots.acquire() => return permit.map(|p| (p, None)),
            item = rx.recv() => match item {
                Some(item) => next = batch.offer(item).err(),
                None => break, // shutdown: write what is here
            },
        }
    }
    let permit = slots.acquire().await?;
    Some((permit, next))
}

/// A sealed batch of waiting requests.
type SealedBatch = Sealed<EnvelopeReply, VoteReply, Arc<Edge>>;

impl Writer {
    /// Tells the pace how long a commit lagged and the edge's backlog; reports the shift it
    /// caused.
    fn observe(&self, lag: Duration) {
        let now = std::time::Instant::now();
        let seen = Observation {
            lag,
            backlog_votes: self.metrics.vote_backlog(),
        };
        let Some(shift) = self.pace.observe(seen, now) else {
            return;
        };
        let window = self.pace.window(now);
        self.metrics.set_group_commit_window(window);
        let window_ms = window.as_millis();
        match shift {
            Shift::Overloaded { behind, commits } => {
                self.metrics
                    .group_commit_stretches
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    stage = "commit",
                    behind,
                    commits,
                    window_ms,
                    "edge overloaded: most group commits found it behind; window stretched"
                );
            }
            Shift::Recovered { behind, commits } => {
                tracing::info!(
                    stage = "commit",
                    behind,
                    commits,
                    window_ms,
                    "edge caught up: group-commit window back"
                );
            }
        }
    }

    async fn write(&self, batch: PendingBatch) {
        let batch_votes = batch.len();
        let sealing = tokio::time::Instant::now();
        let Some(sealed) = self.seal(batch).await else {
            return;
        };
        let metrics = &self.metrics;
        metrics.observe_commit_phase(CommitPhase::Seal, sealing.elapsed(), batch_votes);
        let Sealed {
            lines,
            envelopes,
            votes,
            refused_envelopes,
            refused_votes,
        } = sealed;
        self.answer_refused(refused_envelopes, refused_votes);
        if lines.is_empty() {
            return;
        }
        let vote_count = envelopes.len() + votes.len();
        let storing = tokio::time::Instant::now();
        let outcome = self.store(&lines, vote_count as u64).await;
        metrics.observe_commit_phase(CommitPhase::Store, storing.elapsed(), vote_count);
        for reply in envelopes {
            let _ = reply.send(outcome.clone());
        }
        for vote in votes {
            let answer = outcome
                .clone()
                .map(|durable| (durable, vote.accepted, vote.signer));
            let _ = vote.reply.send(answer);
        }
    }

    /// Seals the batch with the keys as they are now (read once for the batch). Handed votes
    /// mean signature work (about 20 us a token): a few run here, more go off the async
    /// threads. `None` when the sealing task panicked: its replies are dropped, so every
    /// request of it hears `ShuttingDown` and gets 503, no receipt.
    async fn seal(&self, batch: PendingBatch) -> Option<SealedBatch> {
        let keys = self.sealer.batch_keys();
        if batch.handed_votes() <= INLINE_SEAL_MAX_VOTES {
            return Some(batch.seal(&keys, edgevote_signer::clock::now_ms()));
        }
        let sealing = tokio::task::spawn_blocking(move || {
            batch.seal(&keys, edgevote_signer::clock::now_ms())
        });
        match sealing.await {
            Ok(sealed) => Some(sealed),
            Err(e) => {
                tracing::error!(stage = "seal", error = %e, "sealing task failed");
                None
            }
        }
    }

    /// Answers at once the requests sealing refused, and counts them.
    fn answer_refused(
        &self,
        envelopes: Vec<(EnvelopeReply, String)>,
        votes: Vec<(VoteReply, VoteRefused)>,
    ) {
        let metrics = &self.metrics;
        for (reply, detail) in envelopes {
            metrics
                .votes_refused_key_expired
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(stage = "commit", detail = %detail, "component envelope signed with a key that is not valid; refused");
            let _ = reply.send(Err(CommitError::KeyExpired(detail)));
        }
        for (reply, refused) in votes {
            let error = match refused {
                VoteRefused::Token(response) => {
                    metrics
                        .votes_refused_by_sealer
                        .fetch_add(1, Ordering::Relaxed);
                    CommitError::Refused(response)
                }
                VoteRefused::KeyExpired(detail) => {
                    metrics
                        .votes_refused_key_expired
                        .fetch_add(1, Ordering::Relaxed);
                    CommitError::KeyExpired(detail)
                }
                VoteRefused::Sealing(detail) => CommitError::Sealing(detail),
            };
            let _ = reply.send(Err(error));
        }
    }

    /// Writes one message of `lines` holding `votes` votes: to the queue, or the spill log.
    async fn store(&self, lines: &[String], votes: u64) -> Result<Durable, CommitError> {
        let body = match message::encode(lines) {
            Ok(body) => body,
            // The batch bounds are inside the message bounds (checked with the config), so
            // this is a bug: refuse rather than write what collectors would dead-letter.
            Err(e) => {
                debug_assert!(false, "a group commit broke the message bounds: {e}");
                tracing::error!(stage = "commit", error = %e, "group commit broke the message bounds");
                return Err(CommitError::Sealing(e.to_string()));
            }
        };
        let metrics = &self.metrics;
        let started = tokio::time::Instant::now();
        let sent = self.queue.send_batch(vec![body.clone()]).await;
        metrics.queue_send_latency.observe(started.elapsed());
        match sent {
            Ok(ids) => {
                metrics.group_commits.fetch_add(1, Ordering::Relaxed);
                metrics
                    .envelopes_committed
                    .fetch_add(lines.len() as u64, Ordering::Relaxed);
                metrics.votes_committed.fetch_add(votes, Ordering::Relaxed);
                Ok(Durable::Queued(first_id(ids)))
            }
            Err(e) => {
                metrics.queue_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(stage = "commit", error = %e, votes, "queue refused a group commit");
                spill_or_refuse(body, self.spill.as_deref(), e.to_string(), votes, metrics).await
            }
        }
    }
}

/// The id of the one message a send of one message returned.
fn first_id(ids: Vec<String>) -> String {
    debug_assert_eq!(ids.len(), 1, "one message sent, one id back");
    ids.into_iter()
        .next()
        .expect("a successful send of one message returns its id")
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
            .votes_queue_refused
            .fetch_add(count, Ordering::Relaxed);
        return Err(CommitError::Unavailable(queue_error));
    };
    match spill.send_batch(vec![body]).await {
        Ok(ids) => {
            metrics.votes_spilled.fetch_add(count, Ordering::Relaxed);
            Ok(Durable::Spilled(first_id(ids)))
        }
        Err(e) => {
            metrics
                .votes_queue_refused
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
        metrics.votes_forwarded.fetch_add(votes, Ordering::Relaxed);
    }
    true
}

/// Votes in a queue message: the sum over its envelopes. The envelopes are this host's own; a
/// line that does not decode counts as one.
fn votes_in(body: &str) -> u64 {
    message::split(body).map_or(1, |lines| {
        lines
            .iter()
            .map(|line| {
                edgevote_shared::decode_unverified::<edgevote_shared::QueueEnvelope>(line)
                    .map_or(1, |envelope| envelope.votes.len() as u64)
            })
            .sum()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component-sealed envelope waiting in group commit (its requester gone: nobody reads
    /// the reply here).
    fn envelope(n: usize) -> Pending {
        let (reply, _) = oneshot::channel();
        Item::Envelope {
            line: format!("envelope-{n}"),
            reply,
        }
    }

    /// `first` and a channel holding `queued` more envelopes, its sender dropped.
    fn arrivals(queued: usize) -> (Pending, mpsc::Receiver<Pending>) {
        let (tx, rx) = mpsc::channel(queued.max(1));
        for n in 1..=queued {
            tx.try_send(envelope(n)).expect("room for every envelope");
        }
        (envelope(0), rx)
    }

    /// A window that `keep_open` says no to closes at the next arrival, long before its
    /// minute is over; the rest stay for the next batch.
    #[tokio::test]
    async fn a_window_closes_at_the_first_arrival_that_finds_no_reason_to_stay_open() {
        let config = GroupCommitConfig::default();
        let (first, mut rx) = arrivals(3);
        let minute = Duration::from_secs(60);
        let (batch, carried, late, why) = fill(first, &mut rx, &config, minute, &|| false).await;
        assert_eq!(
            (batch.len(), carried.is_none(), late, why),
            (2, true, Duration::ZERO, Some(CommitClose::BacklogFell))
        );
        assert_eq!(rx.len(), 2, "the other arrivals wait for the next batch");
    }

    /// A window that may stay open takes every arrival until the channel closes (a shutdown:
    /// no close reason counted).
    #[tokio::test]
    async fn a_window_that_may_stay_open_takes_every_arrival() {
        let config = GroupCommitConfig::default();
        let (first, mut rx) = arrivals(3);
        let minute = Duration::from_secs(60);
        let (batch, carried, _, why) = fill(first, &mut rx, &config, minute, &|| true).await;
        assert_eq!((batch.len(), carried.is_none(), why), (4, true, None));
    }

    /// A window closes full at its vote bound (the arrivals behind it wait for the next batch),
    /// and by time when nothing more arrives before its deadline.
    #[tokio::test]
    async fn a_window_closes_full_at_its_bound_or_by_time() {
        let config = GroupCommitConfig {
            max_votes: 2,
            ..GroupCommitConfig::default()
        };
        let (first, mut rx) = arrivals(3);
        let minute = Duration::from_secs(60);
        let (batch, carried, _, why) = fill(first, &mut rx, &config, minute, &|| true).await;
        assert_eq!((batch.len(), why), (2, Some(CommitClose::Full)));
        assert!(
            carried.is_none(),
            "a batch at its bound stops before taking another"
        );
        let (tx, mut rx) = mpsc::channel(1);
        let brief = Duration::from_millis(5);
        let (batch, _, _, why) = fill(envelope(0), &mut rx, &config, brief, &|| true).await;
        assert_eq!((batch.len(), why), (1, Some(CommitClose::Window)));
        drop(tx);
    }

    /// Whether `future` is still waiting after one poll.
    async fn waits(future: impl std::future::Future) -> bool {
        tokio::select! {
            biased;
            _ = future => false,
            () = std::future::ready(()) => true,
        }
    }

    /// After a batch waited [`SLOT_PRESSURE`] for its slot, the next commits alone: it does not
    /// start while another commit is in flight, even with a slot free, and holds every slot
    /// while it writes; after a batch that waited less, the next takes one slot again.
    #[tokio::test]
    async fn a_batch_commits_alone_after_one_waited_for_its_slot() {
        let mut slots = CommitSlots::new();
        let first = slots.acquire().await.expect("a free slot");
        slots.waited(SLOT_PRESSURE / 2);
        assert!(!slots.alone());
        let beside = slots
            .acquire()
            .await
            .expect("the other slot, beside the first");
        drop(beside);
        slots.waited(SLOT_PRESSURE);
        assert!(slots.alone());
        assert!(
            waits(slots.acquire()).await,
            "a slot is free, but a commit is in flight"
        );
        drop(first);
        let alone = slots
            .acquire()
            .await
            .expect("every slot, nothing in flight");
        assert_eq!(slots.free.available_permits(), 0, "it holds every slot");
        slots.waited(Duration::ZERO);
        assert!(!slots.alone());
        assert!(
            waits(slots.acquire()).await,
            "nothing starts beside a commit that went alone"
        );
        drop(alone);
        let own = slots.acquire().await.expect("a slot of its own");
        assert_eq!(slots.free.available_permits(), COMMITS_IN_FLIGHT - 1);
        drop(own);
    }

    /// A batch that waits to commit alone keeps taking arrivals meanwhile (its votes wait
    /// anyway), and the arrivals are not lost when it stops waiting.
    #[tokio::test]
    async fn a_batch_waiting_to_commit_alone_takes_the_arrivals() {
        let mut slots = CommitSlots::new();
        let in_flight = slots.acquire().await.expect("a free slot");
        slots.waited(SLOT_PRESSURE);
        let config = GroupCommitConfig::default();
        let (first, mut rx) = arrivals(3);
        let mut batch = Batch::new(config.bounds());
        assert!(batch.offer(first).is_ok());
        assert!(waits(top_up_until_free(&mut batch, None, &mut rx, &slots)).await);
        assert_eq!(
            batch.len(),
            4,
            "the three arrivals joined the waiting batch"
        );
        drop(in_flight);
        let (permit, carried) = top_up_until_free(&mut batch, None, &mut rx, &slots)
            .await
            .expect("every slot once the commit in flight is done");
        assert_eq!((batch.len(), carried.is_none()), (4, true));
        assert_eq!(permit.num_permits(), COMMITS_IN_FLIGHT);
    }
}
