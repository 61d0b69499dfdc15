//! `edgevote`: one command line for every user of the system.
//!
//! Each subcommand module parses its arguments, calls the library crates (`signer`, `stack`,
//! `audit`, `cost`, `bench`, `edge/host`, `collector`), prints, and chooses the exit code: 0 ok, 1
//! INVALID (with a code), 2 usage or I/O. Helpers several commands share are in `common`.

mod admin_client;
mod cmd_audit;
mod cmd_bench;
mod cmd_bundle;
mod cmd_collector;
mod cmd_cost;
mod cmd_edge;
mod cmd_election;
mod cmd_keys;
mod cmd_load;
mod cmd_receipt;
mod cmd_token;
mod cmd_up;
mod cmd_verify;
mod cmd_witness;
mod common;
mod signal;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Vote ingestion at the edge: exactly one counted vote per voter, signed receipts anyone can
/// verify.
#[derive(Debug, Parser)]
#[command(name = "edgevote", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate, show and rotate signing keys (authority, edge, ops, log).
    #[command(subcommand)]
    Keys(cmd_keys::KeysCommand),
    /// Create and inspect signed election manifests.
    #[command(subcommand)]
    Election(cmd_election::ElectionCommand),
    /// Issue vote tokens to voters.
    #[command(subcommand)]
    Token(cmd_token::TokenCommand),
    /// Issue a receipt offline, exactly as an edge would (drills and tests).
    #[command(subcommand)]
    Receipt(cmd_receipt::ReceiptCommand),
    /// Verify receipts and tokens offline against a published key set.
    #[command(subcommand)]
    Verify(cmd_verify::VerifyCommand),
    /// Run the whole system on this machine: N regions of edge + queue + collector + store.
    Up(cmd_up::UpArgs),
    /// Cast one vote through a running local stack and print the verified receipt.
    Vote(cmd_load::VoteArgs),
    /// Vote as many voters through a running local stack, then reconcile receipts and tallies.
    Load(cmd_load::LoadArgs),
    /// Publish an election's audit log (Merkle logs, signed checkpoints and tally) and verify it.
    #[command(subcommand)]
    Audit(cmd_audit::AuditCommand),
    /// Run the wasmtime edge host serving the signed edge component.
    #[command(subcommand)]
    Edge(cmd_edge::EdgeCommand),
    /// Sign and verify edge bundles (component + signed manifest).
    #[command(subcommand)]
    Bundle(cmd_bundle::BundleCommand),
    /// Run a regional collector, or recompute an election's final tally from its store.
    #[command(subcommand)]
    Collector(cmd_collector::CollectorCommand),
    /// Measure votes/s, CPU per vote and ack latency end to end against this machine's
    /// crypto-only limit.
    Bench(cmd_bench::BenchArgs),
    /// Estimate an election's cost per region and per million votes: group commit vs naive.
    Cost(cmd_cost::CostArgs),
    /// Run a C2SP witness that cosigns log checkpoints, or generate its key.
    #[command(subcommand)]
    Witness(cmd_witness::WitnessCommand),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Keys(c) => cmd_keys::run(c),
        Command::Election(c) => cmd_election::run(c),
        Command::Token(c) => cmd_token::run(c),
        Command::Receipt(c) => cmd_receipt::run(c),
        Command::Verify(c) => cmd_verify::run(c),
        Command::Collector(c) => cmd_collector::run(c),
        Command::Bundle(c) => cmd_bundle::run(c),
        Command::Edge(c) => cmd_edge::run(c),
        Command::Up(a) => cmd_up::run(a),
        Command::Audit(c) => cmd_audit::run(c),
        Command::Vote(a) => cmd_load::vote(a),
        Command::Load(a) => cmd_load::load(a),
        Command::Cost(a) => cmd_cost::run(a),
        Command::Bench(a) => cmd_bench::run(a),
        Command::Witness(c) => cmd_witness::run(c),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
