//! One run's figures, each with its ratio to the crypto-only limit, as a table for people and
//! as JSON for scripts.

use std::fmt::Write;

use crate::connections::{BUDGET_BYTES_PER_CONNECTION, ConnectionFigures};
use crate::crypto::CryptoLimit;
use crate::e2e::{EndToEnd, Latency, Step};
use crate::handler::HandlerFigures;

/// The machine and build the run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    /// Cores available to the process.
    pub cores: usize,
    /// The CPU's model name (`/proc/cpuinfo`), if known.
    pub cpu: String,
    /// `release` or `debug` (debug figures are not worth quoting).
    pub build: &'static str,
}

impl Machine {
    /// This machine and build.
    pub fn this() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            cpu,
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        }
    }
}

/// The settings the run used (the production defaults unless a flag said otherwise).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settings {
    /// The stack: started in this process with `edgevote up`'s defaults, or the one at a
    /// data directory.
    pub stack: String,
    /// Regions loaded.
    pub regions: usize,
    /// The edges' sealing.
    pub sealing: &'static str,
    /// Whether the collectors verify every token again.
    pub verify_tokens: bool,
    /// Group commit: most votes per queue message.
    pub group_commit_max_votes: usize,
    /// Group commit: longest wait for more votes, milliseconds.
    pub group_commit_max_wait_ms: u64,
    /// Group commit: the same wait while an edge is overloaded, milliseconds; `None` when
    /// the window is never stretched.
    pub group_commit_stretched_wait_ms: Option<u64>,
    /// Group commit: an edge's backlog, in votes, that counts as behind (0: this trigger is
    /// off).
    pub group_commit_overload_backlog_votes: u64,
    /// Group commit: the lag that counts as behind, milliseconds (0: this trigger is off).
    pub group_commit_overload_lag_ms: u64,
    /// Group commit: after a message waited this long for a commit slot, milliseconds, the
    /// next one commits alone (`edgevote_edge_host::commit::SLOT_PRESSURE`).
    pub group_commit_alone_after_slot_wait_ms: u64,
    /// The component measured.
    pub component: String,
}

/// A row of the table: one path, its figures and their ratios to the crypto-only limit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// Which path.
    pub path: String,
    /// Votes per second: wall clock on every core for the crypto limit and the end-to-end
    /// path, per CPU-second (one core) for the handlers.
    pub votes_per_sec: f64,
    /// `votes_per_sec` over the crypto-only limit's (per core for the handlers).
    pub votes_per_sec_ratio: f64,
    /// CPU microseconds per vote.
    pub cpu_us_per_vote: Option<f64>,
    /// The crypto-only limit's CPU per vote over this path's (1.0: nothing but crypto).
    pub cpu_ratio: Option<f64>,
    /// Ack latency.
    pub latency: Option<Latency>,
    /// p99 ack latency over the crypto-only CPU time of one vote.
    pub p99_ratio: Option<f64>,
    /// Queue messages per vote.
    pub messages_per_vote: Option<f64>,
    /// `messages_per_vote` over the crypto-only limit's (one message per full group commit).
    pub messages_ratio: Option<f64>,
    /// Store write calls per vote.
    pub store_writes_per_vote: Option<f64>,
    /// `store_writes_per_vote` over the crypto-only limit's (one write per full message).
    pub store_writes_ratio: Option<f64>,
}

/// End-to-end rate at full load over the crypto-only limit that is to be reached (issue target).
pub const E2E_RATIO_TARGET: f64 = 0.5;
/// p99 ack latency at half the maximum rate not to be exceeded, milliseconds (issue target).
pub const P99_AT_HALF_LOAD_TARGET_MS: f64 = 10.0;
/// Queue messages per vote at full load not to be exceeded (issue target).
pub const MESSAGES_PER_VOTE_AT_FULL_LOAD_TARGET: f64 = 0.01;

/// The targets for a release build on 2 cores, and whether this run met them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Targets {
    /// End to end at full load over the crypto-only limit (target [`E2E_RATIO_TARGET`]).
    pub e2e_ratio: f64,
    /// p99 ack latency at half the maximum rate, milliseconds (target
    /// [`P99_AT_HALF_LOAD_TARGET_MS`]).
    pub p99_at_half_load_ms: f64,
    /// Queue messages per vote at full load (target [`MESSAGES_PER_VOTE_AT_FULL_LOAD_TARGET`]),
    /// over the step held at the full-load step's offered rate.
    pub messages_per_vote_at_full_load: f64,
    /// Queue messages per vote of the rising step at full load, its ramp-in included (for
    /// comparison; not judged).
    pub messages_per_vote_at_full_load_rising: f64,
    /// Whether the collectors emptied the queues after every step (the queue depth stayed
    /// bounded).
    pub collectors_kept_up: bool,
    /// Largest queue depth seen in any step, messages.
    pub peak_queue_depth: f64,
    /// Whether all four targets were met.
    pub met: bool,
}

