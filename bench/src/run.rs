//! `edgevote bench` as one function: the crypto-only limit, the handlers, then the end-to-end
//! path through a stack (started here with `edgevote up`'s defaults, or one already running),
//! all in one run, into one [`Report`].

use std::path::PathBuf;
use std::time::Duration;

use edgevote_collector::config::ProcessingConfig;
use edgevote_edge_host::config::GroupCommitConfig;
use edgevote_shared::Policy;
use edgevote_stack::info::StackInputs;
use edgevote_stack::up::{self, UpConfig};

use crate::BenchError;
use crate::e2e::{self, OpenLoopConfig, StepEvent, Target};
use crate::fixture::Fixture;
use crate::report::{Machine, Report, Settings};

/// Replication delay between the regions of a stack the bench starts (`edgevote up`'s
/// default), milliseconds.
const REPLICATION_DELAY_MS: u64 = 200;
/// Bytes in a mebibyte, for progress lines.
const MIB: f64 = 1024.0 * 1024.0;

/// What to measure and how much.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The edge component (`scripts/build-wasm.sh spin`).
    pub component: PathBuf,
    /// Its wide-arithmetic build (`scripts/build-wasm.sh wide`), measured under component
    /// sealing beside the portable one; `None` leaves it out.
    pub wide_component: Option<PathBuf>,
    /// A running stack's data directory to load; `None` starts one in a scratch directory.
    pub up: Option<PathBuf>,
    /// Regions of a stack the bench starts.
    pub regions: u8,
    /// Votes' worth of crypto for the crypto-only limit.
    pub crypto_votes: usize,
    /// Votes per round of the handler measurements.
    pub handler_votes: usize,
    /// Interleaved rounds of the handler measurements (the median is reported).
    pub handler_rounds: usize,
    /// The open-loop load.
    pub load: OpenLoopConfig,
    /// (e): connections held open at once to one edge host process; 0 skips it.
    pub connections: usize,
    /// The `edgevote` binary, which (e) starts as `edgevote edge run`.
    pub edgevote: PathBuf,
}

/// Where a run reports what it is doing (the CLI prints it on stderr).
pub trait Progress: Send + Sync {
    /// One line of progress.
    fn note(&self, line: &str);
}

/// Measures everything `config` asks for, in one run.
pub fn run(config: &BenchConfig, progress: &dyn Progress) -> Result<Report, BenchError> {
    // Fail before minutes of measuring when (e) could not hold its connections.
    if config.connections > 0 {
        crate::connections::ensure_open_files(config.connections)?;
    }
    let machine = Machine::this();
    let group_commit = GroupCommitConfig::default();
    progress.note(&format!(
        "(a) crypto-only limit: {} votes on {} cores ...",
        config.crypto_votes, machine.cores
    ));
    let crypto = crate::crypto::crypto_limit(config.crypto_votes, group_commit.max_votes, 0);
    progress.note(&format!(
        "(b, c) handler: {} votes x {} rounds, native and component under both sealings ...",
        config.handler_votes, config.handler_rounds
    ));
    let fixture = Fixture::new(config.handler_votes, &config.component)?;
    let wide = match &config.wide_component {
        Some(wasm) => Some(fixture.sign_component(wasm, "wide")?),
        None => None,
    };
    let (handler, hosts) =
        crate::handler::measure_handlers(&fixture, wide.as_ref(), config.handler_rounds, |r| {
            progress.note(&format!("    round {r}/{} done", config.handler_rounds));
        })?;
    drop((hosts, fixture));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    let (e2e, stack_name, regions) = runtime.block_on(end_to_end(config, progress))?;
    let connections = match config.connections {
        0 => None,
        n => {
            progress.note(&format!(
                "(e) {n} connections held open to one edge host (edgevote edge run) ..."
            ));
            let figures = runtime.block_on(crate::connections::measure(
                &config.edgevote,
                &config.component,
                n,
            ))?;
            progress.note(&format!(
                "    {} held, {} answered again, peak RSS {:.1} MiB",
                figures.held_open,
                figures.answered_again,
                figures.rss_peak_bytes as f64 / MIB
            ));
            Some(figures)
        }
    };
    let settings = Settings {
        stack: stack_name,
        regions,
        sealing: "host",
        verify_tokens: ProcessingConfig::default().verify_tokens,
        group_commit_max_votes: group_commit.max_votes,
        group_commit_max_wait_ms: group_commit.max_wait_ms,
        group_commit_stretched_wait_ms: group_commit.stretched_wait().map(whole_millis),
        group_commit_overload_backlog_votes: group_commit.overload_backlog_votes,
        group_commit_overload_lag_ms: group_commit.overload_lag_ms,
        group_commit_alone_after_slot_wait_ms: whole_millis(
            edgevote_edge_host::commit::SLOT_PRESSURE,
        ),
        component: config.component.display().to_string(),
    };
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut report = Report::new(date, machine, settings, crypto, handler, e2e);
    report.connections = connections;
    Ok(report)
}

