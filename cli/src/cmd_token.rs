//! `edgevote token`: vote tokens for voters.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;
use edgevote_shared::Role;
use edgevote_signer::issue::{TokenWindow, issue_token, issue_tokens};
use edgevote_signer::{KeyStore, SignerError};

use crate::common::{KeysDir, load_manifest, progress_bar, timearg};

/// Most tokens one `token issue` call writes (1e9: beyond any electorate, bounds the loop).
const MAX_TOKENS: u64 = 1_000_000_000;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue one token (printed) or --count N tokens (one per line into --out).
    Issue {
        #[command(flatten)]
        keys: KeysDir,
        /// The signed election manifest.
        #[arg(long, default_value = "election.jws")]
        election: PathBuf,
        /// Pseudonymous voter reference for a single token (random when omitted).
        #[arg(long, conflicts_with = "count")]
        voter: Option<String>,
        /// Issue this many tokens for random voters.
        #[arg(long, requires = "out", value_parser = clap::value_parser!(u64).range(1..=MAX_TOKENS))]
        count: Option<u64>,
        /// File for --count tokens, one per line.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Signing threads for --count (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
}

pub fn run(command: TokenCommand) -> anyhow::Result<ExitCode> {
    let TokenCommand::Issue {
        keys,
        election,
        voter,
        count,
        out,
        threads,
    } = command;
    let store = KeyStore::open(&keys.dir)?;
    let manifest = load_manifest(&election, &store.keyset()?)?;
    let authority = store.signing_identity(Role::Authority, None)?;
    let window = TokenWindow::for_election(&manifest, timearg::now_secs());
    let Some(count) = count else {
        println!(
            "{}",
            issue_token(&authority, &manifest, voter.as_deref(), window)?
        );
        return Ok(ExitCode::SUCCESS);
    };
    let out = out.context("--count needs --out")?;
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let file =
        std::fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut writer = BufWriter::new(file);
    let bar = progress_bar(count);
    let started = Instant::now();
    issue_tokens(&authority, &manifest, window, count, threads, |batch| {
        for token in &batch {
            writeln!(writer, "{token}").map_err(SignerError::io(&out))?;
        }
        bar.inc(batch.len() as u64);
        Ok(())
    })?;
    writer
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("writing {}", out.display()))?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "issued {count} tokens for election {} -> {} in {secs:.1}s ({:.0} tokens/s)",
        manifest.id,
        out.display(),
        count as f64 / secs.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}
