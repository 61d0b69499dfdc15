//! The regional collector: drains the region's queue, verifies each envelope's edge signature,
//! writes ballots idempotently to the store, and deletes messages only after the store
//! confirmed. Also serves metrics, health and results over HTTP.
//!
//! - [`config`]: the TOML configuration;
//! - [`check`]: message → ballots, or a dead-letter reason;
//! - [`service`]: the receive loops, shutdown and fault injection;
//! - [`gather`]: the spacing of receives that gathers light traffic into fuller batches;
//! - [`http`]: `/metrics`, `/healthz`, `/v1/results/...`, the per-receipt lookup and the
//!   auditor's voter listing;
//! - [`live_log`]: the region's live receipts log (C2SP tlog-tiles) and its routes;
//! - [`metrics`]: the Prometheus metrics.

pub mod check;
pub mod config;
pub mod gather;
pub mod http;
pub mod live_log;
pub mod metrics;
pub mod service;

use std::path::Path;
use std::sync::Arc;

use edgevote_queue::Queue;
use edgevote_shared::{ElectionManifest, KeySet, verify};
use edgevote_store::Store;

pub use check::Checker;
pub use config::CollectorConfig;
pub use service::{Collector, CollectorParts};

/// Why a collector could not start. The variant names the stage.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration file is unreadable or invalid.
    #[error("collector config {path}: {detail}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The key set or a manifest could not be loaded or verified.
    #[error("collector {what} {path}: {detail}")]
    Input {
        /// "key set" or "election manifest".
        what: &'static str,
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// A setting is out of its bounds.
    #[error("collector config: {0}")]
    Setting(#[from] config::InvalidSetting),
    /// The queue backend could not be opened.
    #[error(transparent)]
    Queue(#[from] edgevote_queue::QueueError),
    /// The store backend could not be opened.
    #[error(transparent)]
    Store(#[from] edgevote_store::StoreError),
    /// The live log could not be opened.
    #[error(transparent)]
    LiveLog(#[from] live_log::LiveLogError),
}

/// Reads and parses a collector configuration file.
pub fn load_config(path: &Path) -> Result<CollectorConfig, StartError> {
    let bad = |detail: String| StartError::Config {
        path: path.display().to_string(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    CollectorConfig::parse(&text).map_err(bad)
}

fn read_input(what: &'static str, path: &Path) -> Result<String, StartError> {
    std::fs::read_to_string(path).map_err(|e| StartError::Input {
        what,
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}

/// Loads the key set and verifies the election manifests against it.
pub fn load_checker(config: &CollectorConfig) -> Result<Checker, StartError> {
    let keyset_text = read_input("key set", &config.keyset_path)?;
    let keys = KeySet::parse(keyset_text.as_bytes()).map_err(|e| StartError::Input {
        what: "key set",
        path: config.keyset_path.display().to_string(),
        detail: format!("{} ({})", e, e.code()),
    })?;
    let mut elections = Vec::new();
    for path in &config.election_paths {
        let text = read_input("election manifest", path)?;
        let manifest =
            verify::<ElectionManifest>(text.trim(), &keys).map_err(|e| StartError::Input {
                what: "election manifest",
                path: path.display().to_string(),
                detail: format!("{} ({})", e, e.code()),
            })?;
        elections.push(manifest.doc);
    }
    // It follows the key set file: rotated-in keys verify as soon as they are published.
    Ok(
        Checker::new(keys, elections, config.processing.verify_tokens)
            .following(&config.keyset_path),
    )
}

/// Opens the configured queue.
pub async fn open_queue(config: &config::QueueBackendConfig) -> Result<Arc<dyn Queue>, StartError> {
    Ok(edgevote_aws::backends::open_queue(config).await?)
}

/// Opens the configured store.
pub async fn open_store(config: &config::StoreBackendConfig) -> Result<Arc<dyn Store>, StartError> {
    Ok(edgevote_aws::backends::open_store(config).await?)
}

/// Builds a collector from its configuration.
pub async fn build(config: &CollectorConfig) -> Result<Arc<Collector>, StartError> {
    config.processing.validate()?;
    let checker = load_checker(config)?;
    let collector = Collector::new(service::CollectorParts {
        region: config.region.clone(),
        queue: open_queue(&config.queue).await?,
        store: open_store(&config.store).await?,
        checker,
        processing: config.processing.clone(),
    })?;
    if let Some(live) = &config.live_log {
        let log = live_log::LiveLog::open(live.clone(), &config.region)?;
        log.open_existing()?;
        let attached = collector.attach_live_log(Arc::new(log));
        debug_assert!(attached.is_ok(), "a new collector has no live log yet");
    }
    Ok(collector)
}
