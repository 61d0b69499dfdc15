//! The local edgevote stack, as a library: what `edgevote up` runs and what `edgevote vote` and
//! `edgevote load` do against it. The CLI only parses arguments, prints and picks exit codes.
//!
//! - [`up`]: per region an embedded queue and store, an edge host running the signed
//!   component, a collector, and replication links between the stores; started from a data
//!   directory and stopped cleanly;
//! - [`info`]: `stack.json` ([`StackInfo`]), which tells clients where everything listens, and
//!   the stack's token files;
//! - [`vote`]: one voter's ballot through an edge, and the check that its receipt names it;
//! - [`load`]: the load generator (many voters, double votes, cross-region races, retries);
//! - [`reconcile`]: every receipt against every region, and the regions' tallies against the
//!   counting rule over the receipts;
//! - [`client`]: one keep-alive HTTP/1.1 connection to an edge or a collector (also what
//!   `edgevote bench` loads and scrapes the stack with).
//!
//! It wires only the public APIs of the library crates (`edgevote-edge-host`,
//! `edgevote-collector`, `edgevote-queue`, `edgevote-store`, `edgevote-signer`).

pub mod backend;
pub mod info;
pub mod load;
pub mod pending;
pub mod reconcile;
pub mod up;
pub mod vote;

pub mod client;

use std::path::PathBuf;

pub use info::{RegionInfo, StackInfo, read_stack};

/// A boxed error from a crate the stack wires (edge host, collector, queue, store, HTTP).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a stack operation failed. The variant names the stage; the cause, if any, is its
/// [`source`](std::error::Error::source) (print the chain, e.g. `{:#}` with anyhow).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    /// No `stack.json` in the data directory: no stack was ever started there.
    #[error("no stack at {} (start one with: edgevote up)", path.display())]
    NoStack {
        /// The `stack.json` path looked for.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `stack.json` does not describe a stack.
    #[error("reading {}", path.display())]
    StackFile {
        /// The `stack.json` path.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The stack has no auditor token file.
    #[error(
        "no auditor token at {} (restart the stack with this edgevote: edgevote up writes it)",
        path.display()
    )]
    NoAuditorToken {
        /// The token file looked for.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The edge component file could not be read.
    #[error(
        "no edge component at {} (build it with: scripts/build-wasm.sh spin)",
        path.display()
    )]
    NoComponent {
        /// The component path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file of the data directory (or a receipts folder) could not be read or written.
    #[error("{action} {}", path.display())]
    File {
        /// What was being done ("writing", "creating", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The key store failed (keys, key set, token issuing, randomness).
    #[error(transparent)]
    Keys(#[from] edgevote_signer::SignerError),
    /// A document was refused: one we would sign (election, bundle), or one we read (the
    /// election manifest, a receipt).
    #[error("{what} ({})", source.code())]
    Refused {
        /// What was refused, e.g. "election refused" or "receipt does not verify".
        what: String,
        /// Why.
        source: edgevote_shared::WireError,
    },
    /// A region's queue, store, edge host, listeners or collector could not start.
    #[error("starting region {region}")]
    StartRegion {
        /// The region.
        region: String,
        /// The failing part's error.
        source: BoxError,
    },
    /// The AWS services of the stack could not be started or created.
    #[error("starting the AWS services")]
    Backend(#[source] BoxError),
    /// A region's queue, spill log or store could not be read.
    #[error("reading region {region}")]
    ReadRegion {
        /// The region.
        region: String,
        /// The failing part's error.
        source: BoxError,
    },
    /// The stack has no region of that name (or no region at all).
    #[error("{0}")]
    NoRegion(String),
    /// An HTTP exchange with an edge or a collector failed.
    #[error("{target}")]
    Http {
        /// The edge or collector URL, or the request.
        target: String,
        /// The transport error.
        source: BoxError,
    },
    /// An edge or collector answered something that is not what the protocol says.
    #[error("{0}")]
    Protocol(String),
}

impl StackError {
    fn file(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StackError::File {
            action,
            path,
            source,
        }
    }
}

/// The counted stages of a load, as reported to a [`Progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// Issuing the voters' tokens (one step per voter).
    IssueTokens,
    /// Sending the votes (one step per vote sent, answered or given up).
    SendVotes,
}

/// Where long stages report their progress (the CLI draws a progress bar).
pub trait Progress: Send + Sync {
    /// `stage` starts, with `total` steps.
    fn start(&self, stage: Stage, total: u64);
    /// `steps` more steps of the current stage are done.
    fn advance(&self, steps: u64);
    /// The current stage is over.
    fn finish(&self);
}

/// A [`Progress`] that reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: Stage, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

use edgevote_signer::clock::now_secs;