impl Targets {
    /// Whether end to end reached [`E2E_RATIO_TARGET`] of the crypto-only limit.
    pub fn e2e_met(&self) -> bool {
        self.e2e_ratio >= E2E_RATIO_TARGET
    }

    /// Whether the p99 at half load stayed within [`P99_AT_HALF_LOAD_TARGET_MS`].
    pub fn p99_met(&self) -> bool {
        self.p99_at_half_load_ms <= P99_AT_HALF_LOAD_TARGET_MS
    }

    /// Whether the held full-load step stayed within [`MESSAGES_PER_VOTE_AT_FULL_LOAD_TARGET`].
    pub fn messages_met(&self) -> bool {
        self.messages_per_vote_at_full_load <= MESSAGES_PER_VOTE_AT_FULL_LOAD_TARGET
    }

    fn all_met(&self) -> bool {
        self.e2e_met() && self.p99_met() && self.messages_met() && self.collectors_kept_up
    }
}

/// Everything one `edgevote bench` run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// When, UTC (RFC 3339).
    pub date: String,
    /// Where.
    pub machine: Machine,
    /// With what.
    pub settings: Settings,
    /// (a) the crypto-only limit.
    pub crypto: CryptoLimit,
    /// (b), (c) the handler natively and in the component.
    pub handler: HandlerFigures,
    /// (d) the end-to-end path.
    pub e2e: EndToEnd,
    /// The table: every path with its ratios to (a).
    pub rows: Vec<Row>,
    /// The targets.
    pub targets: Targets,
    /// (e) many connections to one edge host, when measured.
    pub connections: Option<ConnectionFigures>,
}

impl Report {
    /// The report of these figures, with the table and the targets derived from them.
    pub fn new(
        date: String,
        machine: Machine,
        settings: Settings,
        crypto: CryptoLimit,
        handler: HandlerFigures,
        e2e: EndToEnd,
    ) -> Report {
        let rows = rows(&crypto, &handler, &e2e);
        let targets = targets(&crypto, &e2e);
        Report {
            date,
            machine,
            settings,
            crypto,
            handler,
            e2e,
            rows,
            targets,
            connections: None,
        }
    }
}

fn rows(crypto: &CryptoLimit, handler: &HandlerFigures, e2e: &EndToEnd) -> Vec<Row> {
    let limit_cpu_us = crypto.cpu_secs_per_vote * 1e6;
    let limit_per_core = 1.0 / crypto.cpu_secs_per_vote.max(1e-12);
    let per_batch = 1.0 / crypto.votes_per_batch.max(1) as f64;
    let mut rows = vec![Row {
        path: format!("(a) crypto-only limit, {} cores", crypto.threads),
        votes_per_sec: crypto.votes_per_sec,
        votes_per_sec_ratio: 1.0,
        cpu_us_per_vote: Some(limit_cpu_us),
        cpu_ratio: Some(1.0),
        latency: None,
        p99_ratio: None,
        messages_per_vote: Some(per_batch),
        messages_ratio: Some(1.0),
        store_writes_per_vote: Some(per_batch),
        store_writes_ratio: Some(1.0),
    }];
    let handler_row = |path: &str, per_cpu_sec: f64, votes_per_message: f64| {
        let cpu_us = 1e6 / per_cpu_sec.max(1e-12);
        let messages = 1.0 / votes_per_message.max(1e-12);
        Row {
            path: path.to_owned(),
            votes_per_sec: per_cpu_sec,
            votes_per_sec_ratio: per_cpu_sec / limit_per_core,
            cpu_us_per_vote: Some(cpu_us),
            cpu_ratio: Some(limit_cpu_us / cpu_us),
            latency: None,
            p99_ratio: None,
            messages_per_vote: (votes_per_message > 0.0).then_some(messages),
            messages_ratio: (votes_per_message > 0.0).then_some(messages / per_batch),
            store_writes_per_vote: None,
            store_writes_ratio: None,
        }
    };
    rows.push(handler_row(
        "(b) native handler, per core",
        handler.native.median,
        1.0,
    ));
    rows.push(handler_row(
        "(c) component, host sealing, per core",
        handler.host_sealing.median,
        handler.votes_per_message_host,
    ));
    rows.push(handler_row(
        "(c) component, component sealing, per core",
        handler.component_sealing.median,
        handler.votes_per_message_component,
    ));
    if let Some(wide) = &handler.wide_component_sealing {
        rows.push(handler_row(
            "(c) wide-arithmetic build, component sealing",
            wide.median,
            handler.votes_per_message_component,
        ));
    }
    let step_row = |path: String, step: &Step| Row {
        path,
        votes_per_sec: step.achieved_rate,
        votes_per_sec_ratio: step.achieved_rate / crypto.votes_per_sec.max(1e-12),
        cpu_us_per_vote: step.cpu_secs_per_vote.map(|c| c * 1e6),
        cpu_ratio: step
            .cpu_secs_per_vote
            .map(|c| crypto.cpu_secs_per_vote / c.max(1e-12)),
        latency: Some(step.latency),
        p99_ratio: Some(step.latency.p99_ms * 1e3 / limit_cpu_us.max(1e-12)),
        messages_per_vote: Some(step.messages_per_vote),
        messages_ratio: Some(step.messages_per_vote / per_batch),
        store_writes_per_vote: Some(step.store_writes_per_vote),
        store_writes_ratio: Some(step.store_writes_per_vote / per_batch),
    };
    for step in &e2e.steps {
        rows.push(step_row(
            format!("(d) end to end, offered {:.0}/s", step.offered_rate),
            step,
        ));
    }
    rows.push(step_row(
        format!(
            "(d) end to end, full load held ({:.0}/s)",
            e2e.full_load_held.offered_rate
        ),
        &e2e.full_load_held,
    ));
    rows.push(step_row(
        format!(
            "(d) end to end, half of max ({:.0}/s)",
            e2e.half_load.offered_rate
        ),
        &e2e.half_load,
    ));
    rows
}

