//! The end-to-end path under an open-loop load: votes sent over HTTP to every region's edge at
//! scheduled times whatever the answers (an open loop, as real voters arrive), at rising rates,
//! through edge, queue, collector and store.
//!
//! Ack latency is the time from a vote's *scheduled* send time to its receipt (202), so a
//! stalled edge cannot hide its stall by slowing the sender down (coordinated omission). It is
//! kept in an HDR histogram of bounded size. Messages per vote, store writes per vote and the
//! queue depth come from the stack's own counters ([`crate::scrape`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use edgevote_shared::{ElectionManifest, Role, b64};
use edgevote_signer::KeyStore;
use edgevote_signer::issue::{TokenWindow, issue_tokens};
use edgevote_stack::StackInfo;
use edgevote_stack::client::Conn;
use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::cpu::Stopwatch;
use crate::scrape::{Counters, counters};
use crate::stalls::{Stalls, WindowedLatency};
use crate::{BenchError, BoxError};

/// Longest ack latency the histogram holds, microseconds (longer ones are clamped to it).
const MAX_LATENCY_US: u64 = 120_000_000;
/// The two steps the targets are judged on (at full load and at half of it) send this many times
/// as long as a rising step: a 99th percentile of a few thousand votes moves by tens of
/// milliseconds between runs with one stall more or less, and a rising step at full load is
/// mostly its ramp-in (an edge counts as overloaded, and stretches its group-commit window,
/// 0.3 to 0.45 s into it on 2 cores), not the steady state the target is about.
const JUDGED_STEP_FACTOR: u64 = 3;
/// How often the queue depth is sampled during a step.
const DEPTH_SAMPLE_MS: u64 = 200;

/// The shape of the open-loop load.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OpenLoopConfig {
    /// Votes per second of the first step (over all regions).
    pub start_rate: u32,
    /// Each step's rate is the previous one's times `1 + growth_pct / 100`.
    pub growth_pct: u32,
    /// Most rising steps.
    pub max_steps: usize,
    /// Milliseconds each step sends for.
    pub step_ms: u64,
    /// Most connections to one region's edge at once.
    pub connections_per_region: usize,
    /// Most votes sent and not yet answered at once; past it the sender waits, and the wait
    /// counts in the latency (it is measured from the scheduled time).
    pub max_in_flight: usize,
    /// A vote not answered after this long counts as failed, milliseconds.
    pub request_timeout_ms: u64,
    /// Longest wait for the collectors to empty the queues after a step, milliseconds.
    pub drain_timeout_ms: u64,
    /// A step whose p99 ack latency passes this, milliseconds, saturates the stack.
    pub saturation_p99_ms: f64,
}

/// Ack latency quantiles of a step, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// Per-vote 99th percentiles of the phases of group commit past the window's deadline,
/// milliseconds (bucket upper bounds; `None` without observations or above 5 s).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct CommitPhasesP99 {
    /// The window closing after its deadline (the committer resumed late; tokio's timer has a
    /// 1 ms resolution and epoll rounds its timeout up, so 1 to 2 ms is normal).
    pub late: Option<f64>,
    /// Waiting for a commit slot.
    pub slot: Option<f64>,
    /// Sealing (token batch verification, envelope signature).
    pub seal: Option<f64>,
    /// Storing (queue send, or spill log).
    pub store: Option<f64>,
}

impl CommitPhasesP99 {
    /// The p99s of the phases' buckets, in [`crate::scrape::COMMIT_PHASES`] order.
    fn of(phases: &[crate::scrape::Buckets; crate::scrape::COMMIT_PHASES.len()]) -> Self {
        let [late, slot, seal, store] = phases;
        CommitPhasesP99 {
            late: crate::scrape::p99_ms(late),
            slot: crate::scrape::p99_ms(slot),
            seal: crate::scrape::p99_ms(seal),
            store: crate::scrape::p99_ms(store),
        }
    }

    /// `late W, slot X, seal Y, store Z` with bucket bounds.
    pub fn describe(&self) -> String {
        format!(
            "late {}, slot {}, seal {}, store {}",
            crate::report::bucket_bound(self.late),
            crate::report::bucket_bound(self.slot),
            crate::report::bucket_bound(self.seal),
            crate::report::bucket_bound(self.store),
        )
    }
}

