//! `edgevote up`: the whole system on one machine (`edgevote_stack::up`), with a live table of
//! every region until Ctrl-C, SIGTERM or `--stop-after`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use edgevote_shared::ElectionManifest;
use edgevote_stack::StackInfo;
use edgevote_stack::backend::{Backend, Consistency};
use edgevote_stack::info::{admin_token_path, auditor_token_path};
use edgevote_stack::up::{self, RegionStatus, UpConfig};

use crate::common::{PolicyArg, timearg};

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Data directory (keys, election, queues, stores); reused on restart.
    #[arg(long, default_value = "edgevote-data/up")]
    pub data_dir: PathBuf,
    /// Number of regions (1..=8).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub regions: u8,
    /// Replication delay between regions, milliseconds.
    #[arg(long, default_value_t = 200)]
    pub replication_delay_ms: u64,
    /// The edge component to run (built by scripts/build-wasm.sh spin).
    #[arg(
        long,
        default_value = "target/wasm32-wasip2/release/edgevote_edge_spin.wasm"
    )]
    pub component: PathBuf,
    /// Election id created on first start.
    #[arg(long, default_value = "demo-2026")]
    pub election: String,
    /// Counting policy of a newly created election.
    #[arg(long, value_enum, default_value = "first-vote-wins")]
    pub policy: PolicyArg,
    /// How long a newly created election stays open, e.g. 24h.
    #[arg(long, default_value = "24h")]
    pub open_for: humantime::Duration,
    /// Stop by itself after this long (for scripted runs); default: until Ctrl-C.
    #[arg(long)]
    pub stop_after: Option<humantime::Duration>,
    /// Seconds between live table refreshes.
    #[arg(long, default_value_t = 2)]
    pub refresh_secs: u64,
    /// Queues and stores: `embedded` (files in the data directory) or `aws` (SQS and DynamoDB;
    /// a local moto server is started unless `--aws-endpoint` names one).
    #[arg(long, value_enum, default_value = "embedded")]
    pub backend: BackendArg,
    /// An AWS-API endpoint (moto, LocalStack) to use with `--backend aws` instead of starting
    /// moto, e.g. http://127.0.0.1:5000.
    #[arg(long)]
    pub aws_endpoint: Option<String>,
    /// Multi-region consistency of the ballot tables with `--backend aws`: `eventual`
    /// (per-region tables replicated last-writer-wins) or `strong` (one voter's ballots are
    /// limited across every region at once).
    #[arg(long, value_enum, default_value = "eventual")]
    pub store_consistency: ConsistencyArg,
}

/// `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    /// Embedded queue and store per region.
    Embedded,
    /// SQS and DynamoDB.
    Aws,
}

/// `--store-consistency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConsistencyArg {
    /// Multi-region eventual consistency.
    Eventual,
    /// Multi-region strong consistency.
    Strong,
}

impl UpArgs {
    fn backend(&self) -> anyhow::Result<Backend> {
        let consistency = match self.store_consistency {
            ConsistencyArg::Eventual => Consistency::Eventual,
            ConsistencyArg::Strong => Consistency::Strong,
        };
        match self.backend {
            BackendArg::Embedded => {
                anyhow::ensure!(
                    self.aws_endpoint.is_none() && consistency == Consistency::Eventual,
                    "--aws-endpoint and --store-consistency need --backend aws"
                );
                Ok(Backend::Embedded)
            }
            BackendArg::Aws => {
                anyhow::ensure!(
                    consistency == Consistency::Eventual || self.regions == 3,
                    "--store-consistency strong needs exactly 3 regions (a DynamoDB \
                     multi-region strong consistency table spans 3 regions of one region set)"
                );
                Ok(Backend::Aws {
                    endpoint_url: self.aws_endpoint.clone(),
                    consistency,
                })
            }
        }
    }
}

pub fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(up(args))
}

async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    // Armed before anything listens.
    let interrupted = crate::signal::interrupt()?;
    let backend = args.backend()?;
    let config = UpConfig {
        data_dir: args.data_dir.clone(),
        regions: args.regions,
        replication_delay: Duration::from_millis(args.replication_delay_ms),
        component: args.component.clone(),
        election: args.election.clone(),
        policy: args.policy.into(),
        open_for: *args.open_for,
        backend,
    };
    let stack = up::start(&config).await?;
    let dir = &args.data_dir;
    print_banner(stack.info(), stack.manifest(), dir);
    let stop_after = args.stop_after.map(|d| *d);
    let shutdown = async move {
        match stop_after {
            Some(after) => {
                tokio::select! {
                    _ = interrupted => {}
                    _ = tokio::time::sleep(after) => {}
                }
            }
            None => interrupted.await,
        }
    };
    stack
        .watch(
            shutdown,
            Duration::from_secs(args.refresh_secs),
            print_table,
        )
        .await;
    println!("\nstopping: finishing in-flight votes and batches ...");
    let last = stack.stop().await;
    print_table(&last);
    println!(
        "stopped cleanly; state kept in {} (run edgevote up again to resume)",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn print_banner(stack: &StackInfo, manifest: &ElectionManifest, dir: &Path) {
    println!(
        "edgevote local stack: {} regions, data in {}",
        stack.regions.len(),
        dir.display()
    );
    if let Some(aws) = &stack.aws {
        println!(
            "queues and stores: SQS and DynamoDB at {} ({} consistency; its state lives while this runs)",
            aws.endpoint_url,
            match aws.consistency {
                Consistency::Eventual => "eventual",
                Consistency::Strong => "strong",
            }
        );
    }
    println!(
        "election {} ({}), open until {}, options: {}",
        manifest.id,
        manifest.policy.as_str(),
        timearg::show(manifest.closes_at),
        manifest
            .options
            .iter()
            .map(|o| o.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for region in &stack.regions {
        println!(
            "  {:<16} edge {}   collector {}",
            region.name, region.edge_url, region.collector_url
        );
    }
    println!(
        "cast a vote:   edgevote vote --up {} --choice yes",
        dir.display()
    );
    println!(
        "run a load:    edgevote load --up {} --voters 2000",
        dir.display()
    );
    println!(
        "results:       <collector>/v1/results/{0}   exact: <collector>/v1/results/{0}/final",
        manifest.id
    );
    println!(
        "check a receipt: <collector>/v1/elections/{}/votes/<vote id>?voter=<token sub>",
        manifest.id
    );
    println!(
        "voter listing (auditors): <collector>/v1/elections/{}/voters/<voter>/ballots with Authorization: Bearer $(cat {})",
        manifest.id,
        auditor_token_path(dir).display()
    );
    println!(
        "deploy a bundle: edgevote bundle deploy --host <edge> --admin-token-file {} --wasm W --manifest M",
        admin_token_path(dir).display()
    );
    println!("Ctrl-C stops everything cleanly.");
}

fn print_table(regions: &[RegionStatus]) {
    println!(
        "{:<16} {:>9} {:>8} {:>9} {:>6} {:>8}  live tally (this region's collector)",
        "region", "votes in", "queued", "stored", "dups", "lag ms"
    );
    for r in regions {
        let tally = r
            .live_tally
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            "{:<16} {:>9} {:>8} {:>9} {:>6} {:>8}  {tally}",
            r.name, r.votes_in, r.queued, r.stored, r.duplicates, r.lag_ms,
        );
    }
}
