//! edgevote's measurements as a library, so that `edgevote bench` and the cargo benches
//! (`cargo bench -p edgevote-edge-host`) run the same functions over the production code paths
//! and defaults:
//!
//! - [`crypto`]: the crypto-only limit of this machine, the Ed25519 work a vote cannot avoid,
//!   on all cores;
//! - [`handler`]: the edge's vote handler natively and through the real component in the host,
//!   under each sealing, against a queue that accepts at once;
//! - [`e2e`]: an open-loop load at rising rates through a running stack (HTTP, edge, queue,
//!   collector, store), with coordinated-omission-correct ack latency and the stack's own
//!   counters ([`scrape`]);
//! - [`connections`]: an edge host process holding many keep-alive connections at once, and its
//!   peak memory against a budget;
//! - [`run`]: all of it in one run, into one [`report::Report`] with every figure's ratio to the
//!   crypto-only limit.
//!
//! Figures only: nothing here fails on speed.

pub mod connections;
pub mod cpu;
pub mod crypto;
pub mod e2e;
pub mod fixture;
pub mod handler;
pub mod report;
pub mod run;
pub mod scrape;
pub mod stalls;

use std::path::PathBuf;

/// A boxed error from a crate the bench drives (edge host, stack, HTTP).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a measurement could not be made. The variant names the failing stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
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
    /// A scratch file or directory of the fixture could not be written.
    #[error("writing the bench fixture {}", path.display())]
    Fixture {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The fixture's keys, tokens or manifests could not be made.
    #[error("signing the bench fixture")]
    Keys(#[from] edgevote_signer::SignerError),
    /// A document the fixture signs was refused.
    #[error("signing the bench fixture: {what} ({})", source.code())]
    Refused {
        /// What was being signed.
        what: &'static str,
        /// Why.
        source: edgevote_shared::WireError,
    },
    /// The edge host running the component did not start.
    #[error("starting the edge host ({sealing} sealing)")]
    StartHost {
        /// The sealing mode.
        sealing: &'static str,
        /// The host's error.
        source: BoxError,
    },
    /// A request through the handler or the component was not answered as a vote must be.
    #[error("the {path} answered {status} to a valid vote: {detail}")]
    Unexpected {
        /// Which path (native handler, host sealing, component sealing).
        path: &'static str,
        /// The status.
        status: u16,
        /// The body or the refusal.
        detail: String,
    },
    /// The stack could not be started, read or stopped.
    #[error(transparent)]
    Stack(#[from] edgevote_stack::StackError),
    /// A region's `/metrics` could not be read.
    #[error("reading the metrics of {url}")]
    Scrape {
        /// The edge or collector URL.
        url: String,
        /// The transport error, or what the answer lacked.
        source: BoxError,
    },
    /// This process cannot hold the connections asked for.
    #[error("open files: {0}")]
    OpenFiles(String),
    /// The many-connections run failed: the host did not start or could not be read.
    #[error("the many-connections run: {0}")]
    Connections(String),
    /// The async runtime or a measuring thread could not start.
    #[error("starting the bench's runtime")]
    Runtime(#[source] std::io::Error),
}
