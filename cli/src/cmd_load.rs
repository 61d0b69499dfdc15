//! `edgevote vote` and `edgevote load`: voters against a running local stack (`edgevote up`),
//! through `edgevote_stack::vote`, `edgevote_stack::load` and `edgevote_stack::reconcile`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Args;
use edgevote_stack::info::{StackInputs, read_auditor_token};
use edgevote_stack::load::{self, LoadConfig, LoadOutcome};
use edgevote_stack::reconcile::{self, ReconcileOptions};
use edgevote_stack::vote::{self, VoteOutcome};
use edgevote_stack::{Progress, Stage, read_stack};
use indicatif::ProgressBar;

use crate::common::progress_bar;

#[derive(Debug, Args)]
pub struct VoteArgs {
    /// Data directory of a running `edgevote up`.
    #[arg(long = "up", default_value = "edgevote-data/up")]
    pub data_dir: PathBuf,
    /// Region to vote in (default: the first).
    #[arg(long)]
    pub region: Option<String>,
    /// The voter's token; by default one is issued from the stack's authority key.
    #[arg(long)]
    pub token: Option<String>,
    /// The chosen option.
    #[arg(long)]
    pub choice: String,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Data directory of a running `edgevote up`.
    #[arg(long = "up", default_value = "edgevote-data/up")]
    pub data_dir: PathBuf,
    /// Distinct voters.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub voters: u64,
    /// Target votes per second over all regions.
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// Percent of voters who vote a second time, in the same region, later.
    #[arg(long, default_value_t = 5)]
    pub double_vote_pct: u8,
    /// Percent of voters who vote in two regions at the same moment.
    #[arg(long, default_value_t = 3)]
    pub cross_region_pct: u8,
    /// Percent of votes sent twice (a client retry of the same ballot).
    #[arg(long, default_value_t = 3)]
    pub retry_pct: u8,
    /// Attempts per vote when an edge answers 503 or cannot be reached, with exponential
    /// backoff from 100 ms capped at 1.6 s (a retrying client).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub max_attempts: u32,
    /// Where to keep the receipts (one file each).
    #[arg(long)]
    pub receipts_dir: Option<PathBuf>,
}