/// Group-commit windows of a step by why they closed, summed over the edges.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct WindowCloses {
    /// Their time was up.
    pub window: f64,
    /// The message was full (votes or bytes).
    pub full: f64,
    /// A stretched window found the backlog gone at an arrival.
    pub backlog_fell: f64,
}

impl WindowCloses {
    /// The counts, in [`crate::scrape::WINDOW_CLOSES`] order.
    fn of(closes: &[f64; crate::scrape::WINDOW_CLOSES.len()]) -> Self {
        let [window, full, backlog_fell] = *closes;
        WindowCloses {
            window,
            full,
            backlog_fell,
        }
    }

    /// `windows closed: W by time, F full, B backlog fell`.
    pub fn describe(&self) -> String {
        format!(
            "windows closed: {:.0} by time, {:.0} full, {:.0} backlog fell",
            self.window, self.full, self.backlog_fell
        )
    }
}

/// How late the load generator sent, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct SendLag {
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// What one step of the load measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Step {
    /// Votes per second offered (the schedule).
    pub offered_rate: f64,
    /// Votes sent.
    pub sent: u64,
    /// Votes acknowledged (202 with a receipt).
    pub acked: u64,
    /// Votes refused (a status other than 202 and 503).
    pub refused: u64,
    /// Votes that got 503, a transport error or no answer in time.
    pub failed: u64,
    /// Acknowledged votes per second, from the first scheduled send to the last answer.
    pub achieved_rate: f64,
    /// Ack latency (from the scheduled send time).
    pub latency: Latency,
    /// How late the load generator sent votes after their scheduled times (p99 and max,
    /// milliseconds): it shares the CPU with the stack when that runs in this process, so a
    /// stall of the whole process shows here, one of the stack only in `latency`.
    pub send_lag: SendLag,
    /// The step's stretches of slow answers: its [`crate::stalls::WINDOW_MS`] windows of
    /// scheduled time whose median ack latency was high, and the worst one.
    pub stalls: Stalls,
    /// CPU seconds of this process per acknowledged vote, from the first send until the
    /// collectors emptied the queues (the whole stack and the load generator), when the
    /// stack runs in this process.
    pub cpu_secs_per_vote: Option<f64>,
    /// Queue messages the edges wrote per vote they made durable.
    pub messages_per_vote: f64,
    /// Store write calls of the collectors per ballot stored.
    pub store_writes_per_vote: f64,
    /// Largest queue depth sampled during the step (messages written, not yet deleted).
    pub peak_queue_depth: f64,
    /// 99th percentile of the edges' queue sends, milliseconds: the upper bound of its
    /// histogram bucket (`edgevote_edge_queue_send_seconds`); `None` without sends or above 5 s.
    pub queue_send_p99_ms: Option<f64>,
    /// 99th percentile of the edges' group commits, first vote to outcome, milliseconds (bucket
    /// upper bound, `edgevote_edge_group_commit_seconds`); `None` without commits or above 5 s.
    pub group_commit_p99_ms: Option<f64>,
    /// 99th percentile of the vote requests as the edges saw them, head to answer,
    /// milliseconds (bucket upper bound, `edgevote_edge_vote_seconds`): the ack latency less
    /// the network, the client's HTTP and the load generator's lateness.
    pub edge_vote_p99_ms: Option<f64>,
    /// 99th percentile of a vote's time in group commit, hand-over to outcome, milliseconds
    /// (bucket upper bound, `edgevote_edge_vote_commit_seconds`): per vote, where
    /// `group_commit_p99_ms` is per message; what `edge_vote_p99_ms` has beyond it was spent
    /// before group commit.
    pub vote_commit_p99_ms: Option<f64>,
    /// 99th percentiles of a vote's time in group commit after its window closed, by phase
    /// (waiting for a commit slot, sealing, storing), milliseconds (bucket upper bounds,
    /// `edgevote_edge_vote_commit_phase_seconds`, observed per vote of each message): the
    /// window itself is what `vote_commit_p99_ms` has beyond them.
    pub commit_phase_p99_ms: CommitPhasesP99,
    /// Times an edge counted as overloaded and stretched its group-commit window
    /// (`edgevote_edge_group_commit_stretches_total`).
    pub window_stretches: f64,
    /// Group-commit windows that opened stretched
    /// (`edgevote_edge_group_commit_windows_stretched_total`): of `messages_per_vote`'s
    /// messages, those that waited the long window.
    pub stretched_windows: f64,
    /// Group commits that committed alone (`edgevote_edge_group_commits_alone_total`): the
    /// batch before had waited 5 ms or more for a commit slot.
    pub commits_alone: f64,
    /// Group-commit windows by why they closed (`edgevote_edge_group_commit_closes_total`):
    /// what set the votes per message.
    pub window_closes: WindowCloses,
    /// Milliseconds from the last answer until the collectors had emptied the queues; `None`
    /// when they had not within the drain timeout.
    pub drain_ms: Option<u64>,
}

