//! The running collector: receive loops, the store write, the delete, shutdown.
//!
//! The order per batch is what makes it lose nothing and count nothing twice:
//! 1. receive up to 10 messages (they become invisible for the visibility timeout); while
//!    receives come back partly filled, they start at least `receive_gather_ms` apart
//!    ([`crate::gather`]);
//! 2. check them ([`crate::check`]); refused messages go to the dead-letter queue with a reason;
//! 3. write the accepted ballots ([`Store::record`], idempotent), extending the messages'
//!    visibility while the write is slow;
//! 4. only then delete the messages.
//!
//! A crash anywhere before 4 leaves the messages in the queue; they come back after the
//! visibility timeout and their ballots come out as duplicates.
//!
//! **Ballots over the voter's limit.** The store refuses a voter's new ballots beyond the
//! election's `max_votes_per_voter` one by one ([`PutOutcome::OverLimit`]): each is counted in
//! `edgevote_collector_ballots_over_limit_total` and logged as a warning with code
//! [`OVER_LIMIT_CODE`] (`code`, `election`, `voter`, `vote_id`, `edge`, `batch`, `limit`), and its
//! message is deleted with the others. The message is not
//! dead-lettered: it passed every check, and one message packs many voters' ballots, so
//! dead-lettering it would drop the honest voters' ballots with it (and let one voter take
//! theirs down). "Counted whole or not at all" is about the message's checks: every ballot of an
//! accepted message reaches the store, and the store's verdict on each (stored, duplicate, over
//! the limit) is final; a redelivery gets the same verdicts.
//!
//! **Key rotation.** The checker re-reads its key set file every [`KEYSET_REFRESH`], so an
//! envelope signed with a successor key verifies as soon as the successor is published. A
//! message refused only for `unknown_key_id` on one of its first [`UNKNOWN_KEY_RECEIVES`] - 1
//! receives is not dead-lettered: the key may have been published after this collector's last
//! reload. It is made visible again after [`KEYSET_REFRESH`] (counted in
//! `edgevote_collector_messages_deferred_total`) and dead-lettered on a later receive if its key
//! is still unknown. A forged key id therefore costs a few receives, never a ballot.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use edgevote_queue::{Queue, Received};
use edgevote_shared::Digest32;
use edgevote_signer::clock::now_ms;
use edgevote_store::{PutOutcome, Store, StoredBallot};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::check::Checker;
use crate::config::{InvalidSetting, ProcessingConfig};
use crate::gather::ReceiveGate;
use crate::live_log::LiveLog;
use crate::metrics::Metrics;

/// Largest received batch (bytes of bodies) checked on the async thread: about five votes,
/// some 100 us of signature work. Larger batches are checked on a blocking thread.
const INLINE_CHECK_MAX_BYTES: usize = 4096;
/// What the checks say of one message.
type Verdict = Result<crate::check::AcceptedBallots, crate::check::Rejection>;

/// The stable code of a ballot refused because its voter is at `max_votes_per_voter` (the `code`
/// of its log line; the ballot alone is refused, so it is never a dead-letter reason).
pub const OVER_LIMIT_CODE: &str = "over_limit";

/// What names a ballot in the log line of a refusal.
struct BallotName {
    voter: String,
    vote_id: Digest32,
    edge: String,
    batch: String,
}

impl BallotName {
    fn of(ballot: &StoredBallot) -> Self {
        BallotName {
            voter: ballot.voter.clone(),
            vote_id: ballot.vote_id,
            edge: ballot.edge.clone(),
            batch: ballot.batch_id.clone(),
        }
    }
}

/// Pause after a failed queue or store call before the loop tries again.
const ERROR_BACKOFF: Duration = Duration::from_millis(200);

/// How often the collector re-reads its key set file (when its checker follows one).
pub const KEYSET_REFRESH: Duration = Duration::from_secs(2);
/// The receive on which a message whose key is unknown is dead-lettered; earlier receives leave
/// it for redelivery after [`KEYSET_REFRESH`]. Keep it below the queue's own `max_receives`.
pub const UNKNOWN_KEY_RECEIVES: u32 = 3;