/// A setting's duration in whole milliseconds, as the report prints it.
fn whole_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// (d): the load through the stack at `config.up`, or through one started here and stopped
/// after. The figures, the stack's description and its number of regions.
async fn end_to_end(
    config: &BenchConfig,
    progress: &dyn Progress,
) -> Result<(e2e::EndToEnd, String, usize), BenchError> {
    let on_step = |event: StepEvent<'_>| {
        match event {
        StepEvent::Starting {
            index,
            what,
            rate,
            step_ms,
        } => progress.note(&format!(
            "(d) step {} ({what}): {rate:.0} votes/s for {step_ms} ms (open loop) ...",
            index + 1,
        )),
        StepEvent::Done { index, step } => progress.note(&format!(
            "    step {}: {} acked of {} at {:.0}/s, p99 {:.2} ms, {:.4} messages/vote, queue peak {:.0}, edges' p99: vote {} (in group commit {}; past the window's deadline: {}), queue send {}, group commit {}, edges overloaded {:.0} times, {:.0} windows stretched, {:.0} commits alone, {}; sender late p99 {:.2} ms, max {:.2} ms; {}",
            index + 1,
            step.acked,
            step.sent,
            step.achieved_rate,
            step.latency.p99_ms,
            step.messages_per_vote,
            step.peak_queue_depth,
            crate::report::bucket_bound(step.edge_vote_p99_ms),
            crate::report::bucket_bound(step.vote_commit_p99_ms),
            step.commit_phase_p99_ms.describe(),
            crate::report::bucket_bound(step.queue_send_p99_ms),
            crate::report::bucket_bound(step.group_commit_p99_ms),
            step.window_stretches,
            step.stretched_windows,
            step.commits_alone,
            step.window_closes.describe(),
            step.send_lag.p99_ms,
            step.send_lag.max_ms,
            step.stalls.describe(),
        )),
    }
    };
    if let Some(dir) = &config.up {
        let info = edgevote_stack::read_stack(dir)?;
        let inputs = StackInputs::open(&info)?;
        let target = Target {
            stack: &info,
            manifest: &inputs.manifest,
            keys: &inputs.store,
            in_process: false,
        };
        let figures = e2e::rising_load(&target, &config.load, &on_step).await?;
        return Ok((figures, format!("at {}", dir.display()), info.regions.len()));
    }
    let scratch = tempfile::tempdir().map_err(|source| BenchError::Fixture {
        path: std::env::temp_dir(),
        source,
    })?;
    progress.note(&format!(
        "(d) starting the stack ({} regions, edgevote up defaults) ...",
        config.regions
    ));
    let stack = up::start(&UpConfig {
        data_dir: scratch.path().join("up"),
        regions: config.regions,
        replication_delay: Duration::from_millis(REPLICATION_DELAY_MS),
        component: config.component.clone(),
        election: "bench-2026".into(),
        policy: Policy::FirstVoteWins,
        open_for: Duration::from_secs(3600),
        // What `edgevote up` runs by default: the embedded queues and stores.
        backend: edgevote_stack::backend::Backend::Embedded,
    })
    .await?;
    let inputs = StackInputs::open(stack.info())?;
    let target = Target {
        stack: stack.info(),
        manifest: &inputs.manifest,
        keys: &inputs.store,
        in_process: true,
    };
    let figures = e2e::rising_load(&target, &config.load, &on_step).await;
    let regions = stack.info().regions.len();
    stack.stop().await;
    Ok((
        figures?,
        "in process (edgevote up defaults)".into(),
        regions,
    ))
}