impl Step {
    /// Whether the stack kept up with this step's offered rate: nearly every vote acknowledged,
    /// at nearly the offered rate, within the saturation latency.
    pub fn kept_up(&self, config: &OpenLoopConfig) -> bool {
        let sent = self.sent.max(1) as f64;
        self.acked as f64 >= 0.99 * sent
            && self.achieved_rate >= 0.9 * self.offered_rate
            && self.latency.p99_ms <= config.saturation_p99_ms
    }
}

/// Where the load goes: the stack's regions, its election, and whether the stack runs in
/// this process (then its CPU time is this process's).
pub struct Target<'a> {
    /// The stack.
    pub stack: &'a StackInfo,
    /// Its election.
    pub manifest: &'a ElectionManifest,
    /// Its key store (the authority key issues the voters' tokens).
    pub keys: &'a KeyStore,
    /// Whether the stack runs in this process.
    pub in_process: bool,
}

/// The end-to-end figures: the rising steps, the maximum rate, a step held at full load and a
/// step at half of the maximum rate.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EndToEnd {
    /// The load's shape.
    pub config: OpenLoopConfig,
    /// The rising steps, in order.
    pub steps: Vec<Step>,
    /// Index in `steps` of the step with the highest achieved rate (full load).
    pub full_load: usize,
    /// The highest achieved rate of the rising steps, votes per second.
    pub max_rate: f64,
    /// A step offered what the full-load step was offered, [`JUDGED_STEP_FACTOR`] times as
    /// long: messages per vote at full load are judged there.
    pub full_load_held: Step,
    /// A step offered half of `max_rate`, [`JUDGED_STEP_FACTOR`] times as long: the p99 at
    /// half load is judged there.
    pub half_load: Step,
}

/// The load at rising rates until the stack saturates (or `max_steps`), then a step offered
/// the full-load step's rate and one at half the maximum rate reached, each
/// [`JUDGED_STEP_FACTOR`] times as long. `on_step` hears of each step before it starts
/// ("offered rate") and after it ends.
pub async fn rising_load(
    target: &Target<'_>,
    config: &OpenLoopConfig,
    on_step: &(dyn Fn(StepEvent<'_>) + Send + Sync),
) -> Result<EndToEnd, BenchError> {
    let mut steps = Vec::new();
    let mut rate = f64::from(config.start_rate.max(1));
    for index in 0..config.max_steps.max(1) {
        let step_ms = config.step_ms;
        on_step(StepEvent::Starting {
            index,
            what: "rising",
            rate,
            step_ms,
        });
        let step = run_step(target, config, rate, step_ms, index as u64).await?;
        on_step(StepEvent::Done { index, step: &step });
        let kept_up = step.kept_up(config);
        steps.push(step);
        if !kept_up {
            break;
        }
        rate *= 1.0 + f64::from(config.growth_pct) / 100.0;
    }
    let (full_load, max_rate) = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (i, s.achieved_rate))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0));
    let judged_step_ms = config.step_ms.saturating_mul(JUDGED_STEP_FACTOR);
    let full_rate = steps.get(full_load).map_or(rate, |s| s.offered_rate);
    let mut index = steps.len();
    let mut judged_step = async |what: &'static str, rate: f64| {
        on_step(StepEvent::Starting {
            index,
            what,
            rate,
            step_ms: judged_step_ms,
        });
        let step = run_step(target, config, rate, judged_step_ms, index as u64).await?;
        on_step(StepEvent::Done { index, step: &step });
        index += 1;
        Ok::<_, BenchError>(step)
    };
    let full_load_held = judged_step("full load held", full_rate).await?;
    let half_load = judged_step("half of max", (max_rate / 2.0).max(1.0)).await?;
    Ok(EndToEnd {
        config: config.clone(),
        steps,
        full_load,
        max_rate,
        full_load_held,
        half_load,
    })
}