fn targets(crypto: &CryptoLimit, e2e: &EndToEnd) -> Targets {
    let full = e2e.steps.get(e2e.full_load);
    let e2e_ratio = e2e.max_rate / crypto.votes_per_sec.max(1e-12);
    let p99_at_half_load_ms = e2e.half_load.latency.p99_ms;
    let messages_per_vote_at_full_load = e2e.full_load_held.messages_per_vote;
    let messages_per_vote_at_full_load_rising = full.map_or(0.0, |s| s.messages_per_vote);
    let all_steps = || {
        e2e.steps
            .iter()
            .chain([&e2e.full_load_held, &e2e.half_load])
    };
    let collectors_kept_up = all_steps().all(|s| s.drain_ms.is_some());
    let peak_queue_depth = all_steps().map(|s| s.peak_queue_depth).fold(0.0, f64::max);
    let mut targets = Targets {
        e2e_ratio,
        p99_at_half_load_ms,
        messages_per_vote_at_full_load,
        messages_per_vote_at_full_load_rising,
        collectors_kept_up,
        peak_queue_depth,
        met: false,
    };
    targets.met = targets.all_met();
    targets
}

/// A histogram quantile as the bucket bound it was read from: "<= 5 ms", or "-" when there is
/// none (no observations, or above the last finite bound).
pub(crate) fn bucket_bound(ms: Option<f64>) -> String {
    // Rounded to 0.1 ms: a bound read back as seconds times 1000 (0.0075 s) can be off in
    // its last bits.
    ms.map_or_else(
        || "-".to_owned(),
        |ms| format!("<= {} ms", (ms * 10.0).round() / 10.0),
    )
}

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.decimals$}"))
}

fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "".into(), |v| format!(" ({v:.2}x)"))
}

/// The group-commit window's stretching, as the settings line says it.
fn stretching(s: &Settings) -> String {
    match s.group_commit_stretched_wait_ms {
        None => "never stretched".to_owned(),
        Some(stretched_ms) if s.group_commit_overload_backlog_votes > 0 => format!(
            "{stretched_ms} ms while most commits see a backlog of {} votes",
            s.group_commit_overload_backlog_votes
        ),
        Some(stretched_ms) => format!(
            "{stretched_ms} ms while most commits lag {} ms",
            s.group_commit_overload_lag_ms
        ),
    }
}

