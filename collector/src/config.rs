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
//!
//! [http]                     # optional; these are the defaults
//! reveal_counted = "first_vote_wins"
//! final_cache_ms = 2000
//! final_max_scans = 1
//! final_wait_ms = 5000
//! # auditor_token_file = "secrets/auditor.token"   (absent: no per-voter listing)
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
    /// What the HTTP endpoints reveal, and how hard `/v1/results/{election}/final` may work.
    #[serde(default)]
    pub http: HttpConfig,
    /// The region's live receipts log (off when absent); see [`crate::live_log`].
    #[serde(default)]
    pub live_log: Option<crate::live_log::LiveLogConfig>,
}

/// When the per-receipt lookup (`GET /v1/elections/{e}/votes/{vote_id}`) says whether that
/// vote is the voter's counted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevealCounted {
    /// Never.
    Never,
    /// Only in first-vote-wins elections, where a later ballot cannot replace the counted one,
    /// so "counted" tells a coercer nothing the voter could still change. Under
    /// last-vote-wins, re-voting is the voter's defence against coercion, and "counted" or
    /// "superseded" would reveal it.
    #[default]
    FirstVoteWins,
    /// In every election, last-vote-wins included: an explicit opt-in that gives up re-voting
    /// as a defence against coercion.
    Always,
}

/// The HTTP endpoints' settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// A file holding the auditor bearer token (at least 32 characters). Only with it does
    /// `GET /v1/elections/{e}/voters/{voter}/ballots` (a voter's ballots and which one counts)
    /// exist, and only for requests presenting that token. Absent: the endpoint answers 404.
    pub auditor_token_file: Option<PathBuf>,
    /// When the per-receipt lookup reveals whether that vote is the counted one.
    pub reveal_counted: RevealCounted,
    /// How long a computed final tally is served before a request rescans the store, ms.
    pub final_cache_ms: u64,
    /// Most full scans for final tallies running at once (every election together).
    pub final_max_scans: usize,
    /// Longest a final tally request waits for a running scan or a free scan slot before it
    /// is answered 503 with `Retry-After`, ms.
    pub final_wait_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            auditor_token_file: None,
            reveal_counted: RevealCounted::FirstVoteWins,
            final_cache_ms: 2_000,
            final_max_scans: 1,
            final_wait_ms: 5_000,
        }
    }
}

/// A setting outside its bounds: the key it is under and the rule it breaks. Displayed as
/// "`{field}` must be `{rule}`", the message the configuration file's errors have always had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be {rule}")]
pub struct InvalidSetting {
    /// The key, as written in the configuration file (`http.final_wait_ms`, `receivers`).
    pub field: &'static str,
    /// The rule it breaks (`1..=20`, `at least 1`).
    pub rule: &'static str,
}

/// The first of `checks` (holds, key, rule) that does not hold.
fn first_broken(checks: &[(bool, &'static str, &'static str)]) -> Result<(), InvalidSetting> {
    match checks.iter().find(|(holds, _, _)| !holds) {
        Some(&(_, field, rule)) => Err(InvalidSetting { field, rule }),
        None => Ok(()),
    }
}

impl HttpConfig {
    /// Checks bounds; the error names the bad key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        first_broken(&[
            (
                (1..=64).contains(&self.final_max_scans),
                "http.final_max_scans",
                "1..=64",
            ),
            (
                self.final_cache_ms <= 3_600_000,
                "http.final_cache_ms",
                "at most 3600000",
            ),
            (
                (1..=120_000).contains(&self.final_wait_ms),
                "http.final_wait_ms",
                "1..=120000",
            ),
        ])
    }
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
    /// While receives come back with fewer than `receive_batch_messages`, the receives of all
    /// loops start at least this many milliseconds apart, so light traffic gathers into fuller
    /// batches (fewer queue, store and live-log commits per vote). A vote then waits up to this
    /// much longer before it is stored, never before it is acknowledged (the edge acknowledges
    /// once the queue holds it). A full receive lets the next start at once. 0: no spacing.
    pub receive_gather_ms: u64,
    /// Verify every voter token's signature again (default `true`): the collector then trusts
    /// no edge key with a voter's eligibility, only with the ballot's transport. `false` lets an
    /// attacker holding one edge key mint votes for any voter, so turn it off only to measure.
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
            receive_gather_ms: 20,
            verify_tokens: true,
            stats_interval_secs: 2,
        }
    }
}