/// Progress of [`rising_load`].
#[derive(Debug, Clone, Copy)]
pub enum StepEvent<'a> {
    /// Step `index` starts, offering `rate` votes/s.
    Starting {
        /// The step's number.
        index: usize,
        /// Which step: `rising`, `full load held` or `half of max`.
        what: &'static str,
        /// Votes per second offered.
        rate: f64,
        /// For how long, milliseconds.
        step_ms: u64,
    },
    /// Step `index` ended.
    Done {
        /// The step's number.
        index: usize,
        /// What it measured.
        step: &'a Step,
    },
}

/// One step: `rate` votes/s for `step_ms`, then the wait for the queues to empty.
/// `run` makes this step's voters and nonces distinct from every other step's and run's.
async fn run_step(
    target: &Target<'_>,
    config: &OpenLoopConfig,
    rate: f64,
    step_ms: u64,
    run: u64,
) -> Result<Step, BenchError> {
    let votes = ((rate * step_ms as f64 / 1000.0).ceil() as u64).max(1);
    let bodies = ballots(target, votes, run)?;
    let before = counters(target.stack).await?;
    let watch = Stopwatch::start();
    let sampler = DepthSampler::start(target.stack.clone());
    let sent = send_open_loop(target, config, rate, bodies).await?;
    let last_answer = Instant::now();
    let drained = drain(target.stack, config.drain_timeout_ms).await?;
    let drain_ms = drained.then(|| last_answer.elapsed().as_millis() as u64);
    let (_, cpu) = watch.elapsed();
    let peak_queue_depth = sampler.stop().await;
    let delta = counters(target.stack).await?.since(&before);
    Ok(sent.into_step(
        rate,
        &delta,
        peak_queue_depth,
        drain_ms,
        target.in_process.then_some(cpu),
    ))
}

/// `count` ballots of new voters (tokens issued on every core from the stack's authority key),
/// choices round robin.
fn ballots(target: &Target<'_>, count: u64, run: u64) -> Result<Vec<Bytes>, BenchError> {
    let manifest = target.manifest;
    let authority = target.keys.signing_identity(Role::Authority, None)?;
    let window = TokenWindow::for_election(manifest, edgevote_signer::clock::now_secs());
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let salt: [u8; 8] = edgevote_signer::random::bytes()?;
    let mut bodies = Vec::with_capacity(count as usize);
    issue_tokens(&authority, manifest, window, count, threads, |tokens| {
        for token in tokens {
            let i = bodies.len();
            let option = &manifest.options[i % manifest.options.len().max(1)];
            let nonce = b64::encode([salt, run.to_le_bytes(), (i as u64).to_le_bytes()].concat());
            let body = serde_json::json!({
                "election": manifest.id, "token": token, "choice": option.id, "nonce": nonce,
            });
            bodies.push(Bytes::from(body.to_string()));
        }
        Ok(())
    })?;
    Ok(bodies)
}

/// One region's edge: up to `connections` keep-alive connections, reused.
struct Pool {
    url: String,
    election: String,
    idle: std::sync::Mutex<Vec<Conn>>,
    slots: tokio::sync::Semaphore,
}

impl Pool {
    fn new(url: &str, election: &str, connections: usize) -> Pool {
        Pool {
            url: url.to_owned(),
            election: election.to_owned(),
            idle: std::sync::Mutex::new(Vec::new()),
            slots: tokio::sync::Semaphore::new(connections.max(1)),
        }
    }

    /// POSTs one ballot on an idle connection (or a new one): the answer's status. A reused
    /// connection the edge closed before the request went out (idle past its header read
    /// timeout) is replaced by a new one, as any HTTP client does: the edge never saw it.
    async fn post(&self, body: Bytes) -> Result<u16, BoxError> {
        let _slot = self.slots.acquire().await?;
        if let Some(mut conn) = self.idle_open_conn() {
            match conn.post_vote(&self.election, body.clone()).await {
                Ok((status, _)) => {
                    self.idle_conns().push(conn);
                    return Ok(status);
                }
                Err(e) if !e.is::<edgevote_stack::client::NotSent>() => return Err(e),
                Err(_) => {} // closed under us before sending: a new connection below
            }
        }
        let mut conn = Conn::connect(&self.url).await?;
        let (status, _) = conn.post_vote(&self.election, body).await?;
        self.idle_conns().push(conn);
        Ok(status)
    }