/// Injected faults, for crash tests. Each counter, while above zero, triggers its fault once
/// per batch and counts down.
#[derive(Debug, Default)]
pub struct Faults {
    /// Abandon the batch after the store write and before the delete (as if the process died).
    pub crash_after_store: AtomicU32,
}

impl Faults {
    fn take(counter: &AtomicU32) -> bool {
        counter
            .try_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// How a batch ended, for the receive loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Stored and deleted, dead-lettered, or abandoned by an injected fault.
    Done,
    /// The store write failed; the messages come back after their visibility timeout and the
    /// loop should back off before receiving again.
    Retry,
}

/// Everything the loops share.
pub struct Collector {
    /// This collector's region.
    pub region: String,
    /// The queue it drains.
    pub queue: Arc<dyn Queue>,
    /// The store it writes.
    pub store: Arc<dyn Store>,
    /// Message checks.
    pub checker: Arc<Checker>,
    /// Settings.
    pub processing: ProcessingConfig,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Injected faults (none in production).
    pub faults: Arc<Faults>,
    in_flight: Arc<Semaphore>,
    gate: ReceiveGate,
    live_log: std::sync::OnceLock<Arc<LiveLog>>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// What a collector is assembled from ([`Collector::new`]).
pub struct CollectorParts {
    /// This collector's region.
    pub region: String,
    /// The queue it drains.
    pub queue: Arc<dyn Queue>,
    /// The store it writes.
    pub store: Arc<dyn Store>,
    /// Message checks.
    pub checker: Checker,
    /// Settings, checked by [`ProcessingConfig::validate`].
    pub processing: ProcessingConfig,
}

impl Collector {
    /// Assembles a collector; refuses `processing` settings out of their bounds (the same
    /// check as the configuration file's, [`ProcessingConfig::validate`]): with none of them
    /// could it drain its queue (no receive loop, or a batch that never gets its permits).
    pub fn new(parts: CollectorParts) -> Result<Arc<Self>, InvalidSetting> {
        let CollectorParts {
            region,
            queue,
            store,
            checker,
            processing,
        } = parts;
        processing.validate()?;
        Ok(Arc::new(Collector {
            region,
            queue,
            store,
            checker: Arc::new(checker),
            in_flight: Arc::new(Semaphore::new(processing.max_in_flight_messages)),
            gate: ReceiveGate::new(processing.gather()),
            processing,
            metrics: Arc::new(Metrics::default()),
            faults: Arc::new(Faults::default()),
            live_log: std::sync::OnceLock::new(),
        }))
    }

    /// Appends every vote id this collector stores from now on to `log` (see
    /// [`crate::live_log`]); [`Collector::run`] then also writes its checkpoints. Once only.
    pub fn attach_live_log(&self, log: Arc<LiveLog>) -> Result<(), Arc<LiveLog>> {
        self.live_log.set(log)
    }

    /// The attached live log, if any.
    pub fn live_log(&self) -> Option<&Arc<LiveLog>> {
        self.live_log.get()
    }

    /// Runs the receive loops and the stats poller until `shutdown` resolves, then lets every
    /// batch in progress finish (store write and delete) before returning.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for _ in 0..self.processing.receivers {
            tasks.spawn(Arc::clone(&self).receive_loop(stop_rx.clone()));
        }
        if self.checker.keyset_path().is_some() {
            tasks.spawn(Arc::clone(&self).keyset_loop(stop_rx.clone()));
        }
        if let Some(log) = self.live_log.get() {
            tasks.spawn(checkpoint_loop(Arc::clone(log), stop_rx.clone()));
        }
        tasks.spawn(Arc::clone(&self).stats_loop(stop_rx));
        tracing::info!(region = %self.region, receivers = self.processing.receivers, "collector started");
        shutdown.await;
        tracing::info!(region = %self.region, "collector stopping; finishing batches in progress");
        let _ = stop_tx.send(true);
        while let Some(joined) = tasks.join_next().await {
            if let Err(e) = joined {
                tracing::error!(error = %e, "collector task failed");
            }
        }
        tracing::info!(region = %self.region, "collector stopped");
    }