impl ProcessingConfig {
    /// Checks bounds; the error names the bad key. The one check of these settings, whether
    /// they come from the configuration file ([`CollectorConfig::parse`]) or from code
    /// ([`crate::Collector::new`]).
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        first_broken(&[
            ((1..=256).contains(&self.receivers), "receivers", "1..=256"),
            (
                (1..=edgevote_queue::MAX_BATCH).contains(&self.receive_batch_messages),
                "receive_batch_messages",
                "1..=10",
            ),
            (self.wait_time_secs <= 20, "wait_time_secs", "0..=20"),
            (
                self.receive_gather_ms <= 1000,
                "receive_gather_ms",
                "0..=1000",
            ),
            (
                (1..=43_200).contains(&self.visibility_timeout_secs),
                "visibility_timeout_secs",
                "1..=43200",
            ),
            (
                self.max_in_flight_messages >= self.receive_batch_messages,
                "max_in_flight_messages",
                "at least receive_batch_messages",
            ),
            (
                self.stats_interval_secs >= 1,
                "stats_interval_secs",
                "at least 1",
            ),
        ])
    }

    /// The visibility timeout.
    pub fn visibility(&self) -> Duration {
        Duration::from_secs(self.visibility_timeout_secs)
    }

    /// The least spacing of partly filled receives.
    pub fn gather(&self) -> Duration {
        Duration::from_millis(self.receive_gather_ms)
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
        config.processing.validate().map_err(|e| e.to_string())?;
        config.http.validate().map_err(|e| e.to_string())?;
        edgevote_shared::validate::check_id("region", &config.region).map_err(|e| e.to_string())?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
region = "r1"
keyset_path = "k.json"
election_paths = []
[queue]
backend = "embedded"
path = "q.redb"
[store]
backend = "embedded"
path = "s.redb"
"#;

    /// `[http]` is optional with safe defaults (no voter listing, "counted" only under
    /// first-vote-wins), its keys are checked, and the auditor token comes from a file.
    #[test]
    fn the_http_section_defaults_to_no_listing_and_is_checked() {
        let config = CollectorConfig::parse(BASE).unwrap();
        assert_eq!(config.http, HttpConfig::default());
        assert_eq!(config.http.auditor_token_file, None);
        assert_eq!(config.http.reveal_counted, RevealCounted::FirstVoteWins);
        let with = |http: &str| CollectorConfig::parse(&format!("{BASE}[http]\n{http}\n"));
        let set = with("reveal_counted = \"never\"\nfinal_max_scans = 2").unwrap();
        assert_eq!(set.http.reveal_counted, RevealCounted::Never);
        assert_eq!(set.http.final_max_scans, 2);
        for bad in [
            "final_max_scans = 0",
            "final_wait_ms = 0",
            "reveal_counted = \"sometimes\"",
            "auditor_token = \"inline secrets are refused\"",
        ] {
            assert!(with(bad).is_err(), "{bad} was accepted");
        }

        let dir = std::env::temp_dir().join(format!("edgevote-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("auditor.token");
        let http = |path: &std::path::Path| HttpConfig {
            auditor_token_file: Some(path.to_owned()),
            ..HttpConfig::default()
        };
        std::fs::write(&file, "short\n").unwrap();
        assert!(crate::http::HttpOptions::from_config(&http(&file)).is_err());
        std::fs::write(&file, format!("{}\n", "x".repeat(40))).unwrap();
        let options = crate::http::HttpOptions::from_config(&http(&file)).unwrap();
        assert_eq!(
            options.auditor_token.as_deref(),
            Some("x".repeat(40).as_str())
        );
        assert!(crate::http::HttpOptions::from_config(&http(&dir.join("missing"))).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