    /// The most recently used idle connection that is still open (closed ones are dropped).
    fn idle_open_conn(&self) -> Option<Conn> {
        let mut idle = self.idle_conns();
        // Bounded by the pool's size: each pass drops one connection.
        while let Some(conn) = idle.pop() {
            if !conn.is_closed() {
                return Some(conn);
            }
        }
        None
    }

    fn idle_conns(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How one vote ended.
enum Answer {
    /// 202, after `latency_us` from its scheduled time, `scheduled_ms` after the step's start.
    Acked { latency_us: u64, scheduled_ms: u64 },
    /// Another status than 202 or 503.
    Refused,
    /// 503, a transport error or no answer in time.
    Failed,
}

/// What the sender saw in one step.
struct Sent {
    histogram: Histogram<u64>,
    /// Microseconds from each vote's scheduled time to its send (the in-flight bound's wait
    /// included).
    lag: Histogram<u64>,
    /// The ack latencies by window of scheduled time ([`crate::stalls`]).
    windows: WindowedLatency,
    sent: u64,
    refused: u64,
    failed: u64,
    elapsed: Duration,
}

impl Sent {
    fn record(&mut self, answer: Answer) {
        match answer {
            Answer::Acked {
                latency_us,
                scheduled_ms,
            } => {
                let latency_us = latency_us.clamp(1, MAX_LATENCY_US);
                self.histogram.saturating_record(latency_us);
                self.windows.record(scheduled_ms, latency_us);
            }
            Answer::Refused => self.refused += 1,
            Answer::Failed => self.failed += 1,
        }
    }

    fn latency(&self) -> Latency {
        let ms = |q: f64| self.histogram.value_at_quantile(q) as f64 / 1000.0;
        Latency {
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: self.histogram.max() as f64 / 1000.0,
        }
    }

    fn send_lag(&self) -> SendLag {
        SendLag {
            p99_ms: self.lag.value_at_quantile(0.99) as f64 / 1000.0,
            max_ms: self.lag.max() as f64 / 1000.0,
        }
    }

    fn into_step(
        self,
        rate: f64,
        delta: &Counters,
        peak_queue_depth: f64,
        drain_ms: Option<u64>,
        cpu_secs: Option<f64>,
    ) -> Step {
        let acked = self.histogram.len();
        Step {
            offered_rate: rate,
            sent: self.sent,
            acked,
            refused: self.refused,
            failed: self.failed,
            achieved_rate: acked as f64 / self.elapsed.as_secs_f64().max(1e-9),
            latency: self.latency(),
            send_lag: self.send_lag(),
            stalls: self.windows.stalls(),
            cpu_secs_per_vote: cpu_secs.map(|cpu| cpu / acked.max(1) as f64),
            messages_per_vote: delta.messages_sent / delta.votes_committed.max(1.0),
            store_writes_per_vote: delta.store_writes / delta.votes_stored.max(1.0),
            peak_queue_depth,
            queue_send_p99_ms: crate::scrape::p99_ms(&delta.queue_send),
            group_commit_p99_ms: crate::scrape::p99_ms(&delta.group_commit),
            edge_vote_p99_ms: crate::scrape::p99_ms(&delta.edge_vote),
            vote_commit_p99_ms: crate::scrape::p99_ms(&delta.vote_commit),
            commit_phase_p99_ms: CommitPhasesP99::of(&delta.commit_phases),
            window_stretches: delta.window_stretches,
            stretched_windows: delta.stretched_windows,
            commits_alone: delta.commits_alone,
            window_closes: WindowCloses::of(&delta.window_closes),
            drain_ms,
        }
    }
}

/// Sends `bodies` round robin to the regions, the i-th at `start + i / rate`, whatever the
/// answers; at most `max_in_flight` unanswered at once. The load generator runs on a thread
/// and runtime of its own, as voters are machines of their own: on the stack's runtime its
/// sends would queue behind the stack's tasks, which no real voter's do (the OS still shares
/// the cores between them, and its CPU still counts in the process's).
async fn send_open_loop(
    target: &Target<'_>,
    config: &OpenLoopConfig,
    rate: f64,
    bodies: Vec<Bytes>,
) -> Result<Sent, BenchError> {
    let edges: Vec<String> = target
        .stack
        .regions
        .iter()
        .map(|r| r.edge_url.clone())
        .collect();
    let election = target.manifest.id.clone();
    let config = config.clone();
    let (done, sent) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("edgevote-bench-load".into())
        .spawn(move || {
            let sent = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(send_from_here(&edges, &election, &config, rate, bodies)));
            let _ = done.send(sent);
        })
        .map_err(BenchError::Runtime)?;
    sent.await
        .map_err(|_| BenchError::Runtime(std::io::Error::other("the load generator panicked")))?
        .map_err(BenchError::Runtime)
}

/// [`send_open_loop`] on the current runtime.
async fn send_from_here(
    edges: &[String],
    election: &str,
    config: &OpenLoopConfig,
    rate: f64,
    bodies: Vec<Bytes>,
) -> Sent {
    let pools: Vec<Arc<Pool>> = edges
        .iter()
        .map(|url| Arc::new(Pool::new(url, election, config.connections_per_region)))
        .collect();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(config.max_in_flight.max(1)));
    let timeout = Duration::from_millis(config.request_timeout_ms);
    let histogram = || {
        Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
            .expect("constant histogram bounds are valid")
    };
    let mut sent = Sent {
        histogram: histogram(),
        lag: histogram(),
        windows: WindowedLatency::default(),
        sent: 0,
        refused: 0,
        failed: 0,
        elapsed: Duration::ZERO,
    };
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, body) in bodies.into_iter().enumerate() {
        let scheduled = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(scheduled).await;
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let late = scheduled.elapsed().as_micros() as u64;
        sent.lag.saturating_record(late.clamp(1, MAX_LATENCY_US));
        let pool = Arc::clone(&pools[i % pools.len().max(1)]);
        tasks.spawn(async move {
            let answer = match tokio::time::timeout(timeout, pool.post(body)).await {
                Ok(Ok(202)) => Answer::Acked {
                    latency_us: scheduled.elapsed().as_micros() as u64,
                    scheduled_ms: (scheduled - start).as_millis() as u64,
                },
                Ok(Ok(503)) | Ok(Err(_)) | Err(_) => Answer::Failed,
                Ok(Ok(_)) => Answer::Refused,
            };
            drop(permit);
            answer
        });
        sent.sent += 1;
        while let Some(done) = tasks.try_join_next() {
            sent.record(done.unwrap_or(Answer::Failed));
        }
    }
    while let Some(done) = tasks.join_next().await {
        sent.record(done.unwrap_or(Answer::Failed));
    }
    sent.elapsed = start.elapsed();
    sent
}