    async fn receive_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let batch = self.processing.receive_batch_messages;
        while !*stop.borrow() {
            let Ok(permit) = Arc::clone(&self.in_flight)
                .acquire_many_owned(batch as u32)
                .await
            else {
                return;
            };
            // A turn can be several gather intervals away: shutdown does not wait for it.
            tokio::select! {
                () = self.gate.turn() => {}
                _ = stop.changed() => return,
            }
            let received = self
                .queue
                .receive(batch, self.processing.wait(), self.processing.visibility())
                .await;
            if let Ok(messages) = &received {
                self.gate.received(messages.len(), batch);
            }
            match received {
                Ok(messages) if messages.is_empty() => {}
                Ok(messages) => {
                    if self.process(messages).await == BatchOutcome::Retry {
                        tokio::time::sleep(ERROR_BACKOFF).await;
                    }
                }
                Err(e) => {
                    self.metrics.queue_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(stage = "receive", error = %e, "queue receive failed");
                    tokio::time::sleep(ERROR_BACKOFF).await;
                }
            }
            drop(permit);
        }
    }

    /// Processes one received batch: check, dead-letter refusals, store, delete. Never sleeps:
    /// on [`BatchOutcome::Retry`] the caller backs off before its next receive.
    pub async fn process(&self, messages: Vec<Received>) -> BatchOutcome {
        let m = &self.metrics;
        m.messages_received
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        let Some((messages, verdicts)) = self.check(messages).await else {
            return BatchOutcome::Retry; // messages come back after their visibility timeout
        };
        let mut accepted: BTreeMap<String, Vec<StoredBallot>> = BTreeMap::new();
        let mut handles = Vec::new();
        for (message, verdict) in messages.iter().zip(verdicts) {
            match verdict {
                Ok(ballots) => {
                    for (election, mut list) in ballots {
                        accepted.entry(election).or_default().append(&mut list);
                    }
                    handles.push(message.handle.clone());
                }
                Err(rejection)
                    if rejection.code == "unknown_key_id"
                        && message.receive_count < UNKNOWN_KEY_RECEIVES =>
                {
                    self.defer(message, &rejection).await
                }
                Err(rejection) => self.dead_letter(message, &rejection).await,
            }
        }
        if handles.is_empty() {
            return BatchOutcome::Done;
        }
        if !self.store_with_extension(accepted, &handles).await {
            return BatchOutcome::Retry; // messages come back after their visibility timeout
        }
        if Faults::take(&self.faults.crash_after_store) {
            tracing::warn!("fault injected: batch abandoned after store write, before delete");
            return BatchOutcome::Done;
        }
        self.delete(handles, &messages).await;
        BatchOutcome::Done
    }

    /// Checks a received batch: a small one here, a larger one (its signature work would hold
    /// an async thread, and the edges' requests on it, for milliseconds) on a blocking thread.
    /// `None` when that thread panicked.
    async fn check(&self, messages: Vec<Received>) -> Option<(Vec<Received>, Vec<Verdict>)> {
        fn check_all(checker: &Checker, messages: &[Received]) -> Vec<Verdict> {
            let bodies: Vec<&str> = messages.iter().map(|msg| msg.body.as_str()).collect();
            checker.check_all(&bodies)
        }
        let bytes: usize = messages.iter().map(|msg| msg.body.len()).sum();
        if bytes <= INLINE_CHECK_MAX_BYTES {
            let verdicts = check_all(&self.checker, &messages);
            return Some((messages, verdicts));
        }
        let checker = Arc::clone(&self.checker);
        let checking = tokio::task::spawn_blocking(move || {
            let verdicts = check_all(&checker, &messages);
            (messages, verdicts)
        });
        match checking.await {
            Ok(checked) => Some(checked),
            Err(e) => {
                tracing::error!(stage = "check", error = %e, "check task failed");
                None
            }
        }
    }

    /// Leaves a message naming a key the checker does not know yet for redelivery after the
    /// next key set reload.
    async fn defer(&self, message: &Received, rejection: &crate::check::Rejection) {
        tracing::info!(message = %message.id, receives = message.receive_count, detail = %rejection.detail, "message names an unknown key; left for redelivery after the next key set reload");
        match self
            .queue
            .change_visibility(vec![message.handle.clone()], KEYSET_REFRESH)
            .await
        {
            Ok(()) => {
                self.metrics
                    .messages_deferred
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                // It comes back after its visibility timeout instead.
                self.metrics.queue_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(stage = "defer", error = %e, "could not shorten visibility");
            }
        }
    }

    async fn dead_letter(&self, message: &Received, rejection: &crate::check::Rejection) {
        tracing::warn!(message = %message.id, reason = rejection.code, detail = %rejection.detail, "message dead-lettered");
        match self.queue.dead_letter(message, &rejection.reason()).await {
            Ok(()) => self.metrics.dead_lettered(rejection.code),
            Err(e) => {
                self.metrics.queue_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(stage = "dead_letter", error = %e, "could not dead-letter; it will be retried");
            }
        }
    }

    /// Writes the ballots while a side task keeps the messages invisible. True on success.
    async fn store_with_extension(
        &self,
        accepted: BTreeMap<String, Vec<StoredBallot>>,
        handles: &[String],
    ) -> bool {
        let extender = self.spawn_visibility_extender(handles.to_vec());
        let mut ok = true;
        for (election, ballots) in accepted {
            if !self.record(&election, ballots).await {
                ok = false;
                break;
            }
        }
        extender.abort();
        ok
    }

    async fn record(&self, election: &str, ballots: Vec<StoredBallot>) -> bool {
        let Some(rules) = self.checker.rules(election) else {
            // The checker refuses unknown elections before this point.
            tracing::error!(election, "no rules for an accepted election");
            return false;
        };
        // Enough of each ballot to name it if the store refuses it.
        let names: Vec<BallotName> = ballots.iter().map(BallotName::of).collect();
        let started = Instant::now();
        let outcome = self.store.record(&rules, &self.region, ballots).await;
        self.metrics.observe_store_latency(started.elapsed());
        match outcome {
            Ok(outcomes) => {
                let count = |o: PutOutcome| outcomes.iter().filter(|x| **x == o).count() as u64;
                let m = &self.metrics;
                m.votes_stored
                    .fetch_add(count(PutOutcome::Stored), Ordering::Relaxed);
                m.votes_duplicate
                    .fetch_add(count(PutOutcome::Duplicate), Ordering::Relaxed);
                m.ballots_over_limit
                    .fetch_add(count(PutOutcome::OverLimit), Ordering::Relaxed);
                let refused = names
                    .iter()
                    .zip(&outcomes)
                    .filter(|(_, o)| **o == PutOutcome::OverLimit);
                for (name, _) in refused {
                    tracing::warn!(
                        code = OVER_LIMIT_CODE,
                        election,
                        voter = %name.voter,
                        vote_id = %name.vote_id.to_b64(),
                        edge = %name.edge,
                        batch = %name.batch,
                        limit = rules.max_votes_per_voter,
                        "ballot refused: voter over max_votes_per_voter"
                    );
                }
                self.append_to_live_log(election, &names, &outcomes).await
            }
            Err(e) => {
                self.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(stage = "record", election, error = %e, "store write failed; messages will be redelivered");
                false
            }
        }
    }

    fn spawn_visibility_extender(&self, handles: Vec<String>) -> tokio::task::JoinHandle<()> {
        let queue = Arc::clone(&self.queue);
        let metrics = Arc::clone(&self.metrics);
        let visibility = self.processing.visibility();
        tokio::spawn(async move {
            // Bounded: a batch that needs more than 100 extensions is stuck; let it time out.
            for _ in 0..100 {
                tokio::time::sleep(visibility / 2).await;
                match queue.change_visibility(handles.clone(), visibility).await {
                    Ok(()) => {
                        metrics
                            .visibility_extensions
                            .fetch_add(handles.len() as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::warn!(stage = "change_visibility", error = %e, "could not extend visibility")
                    }
                }
            }
        })
    }

    async fn delete(&self, handles: Vec<String>, messages: &[Received]) {
        let count = handles.len() as u64;
        match self.queue.delete_batch(handles).await {
            Ok(()) => {
                self.metrics
                    .messages_deleted
                    .fetch_add(count, Ordering::Relaxed);
                if let Some(oldest) = messages.iter().map(|m| m.sent_at_ms).min() {
                    self.metrics
                        .queue_lag_ms
                        .store(now_ms().saturating_sub(oldest), Ordering::Relaxed);
                }
            }
            Err(e) => {
                // The ballots are stored; the redelivered messages will come out as duplicates.
                self.metrics.queue_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(stage = "delete", error = %e, "delete failed; messages will be redelivered as duplicates");
            }
        }
    }

    /// Re-reads the checker's key set file every [`KEYSET_REFRESH`].
    /// The vote ids of `names` the store holds now (stored, or stored before), appended to the
    /// live log if one is attached. False when the append failed: the messages must come back.
    async fn append_to_live_log(
        &self,
        election: &str,
        names: &[BallotName],
        outcomes: &[PutOutcome],
    ) -> bool {
        let Some(log) = self.live_log.get() else {
            return true;
        };
        let with = |wanted: PutOutcome| {
            let named = names.iter().zip(outcomes);
            named
                .filter(|(_, o)| **o == wanted)
                .map(|(name, _)| name.vote_id)
                .collect()
        };
        let (stored, duplicates) = (with(PutOutcome::Stored), with(PutOutcome::Duplicate));
        match log.append(election, stored, duplicates).await {
            Ok(_) => true,
            Err(e) => {
                self.metrics.live_log_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(stage = "live_log", election, error = %e, "live log append failed; messages will be redelivered");
                false
            }
        }
    }

    async fn keyset_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            let checker = Arc::clone(&self.checker);
            match tokio::task::spawn_blocking(move || checker.reload_keys()).await {
                Ok(Ok(true)) => {
                    self.metrics.keyset_reloads.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(region = %self.region, "key set reloaded");
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(region = %self.region, error = %e, "could not reload the key set; keeping the current one")
                }
                Err(e) => tracing::warn!(error = %e, "key set reload failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(KEYSET_REFRESH) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn stats_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let interval = Duration::from_secs(self.processing.stats_interval_secs);
        while !*stop.borrow() {
            self.refresh_queue_stats().await;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Polls the queue depths into the metrics.
    pub async fn refresh_queue_stats(&self) {
        match self.queue.stats().await {
            Ok(stats) => {
                let m = &self.metrics;
                m.queue_visible.store(stats.visible, Ordering::Relaxed);
                m.queue_in_flight.store(stats.in_flight, Ordering::Relaxed);
                m.dead_letter_depth
                    .store(stats.dead_letters, Ordering::Relaxed);
                m.queue_oldest_age_ms
                    .store(stats.oldest_age_ms, Ordering::Relaxed);
                if let Some(commits) = stats.commits {
                    m.queue_commits.store(commits, Ordering::Relaxed);
                    m.queue_commits_known.store(true, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::warn!(stage = "stats", error = %e, "queue stats failed"),
        }
    }
}

/// Signs a checkpoint of every grown live log each interval, and once more at shutdown.
async fn checkpoint_loop(log: Arc<LiveLog>, mut stop: watch::Receiver<bool>) {
    let interval = log.config().checkpoint_interval();
    loop {
        let signer = Arc::clone(&log);
        match tokio::task::spawn_blocking(move || signer.checkpoint_all()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(stage = "live_log", error = %e, "checkpoint failed"),
            Err(e) => tracing::error!(stage = "live_log", error = %e, "checkpoint task failed"),
        }
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => {}
        }
    }
}
