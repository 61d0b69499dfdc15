//! The collector's configuration file (TOML). Unknown keys are refused.
//!
//! ```toml
//! region = "eu-west-1"
//! keyset_path = "keys/keyset.json"
//! election_paths = ["election.jws"]
//! listen_addr = "127.0.0.1:9100"
//!
//! [queue]
//! backend = "embedded"
//! path = "data/eu-west-1/queue.redb"
//!
//! [store]
//! backend = "embedded"
//! path = "data/eu-west-1/store.redb"
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The whole collector configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// The region this collector serves (labels metrics and the live tally).
    pub region: String,
    /// Published key set with the edge keys (and authority keys if `verify_tokens`).
    pub keyset_path: PathBuf,
    /// Signed election manifests of the elections to collect.
    pub election_paths: Vec<PathBuf>,
    /// Address of the HTTP server (`/metrics`, `/healthz`, `/v1/results/...`).
    #[serde(default = "default_listen_addr")]
    pub listen_addr: String,
    /// Processing settings.
    #[serde(default)]
    pub processing: ProcessingConfig,
    /// The queue to drain.
    pub queue: QueueBackendConfig,
    /// The store to write.
    pub store: StoreBackendConfig,
}

fn default_listen_addr() -> String {
    "127.0.0.1:9100".into()
}

/// How the collector drains its queue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessingConfig {
    /// Concurrent receive loops.
    pub receivers: usize,
    /// Messages per receive (1..=10).
    pub receive_batch_messages: usize,
    /// Long-poll wait per receive, seconds (0..=20).
    pub wait_time_secs: u64,
    /// Visibility timeout of received messages, seconds; extended while a batch is slow.
    pub visibility_timeout_secs: u64,
    /// Most messages being processed at once across all receivers.
    pub max_in_flight_messages: usize,
    /// Re-verify every voter token's signature (the edge signature already covers them).
    pub verify_tokens: bool,
    /// Seconds between queue depth polls for metrics.
    pub stats_interval_secs: u64,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        ProcessingConfig {
            receivers: 4,
            receive_batch_messages: 10,
            wait_time_secs: 1,
            visibility_timeout_secs: 30,
            max_in_flight_messages: 80,
            verify_tokens: false,
            stats_interval_secs: 2,
        }
    }
}

impl ProcessingConfig {
    /// Checks bounds; returns a message naming the bad key.
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            (
                self.receivers >= 1 && self.receivers <= 256,
                "receivers must be 1..=256",
            ),
            (
                (1..=edgevote_queue::MAX_BATCH).contains(&self.receive_batch_messages),
                "receive_batch_messages must be 1..=10",
            ),
            (self.wait_time_secs <= 20, "wait_time_secs must be 0..=20"),
            (
                (1..=43_200).contains(&self.visibility_timeout_secs),
                "visibility_timeout_secs must be 1..=43200",
            ),
            (
                self.max_in_flight_messages >= self.receive_batch_messages,
                "max_in_flight_messages must be at least receive_batch_messages",
            ),
            (
                self.stats_interval_secs >= 1,
                "stats_interval_secs must be at least 1",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err((*message).to_owned()),
            None => Ok(()),
        }
    }

    /// The visibility timeout.
    pub fn visibility(&self) -> Duration {
        Duration::from_secs(self.visibility_timeout_secs)
    }

    /// The long-poll wait.
    pub fn wait(&self) -> Duration {
        Duration::from_secs(self.wait_time_secs)
    }
}

pub use edgevote_aws::backends::{QueueBackendConfig, StoreBackendConfig};

impl CollectorConfig {
    /// Parses TOML text and checks bounds.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: CollectorConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.processing.validate()?;
        edgevote_shared::validate::check_id("region", &config.region).map_err(|e| e.to_string())?;
        Ok(config)
    }
}