/// The report as text: settings, the table with ratios, the targets.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let (m, s) = (&report.machine, &report.settings);
    let _ = writeln!(
        out,
        "edgevote bench, {} ({} build), {} cores ({})",
        report.date, m.build, m.cores, m.cpu
    );
    let _ = writeln!(
        out,
        "settings: stack {}, {} regions, {} sealing, verify_tokens={}, group commit <= {} votes / {} ms ({}; alone after a {} ms wait for a slot), component {}",
        s.stack,
        s.regions,
        s.sealing,
        s.verify_tokens,
        s.group_commit_max_votes,
        s.group_commit_max_wait_ms,
        stretching(s),
        s.group_commit_alone_after_slot_wait_ms,
        s.component
    );
    let _ = writeln!(
        out,
        "ratios (Nx) are to (a); latency ratio: p99 over (a)'s CPU time per vote; (b), (c) per CPU-second with a queue that accepts at once"
    );
    let _ = writeln!(
        out,
        "{:<46} {:>16} {:>18} {:>8} {:>18} {:>8} {:>16} {:>16}",
        "path", "votes/s", "CPU us/vote", "p50 ms", "p99 ms", "p999 ms", "msgs/vote", "writes/vote"
    );
    for row in &report.rows {
        let latency = row.latency;
        let _ = writeln!(
            out,
            "{:<46} {:>16} {:>18} {:>8} {:>18} {:>8} {:>16} {:>16}",
            row.path,
            format!("{:.0} ({:.2}x)", row.votes_per_sec, row.votes_per_sec_ratio),
            format!("{}{}", opt(row.cpu_us_per_vote, 1), ratio(row.cpu_ratio)),
            opt(latency.map(|l| l.p50_ms), 2),
            format!(
                "{}{}",
                opt(latency.map(|l| l.p99_ms), 2),
                ratio(row.p99_ratio)
            ),
            opt(latency.map(|l| l.p999_ms), 2),
            format!(
                "{}{}",
                opt(row.messages_per_vote, 4),
                ratio(row.messages_ratio)
            ),
            format!(
                "{}{}",
                opt(row.store_writes_per_vote, 4),
                ratio(row.store_writes_ratio)
            ),
        );
    }
    render_targets(&mut out, report);
    if let Some(c) = &report.connections {
        render_connections(&mut out, c);
    }
    out
}

fn render_connections(out: &mut String, c: &ConnectionFigures) {
    const MIB: f64 = 1024.0 * 1024.0;
    let _ = writeln!(
        out,
        "(e) {} connections to one edge host: {} held open with a vote acknowledged on each ({:.1} s), {} answered again; host RSS {:.1} MiB at start, peak {:.1} MiB, {:.1} KiB per connection (budget {} KiB: {})",
        c.connections,
        c.held_open,
        c.open_secs,
        c.answered_again,
        c.rss_start_bytes as f64 / MIB,
        c.rss_peak_bytes as f64 / MIB,
        c.bytes_per_connection / 1024.0,
        BUDGET_BYTES_PER_CONNECTION / 1024,
        if c.within_budget { "met" } else { "NOT met" },
    );
}

/// Component sealing's share of the native handler's rate that the wide-arithmetic build is
/// to reach on our host (issue target).
pub const COMPONENT_SEALING_TARGET_OF_NATIVE: f64 = 0.6;

fn render_targets(out: &mut String, report: &Report) {
    let t = &report.targets;
    let mark = |ok: bool| if ok { "met" } else { "NOT met" };
    let h = &report.handler;
    let of_native = |rate: f64| rate / h.native.median.max(1e-12);
    let wide = h.wide_component_sealing.as_ref().map_or_else(
        || "wide-arithmetic build not measured (scripts/build-wasm.sh wide)".to_owned(),
        |wide| {
            format!(
                "wide-arithmetic build {:.2}x (>= {COMPONENT_SEALING_TARGET_OF_NATIVE}x: {})",
                of_native(wide.median),
                mark(of_native(wide.median) >= COMPONENT_SEALING_TARGET_OF_NATIVE)
            )
        },
    );
    let _ = writeln!(
        out,
        "component sealing of native (b): portable build {:.2}x, {wide}",
        of_native(h.component_sealing.median),
    );
    let _ = writeln!(
        out,
        "max end-to-end rate {:.0} votes/s; queue depth peak {:.0} messages",
        report.e2e.max_rate, t.peak_queue_depth
    );
    let half = &report.e2e.half_load;
    let _ = writeln!(
        out,
        "edges at half load (p99 ack {:.2} ms): vote p99 {} (head to answer; in group commit {}; past the window's deadline, per vote: {}), queue send p99 {}, group commit p99 {} (first vote to outcome)",
        half.latency.p99_ms,
        bucket_bound(half.edge_vote_p99_ms),
        bucket_bound(half.vote_commit_p99_ms),
        half.commit_phase_p99_ms.describe(),
        bucket_bound(half.queue_send_p99_ms),
        bucket_bound(half.group_commit_p99_ms),
    );
    let _ = writeln!(
        out,
        "targets (release, 2 cores): end to end {:.2}x of (a) (>= {E2E_RATIO_TARGET}x: {}); p99 at half load {:.2} ms (<= {P99_AT_HALF_LOAD_TARGET_MS} ms: {}); {:.4} messages/vote at full load, held (<= {MESSAGES_PER_VOTE_AT_FULL_LOAD_TARGET}: {}; rising step {:.4}); collectors kept up: {}",
        t.e2e_ratio,
        mark(t.e2e_met()),
        t.p99_at_half_load_ms,
        mark(t.p99_met()),
        t.messages_per_vote_at_full_load,
        mark(t.messages_met()),
        t.messages_per_vote_at_full_load_rising,
        mark(t.collectors_kept_up),
    );
}
