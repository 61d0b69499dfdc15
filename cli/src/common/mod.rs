//! What several commands share, so that no `cmd_*` module imports another: the key store
//! argument, the policy argument, reading signed election manifests, time arguments
//! ([`timearg`]), documents given on the command line ([`input`]) and the progress bar.

pub mod input;
pub mod timearg;

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use edgevote_shared::{ElectionManifest, KeySet, Policy};
use indicatif::{ProgressBar, ProgressStyle};

/// Where the key store lives.
#[derive(Debug, Args)]
pub struct KeysDir {
    /// Key store directory (keyset.json + private/).
    #[arg(long = "keys", env = "EDGEVOTE_KEYS", default_value = "edgevote-keys")]
    pub dir: PathBuf,
}

/// The counting policy of an election, as a command-line value.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PolicyArg {
    /// The voter's earliest ballot counts.
    FirstVoteWins,
    /// The voter's latest ballot counts (re-voting allowed).
    LastVoteWins,
}

impl From<PolicyArg> for Policy {
    fn from(policy: PolicyArg) -> Policy {
        match policy {
            PolicyArg::FirstVoteWins => Policy::FirstVoteWins,
            PolicyArg::LastVoteWins => Policy::LastVoteWins,
        }
    }
}

/// Reads and verifies a signed manifest file.
pub fn load_manifest(path: &Path, keys: &KeySet) -> anyhow::Result<ElectionManifest> {
    Ok(edgevote_stack::info::load_manifest(path, keys)?)
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        )
        .expect("static template is valid"),
    );
    bar
}

/// Binds a TCP listener on `addr` (`host:port`), naming the address on failure.
pub async fn bind(addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    use anyhow::Context;
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))
}
