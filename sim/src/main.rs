//! `edgevote-sim`: runs the deterministic fault simulation over a range of seeds.
//!
//! ```text
//! edgevote-sim --seeds 500                  # what CI runs
//! edgevote-sim --seeds 100000 --first 500   # a long run
//! edgevote-sim --seed 1234 --trace          # replay one seed, printing every event
//! edgevote-sim --canary --seeds 50          # the naive design; must be caught
//! ```

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use edgevote_sim::{Design, SimConfig, Summary, run_seed};

/// Deterministic multi-region fault simulation of edgevote.
#[derive(Debug, Parser)]
#[command(name = "edgevote-sim", version)]
struct Args {
    /// How many seeds to run.
    #[arg(long, default_value_t = 500)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Run only this seed (replay), ignoring --seeds and --first.
    #[arg(long)]
    seed: Option<u64>,
    /// Print every event of the run (with --seed).
    #[arg(long)]
    trace: bool,
    /// Simulate the naive conditional-put design; succeeds only if the checker catches it.
    #[arg(long)]
    canary: bool,
    /// Voters per run.
    #[arg(long, default_value_t = SimConfig::default().voters)]
    voters: usize,
    /// Chaos steps per run.
    #[arg(long, default_value_t = SimConfig::default().chaos_steps)]
    steps: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = SimConfig {
        voters: args.voters,
        chaos_steps: args.steps,
        design: if args.canary {
            Design::NaiveConditionalPut
        } else {
            Design::Real
        },
        keep_trace: args.trace,
        ..SimConfig::default()
    };
    if args.voters == 0 || args.voters > 10_000 || args.steps > 1_000_000 {
        eprintln!("error: --voters must be 1..=10000 and --steps at most 1000000");
        return ExitCode::from(2);
    }
    let seeds: Vec<u64> = match args.seed {
        Some(seed) => vec![seed],
        None => (args.first..args.first.saturating_add(args.seeds)).collect(),
    };
    let started = Instant::now();
    let mut summary = Summary::default();
    let step = (seeds.len() / 10).max(1);
    for (i, seed) in seeds.iter().enumerate() {
        let report = run_seed(&config, *seed);
        for line in &report.trace {
            println!("{line}");
        }
        if !report.violations.is_empty() && !args.canary {
            eprintln!("seed {seed} FAILED (replay: edgevote-sim --seed {seed} --trace)");
            for v in &report.violations {
                eprintln!("  {:?}: {}", v.kind, v.detail);
            }
        }
        summary.add(&report);
        if (i + 1) % step == 0 || i + 1 == seeds.len() {
            eprintln!(
                "[sim] {}/{} seeds, {} with violations, {:.1}s",
                i + 1,
                seeds.len(),
                summary.failed.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    print!("{summary}");
    println!(
        "  wall time              {:>9.1}s",
        started.elapsed().as_secs_f64()
    );
    if args.canary {
        let caught = summary.failed.len();
        println!(
            "canary (naive conditional put): caught on {caught} of {} seeds",
            summary.seeds
        );
        return if caught > 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
