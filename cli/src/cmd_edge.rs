//! `edgevote edge run`: the wasmtime edge host.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum EdgeCommand {
    /// Serve the signed edge component until Ctrl-C (in-flight votes finish first).
    Run {
        /// Edge host configuration (TOML).
        #[arg(long, default_value = "edge.toml")]
        config: PathBuf,
    },
}

pub fn run(command: EdgeCommand) -> anyhow::Result<ExitCode> {
    let EdgeCommand::Run { config } = command;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_host(config))
}

async fn run_host(path: PathBuf) -> anyhow::Result<ExitCode> {
    let config = edgevote_edge_host::load_config(&path)?;
    let (host, background) = edgevote_edge_host::start(&config).await?;
    let interrupted = crate::signal::interrupt()?;
    let listener = tokio::net::TcpListener::bind(&config.listen_addr)
        .await
        .with_context(|| format!("binding {}", config.listen_addr))?;
    println!(
        "edge {} region={} bundle sha256={} listening on http://{}",
        config.edge_id,
        config.region,
        host.bundles.active().manifest.wasm_sha256.to_hex(),
        listener.local_addr()?
    );
    edgevote_edge_host::server::serve(listener, Arc::clone(&host), interrupted).await?;
    background.stop().await;
    println!("edge stopped cleanly");
    Ok(ExitCode::SUCCESS)
}
