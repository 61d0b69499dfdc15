//! `edgevote collector`: run a regional collector, or compute an election's final tally from
//! its store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum CollectorCommand {
    /// Run the collector until Ctrl-C (finishes batches in progress, loses nothing).
    Run {
        /// Collector configuration (TOML).
        #[arg(long, default_value = "collector.toml")]
        config: PathBuf,
    },
    /// Print an election's exact final tally, recomputed from the stored ballots.
    Tally {
        /// Collector configuration (TOML) naming the store and elections.
        #[arg(long, default_value = "collector.toml")]
        config: PathBuf,
        /// The election.
        #[arg(long)]
        election: String,
    },
}

pub fn run(command: CollectorCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match command {
            CollectorCommand::Run { config } => run_collector(config).await,
            CollectorCommand::Tally { config, election } => tally(config, election).await,
        }
    })
}

async fn run_collector(path: PathBuf) -> anyhow::Result<ExitCode> {
    let config = edgevote_collector::load_config(&path)?;
    let collector = edgevote_collector::build(&config).await?;
    let http_options = edgevote_collector::http::HttpOptions::from_config(&config.http)
        .map_err(|e| anyhow::anyhow!("collector config {}: {e}", path.display()))?;
    let interrupted = crate::signal::interrupt()?;
    let listener = tokio::net::TcpListener::bind(&config.listen_addr)
        .await
        .with_context(|| format!("binding {}", config.listen_addr))?;
    println!(
        "collector region={} listening on http://{} (metrics, healthz, results)",
        config.region,
        listener.local_addr()?
    );
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(edgevote_collector::http::serve(
        listener,
        edgevote_collector::http::router_with(std::sync::Arc::clone(&collector), http_options),
        async move {
            let _ = http_stopped.await;
        },
    ));
    collector.run(interrupted).await;
    let _ = stop_http.send(());
    server.await?.context("HTTP server")?;
    println!("collector stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

async fn tally(path: PathBuf, election: String) -> anyhow::Result<ExitCode> {
    let config = edgevote_collector::load_config(&path)?;
    let checker = edgevote_collector::load_checker(&config)?;
    let rules = checker
        .rules(&election)
        .with_context(|| format!("election {election:?} is not in {}", path.display()))?;
    let store = edgevote_collector::open_store(&config.store).await?;
    let tally = edgevote_store::final_tally(store.as_ref(), &rules).await?;
    println!("{}", serde_json::to_string_pretty(&tally)?);
    Ok(ExitCode::SUCCESS)
}