pub fn vote(args: VoteArgs) -> anyhow::Result<ExitCode> {
    let stack = read_stack(&args.data_dir)?;
    let inputs = StackInputs::open(&stack)?;
    let region = stack.region(args.region.as_deref())?;
    let token = match args.token {
        Some(token) => token,
        None => vote::issue_voter_token(&inputs.store, &inputs.manifest)?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(vote::cast(
        region,
        &inputs.manifest,
        &inputs.keys,
        &token,
        &args.choice,
    ))?;
    let status = match outcome {
        VoteOutcome::Refused { status, .. } => status,
        _ => 202,
    };
    println!("{} answered HTTP {status}", region.edge_url);
    match outcome {
        VoteOutcome::Refused { body, .. } => {
            println!("{body}");
            Ok(ExitCode::from(1))
        }
        VoteOutcome::NotTheBallotSent { detail } => {
            println!("INVALID: the receipt does not name the ballot sent: {detail}");
            Ok(ExitCode::from(1))
        }
        VoteOutcome::Accepted { receipt, compact } => {
            println!(
                "receipt (verified, signed by edge {} in {}):\n{compact}",
                receipt.edge, receipt.region
            );
            println!(
                "vote id {} — check it later with the audit log",
                receipt.vote_id
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn load(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_load(args))
}

async fn run_load(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let stack = read_stack(&args.data_dir)?;
    let inputs = StackInputs::open(&stack)?;
    let manifest = &inputs.manifest;
    // Read before the load, so a stack without one fails fast.
    let auditor_token = read_auditor_token(&args.data_dir)?;
    let config = LoadConfig {
        voters: args.voters,
        rate: args.rate,
        concurrency: args.concurrency,
        double_vote_pct: args.double_vote_pct,
        cross_region_pct: args.cross_region_pct,
        retry_pct: args.retry_pct,
        max_attempts: args.max_attempts,
    };
    let bars = Arc::new(Bars::default());
    println!("issuing {} tokens for {} ...", args.voters, manifest.id);
    let plan = load::plan(&config, &stack, manifest, &inputs.store, bars.as_ref())?;
    println!(
        "sending {} votes from {} voters to {} regions at up to {}/s",
        plan.votes(),
        args.voters,
        stack.regions.len(),
        args.rate
    );
    let outcome = load::execute(&config, &stack, &manifest.id, plan, bars).await;
    report(&outcome, args.max_attempts);
    let receipts_dir = args
        .receipts_dir
        .clone()
        .unwrap_or_else(|| args.data_dir.join("receipts"));
    load::save_receipts(&receipts_dir, &outcome.kept)?;
    println!(
        "kept {} receipts in {}",
        outcome.kept.len(),
        receipts_dir.display()
    );
    // The key set as published now: a key rotated in during the load signed some receipts.
    let keys = inputs.store.keyset().unwrap_or(inputs.keys);
    let expected = reconcile::expected(manifest, &keys, &outcome.kept);
    println!(
        "reconciling: {} distinct receipts, {} voters, {} invalid receipts; waiting for every region to settle ...",
        expected.ballots, expected.voters, expected.invalid
    );
    let result = reconcile::reconcile(
        &stack,
        &manifest.id,
        &outcome.kept,
        &expected,
        &auditor_token,
        ReconcileOptions::default(),
        |region| {
            println!(
                "  {:<16} receipts stored {}/{}  counted voters {}/{}  tally {:?}  {}",
                region.region,
                region.stored,
                expected.ballots,
                region.counted,
                expected.voters,
                region.tally,
                if region.ok { "OK" } else { "MISMATCH" }
            );
            if let Some((voter, vote_id)) = region.not_stored.first() {
                println!(
                    "    not stored: {} receipts (first: voter {voter}, vote id {vote_id})",
                    region.not_stored.len()
                );
            }
        },
    )
    .await?;
    println!(
        "expected tally by the {} rule: {:?}",
        manifest.policy.as_str(),
        expected.counts
    );
    println!(
        "reconciliation: {}",
        if result.ok {
            "receipts issued = ballots stored, counted voters = distinct voters, same tally in every region"
        } else {
            "FAILED"
        }
    );
    Ok(
        if result.ok && outcome.failed == 0 && outcome.bad_receipts.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

fn report(outcome: &LoadOutcome, max_attempts: u32) {
    let elapsed = outcome.elapsed.as_secs_f64();
    let acknowledged = outcome.latencies_us.len();
    println!(
        "done in {elapsed:.1}s: {acknowledged} acknowledged ({:.0} votes/s), ack latency p50 {:.1} ms, p99 {:.1} ms",
        acknowledged as f64 / elapsed.max(1e-9),
        outcome.latency_ms(0.5),
        outcome.latency_ms(0.99)
    );
    if !outcome.refused.is_empty() {
        println!("refused: {:?}", outcome.refused);
    }
    if outcome.failed > 0 {
        println!("FAILED after {max_attempts} attempts: {}", outcome.failed);
    }
    if let Some(first) = outcome.bad_receipts.first() {
        println!(
            "MISMATCH: {} receipts do not name the ballot that was sent (first: {first})",
            outcome.bad_receipts.len()
        );
    }
}

/// The library's progress, drawn as one progress bar per stage.
#[derive(Default)]
struct Bars(Mutex<Option<ProgressBar>>);

impl Bars {
    fn bar(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Progress for Bars {
    fn start(&self, _stage: Stage, total: u64) {
        *self.bar() = Some(progress_bar(total));
    }

    fn advance(&self, steps: u64) {
        if let Some(bar) = self.bar().as_ref() {
            bar.inc(steps);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar().take() {
            bar.finish_and_clear();
        }
    }
}
