//! `edgevote bench`: what users feel, measured against this machine's limit in one run
//! (`edgevote_bench::run`): the crypto-only limit, the edge handler natively and in the
//! component under each sealing, votes/s and ack latency end to end under an open-loop load at
//! rising rates, and one edge host's memory with many connections open. Prints the table (or
//! `--json`); figures only, it never fails on speed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use edgevote_bench::e2e::OpenLoopConfig;
use edgevote_bench::run::{BenchConfig, Progress};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Load a running `edgevote up` (its data directory) instead of starting a stack here.
    #[arg(long = "up")]
    pub up: Option<PathBuf>,
    /// The edge component (built by scripts/build-wasm.sh spin).
    #[arg(
        long,
        default_value = "target/wasm32-wasip2/release/edgevote_edge_spin.wasm"
    )]
    pub component: PathBuf,
    /// The component's wide-arithmetic build (scripts/build-wasm.sh wide), for our host only:
    /// measured under component sealing beside the portable build. Left out with a note when
    /// the file is missing and this flag was not given.
    #[arg(long)]
    pub wide_component: Option<PathBuf>,
    /// Regions of the stack started here (1..=8).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub regions: u8,
    /// Tiny sizes, to check that the command works (the figures mean nothing).
    #[arg(long)]
    pub quick: bool,
    /// Votes per second of the first end-to-end step.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub start_rate: Option<u32>,
    /// Percent by which each step's rate rises over the previous one's.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub growth_pct: u32,
    /// Most rising steps (the load stops earlier once the stack saturates).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub max_steps: Option<u32>,
    /// Seconds each rising end-to-end step sends for (the step held at full load and the one
    /// at half of the maximum rate send three times as long).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub step_secs: Option<u64>,
    /// Votes per round of the handler measurements.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub handler_votes: Option<u32>,
    /// Connections held open at once to one edge host process (0: skip that stage).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub connections: Option<u32>,
    /// Print the report as JSON (for scripts).
    #[arg(long)]
    pub json: bool,
}

/// Full-size or `--quick` defaults of the flags left out.
struct Sizes {
    start_rate: u32,
    max_steps: u32,
    step_ms: u64,
    handler_votes: u32,
    handler_rounds: usize,
    crypto_votes: usize,
    connections: u32,
}

impl Sizes {
    fn of(quick: bool) -> Sizes {
        if quick {
            Sizes {
                start_rate: 100,
                max_steps: 2,
                step_ms: 300,
                handler_votes: 64,
                handler_rounds: 1,
                crypto_votes: 512,
                connections: 200,
            }
        } else {
            Sizes {
                start_rate: 500,
                max_steps: 12,
                step_ms: 5_000,
                handler_votes: 4_000,
                handler_rounds: 5,
                crypto_votes: 100_000,
                connections: 10_000,
            }
        }
    }
}

fn config(args: &BenchArgs) -> anyhow::Result<BenchConfig> {
    let sizes = Sizes::of(args.quick);
    Ok(BenchConfig {
        component: args.component.clone(),
        wide_component: wide_component(args)?,
        up: args.up.clone(),
        regions: args.regions,
        crypto_votes: sizes.crypto_votes,
        handler_votes: args.handler_votes.unwrap_or(sizes.handler_votes) as usize,
        handler_rounds: sizes.handler_rounds,
        load: OpenLoopConfig {
            start_rate: args.start_rate.unwrap_or(sizes.start_rate),
            growth_pct: args.growth_pct,
            max_steps: args.max_steps.unwrap_or(sizes.max_steps) as usize,
            step_ms: args.step_secs.map_or(sizes.step_ms, |s| s * 1000),
            connections_per_region: 256,
            max_in_flight: 4_096,
            request_timeout_ms: 10_000,
            drain_timeout_ms: 60_000,
            saturation_p99_ms: 1_000.0,
        },
        connections: args.connections.unwrap_or(sizes.connections) as usize,
        edgevote: std::env::current_exe().context("finding the edgevote binary")?,
    })
}

/// The wide-arithmetic build to measure: the one named (which must exist), else the default
/// path when it was built, else none (with a note on stderr).
fn wide_component(args: &BenchArgs) -> anyhow::Result<Option<PathBuf>> {
    let (_, default) = crate::cmd_bundle::Variant::Wide.build();
    match &args.wide_component {
        Some(path) if path.is_file() => Ok(Some(path.clone())),
        Some(path) => anyhow::bail!(
            "no wide-arithmetic component at {} (build it with: scripts/build-wasm.sh wide)",
            path.display()
        ),
        None if std::path::Path::new(default).is_file() => Ok(Some(default.into())),
        None => {
            eprintln!(
                "bench: no {default}: the wide-arithmetic build is left out (scripts/build-wasm.sh wide builds it)"
            );
            Ok(None)
        }
    }
}

/// Progress lines on stderr, so that stdout stays the report.
struct Stderr;

impl Progress for Stderr {
    fn note(&self, line: &str) {
        eprintln!("{line}");
    }
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.up {
        // Fail before minutes of measuring when the stack is not there.
        edgevote_stack::read_stack(dir)?;
    }
    let config = config(&args)?;
    let report = edgevote_bench::run::run(&config, &Stderr)?;
    if args.json {
        let json = serde_json::to_string_pretty(&report).context("encoding the report")?;
        println!("{json}");
    } else {
        print!("{}", edgevote_bench::report::render_text(&report));
    }
    Ok(ExitCode::SUCCESS)
}