/// Waits until the collectors have taken every message the edges wrote, at most `timeout_ms`:
/// whether they did.
async fn drain(stack: &StackInfo, timeout_ms: u64) -> Result<bool, BenchError> {
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    loop {
        if counters(stack).await?.queue_depth() == 0.0 {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Samples the queue depth every [`DEPTH_SAMPLE_MS`] until stopped: the largest seen.
struct DepthSampler {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<f64>,
}

impl DepthSampler {
    fn start(stack: StackInfo) -> DepthSampler {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut peak: f64 = 0.0;
            while !*stopped.borrow() {
                if let Ok(now) = counters(&stack).await {
                    peak = peak.max(now.queue_depth());
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(DEPTH_SAMPLE_MS)) => {}
                    _ = stopped.changed() => {}
                }
            }
            peak
        });
        DepthSampler { stop, task }
    }

    async fn stop(self) -> f64 {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Serves each connection one request with 202 (keep-alive), then closes it after 20 ms,
    /// as an edge closes a keep-alive connection left idle past its header read timeout.
    async fn edge_closing_idle_connections() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let answer = b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}";
                    let _ = stream.write_all(answer).await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                });
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_pooled_connection_the_edge_closed_is_replaced_not_counted_as_failed() {
        let url = edge_closing_idle_connections().await;
        let pool = Pool::new(&url, "e", 4);
        for _ in 0..3 {
            let status = pool.post(Bytes::from_static(b"{}")).await.unwrap();
            assert_eq!(status, 202);
            // The connection goes back to the pool and the edge closes it meanwhile.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(pool.idle_conns().len(), 1, "closed connections are dropped");
    }
}
