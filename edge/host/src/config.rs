//! The edge host's configuration file (TOML). Unknown keys are refused.

use std::path::PathBuf;
use std::time::Duration;

use edgevote_aws::backends::QueueBackendConfig;
use edgevote_edge_core::commit::CommitBounds;
use serde::Deserialize;

/// The whole edge host configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Address to serve HTTP on (`127.0.0.1:0` picks a free port).
    #[serde(default = "default_listen_addr")]
    pub listen_addr: String,
    /// This edge's id (in receipts and envelopes).
    pub edge_id: String,
    /// This edge's region.
    pub region: String,
    /// The edge component (wasm32-wasip2, exports `wasi:http/incoming-handler`).
    pub component_path: PathBuf,
    /// The component's signed bundle manifest; the host refuses a component it does not verify.
    pub bundle_manifest_path: PathBuf,
    /// Published key set: ops keys verify the bundle, authority keys the manifests and tokens.
    pub keyset_path: PathBuf,
    /// Signed election manifests served by this edge.
    pub election_paths: Vec<PathBuf>,
    /// This edge's private key file (mode 0600).
    pub edge_key_path: PathBuf,
    /// Where the signature work happens: `host` (the default) keeps the edge key in the host,
    /// which verifies tokens in batches, seals one envelope per group commit and signs receipts
    /// natively; `component` gives the key to the component, which does it all itself in Wasm,
    /// exactly as on Spin.
    #[serde(default)]
    pub sealing: SealingMode,
    /// Most requests handled at once (and component instances in the pool).
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: u32,
    /// Group commit of accepted votes into queue messages.
    #[serde(default)]
    pub group_commit: GroupCommitConfig,
    /// Spill log for when the queue is unreachable.
    #[serde(default)]
    pub spill: SpillConfig,
    /// Per-IP and per-token rate limits (429 with Retry-After).
    #[serde(default)]
    pub rate_limit: crate::limit::RateLimitConfig,
    /// Limits of the HTTP front against slow and oversized requests.
    #[serde(default)]
    pub http: HttpConfig,
    /// The authenticated admin endpoint (bundle deploy and rollback).
    #[serde(default)]
    pub admin: AdminConfig,
    /// Let the component's SQS calls go out to real endpoints instead of the host's queue
    /// (the component then behaves exactly as on Spin). Needs `forward_queues`.
    #[serde(default)]
    pub forward_outbound: bool,
    /// `region=queue_url` pairs the component sends to when `forward_outbound` is set.
    #[serde(default)]
    pub forward_queues: Vec<String>,
    /// The regional queue the host commits to (when not forwarding).
    pub queue: QueueBackendConfig,
}

/// Where the edge's signature work (token verification, envelope and receipt signatures) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SealingMode {
    /// In the host, natively: the component checks the rules and hands each ballot over.
    #[default]
    Host,
    /// In the component, in Wasm: it holds the key and sends its own SQS call.
    Component,
}

fn default_listen_addr() -> String {
    "127.0.0.1:8080".into()
}

fn default_max_concurrent_requests() -> u32 {
    256
}

/// Group commit: concurrent votes are packed into one queue message (under host sealing into one
/// envelope the host signs; under component sealing one component-signed envelope per line),
/// and every voter gets the receipt only after that message is durably accepted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupCommitConfig {
    /// Most votes in one queue message (1..=256, the most envelopes a message may carry:
    /// under component sealing each vote is its own envelope). Formerly `max_envelopes`, which
    /// is still accepted. A vote waits in group commit holding its request's place under
    /// `max_concurrent_requests` (and its instance), so a message never holds more votes than
    /// that, less those in the other commit in flight: raising this past
    /// `max_concurrent_requests` gains nothing, and a stretched window waiting for votes that
    /// cannot come idles the edge (measured on 2 cores with `edgevote up`'s 128 places per
    /// edge: 256 votes and a 100 ms stretched window gave a maximum of 3,600 votes/s instead
    /// of 4,800; 512 places with 128 votes a lower maximum too, as more work then competes
    /// for the cores).
    #[serde(alias = "max_envelopes")]
    pub max_votes: usize,
    /// Most bytes in one queue message.
    pub max_message_bytes: usize,
    /// Longest wait for more votes once one is pending, milliseconds.
    pub max_wait_ms: u64,
    /// The same wait while the edge is overloaded (see `overload_backlog_votes` and
    /// `overload_lag_ms`), milliseconds; one not longer than `max_wait_ms` turns stretching off.
    /// 75 by default: measured on 2 cores in 20-second saturating steps, 0.0095 to 0.0096 queue
    /// messages per vote against 0.0102 to 0.0132 at 50, at the same rate (README, Performance).
    pub max_wait_overloaded_ms: u64,
    /// The edge's backlog, in votes, at or above which a group commit finds the edge behind:
    /// vote requests received and not yet in group commit (waiting for a connection task, an
    /// instance, the component or the host's checks). When most commits of a quarter second
    /// (or eight in a row over at least 100 ms, see `pace.rs`)
    /// find it behind, the edge counts as overloaded and the window stretches to
    /// `max_wait_overloaded_ms` (its voters already wait longer, and fewer, fuller messages
    /// spend less of its CPU and fewer queue requests); it comes back after a quarter second
    /// in which most find less than half that backlog, or after a quarter second without
    /// commits (see `pace.rs`). Meanwhile a window is stretched only while the backlog is
    /// still at least half of this (checked as it opens and at each arrival), so voters do
    /// not wait the long window once the load has fallen. 64 by default (measured on 2
    /// cores: it stretches only past the knee, and halves the messages per vote there); 0
    /// turns this trigger off.
    pub overload_backlog_votes: u64,
    /// The other trigger, used when `overload_backlog_votes` is 0: a group commit *lags* by
    /// the time from its window's end to its outcome (the timer's lateness, the wait for a
    /// commit slot, sealing, the queue send), milliseconds, and finds the edge behind when it
    /// lagged at least this long. 0 (the default) turns it off: measured on 2 cores, it also
    /// stretched windows near the knee, where the edge still coped, and lengthened that tail
    /// (README, Performance).
    pub overload_lag_ms: u64,
    /// Most votes waiting for a commit (beyond it, requests wait).
    pub queue_capacity: usize,
}

impl Default for GroupCommitConfig {
    fn default() -> Self {
        GroupCommitConfig {
            max_votes: CommitBounds::default().max_votes,
            max_message_bytes: CommitBounds::default().max_message_bytes,
            max_wait_ms: 2,
            max_wait_overloaded_ms: 75,
            overload_backlog_votes: 64,
            overload_lag_ms: 0,
            queue_capacity: 4096,
        }
    }
}

impl GroupCommitConfig {
    /// The bounds of one message, for [`edgevote_edge_core::commit::Batch`].
    pub fn bounds(&self) -> CommitBounds {
        CommitBounds {
            max_votes: self.max_votes,
            max_message_bytes: self.max_message_bytes,
        }
    }

    /// The wait bound.
    pub fn max_wait(&self) -> Duration {
        Duration::from_millis(self.max_wait_ms)
    }

    /// The window while the edge is overloaded, when stretching is on: a trigger
    /// (`overload_backlog_votes` or `overload_lag_ms`) is set and `max_wait_overloaded_ms`
    /// is longer than `max_wait_ms` (see [`crate::pace`]).
    pub fn stretched_wait(&self) -> Option<Duration> {
        let triggered = self.overload_backlog_votes > 0 || self.overload_lag_ms > 0;
        (triggered && self.max_wait_overloaded_ms > self.max_wait_ms)
            .then(|| Duration::from_millis(self.max_wait_overloaded_ms))
    }
}

/// The admin endpoint, `/admin/v1/...` on the same listener: off unless a token file is set.
/// Keep it off the public origin (CloudFront forwards only `/v1/*`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// File holding the bearer token admin requests must present (at least 32 characters).
    pub token_file: Option<PathBuf>,
    /// Where deployed bundles are kept (the active one and the rollback target, written
    /// crash-safe: see `bundle_dir`); a restart comes back on the last deployed bundle unless
    /// the configured one has a higher serial. Without it, deploys last until the process stops.
    pub bundle_dir: Option<PathBuf>,
}

/// Limits of the HTTP front: a client that sends its request slowly, or sends huge headers,
/// must not hold a connection or memory for long.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Longest wait for a request's head (request line and headers), milliseconds; a slower
    /// client is disconnected.
    pub header_read_timeout_ms: u64,
    /// Longest wait for a request's whole body once the head is in, milliseconds; then 408.
    pub body_read_timeout_ms: u64,
    /// Largest request head, bytes (at least 8192); a larger head gets 431.
    pub max_header_bytes: usize,
    /// Longest a request may take once its body is in, milliseconds: waiting for an instance,
    /// running the guest (interrupted by the engine's epoch) and waiting for durability. Then
    /// 503 `deadline_exceeded` with `Retry-After`, and the instance is dropped.
    pub request_timeout_ms: u64,
    /// The `host[:port]` an HTTP/1.0 request without a `Host` header is served as (HTTP/1.1
    /// without `Host` gets 400 `missing_host`).
    pub public_authority: String,
    /// Most connections open at once (1..=1000000); beyond it the host stops accepting and new
    /// connections wait in the kernel's backlog.
    pub max_connections: usize,
    /// HTTP/2 (prior knowledge): most requests in flight at once on one connection (1..=1000).
    /// Every request still takes its place under `max_concurrent_requests`.
    pub http2_max_streams_per_connection: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_read_timeout_ms: 5_000,
            body_read_timeout_ms: 10_000,
            max_header_bytes: 16 * 1024,
            request_timeout_ms: 5_000,
            public_authority: "localhost".into(),
            max_connections: 10_000,
            http2_max_streams_per_connection: 100,
        }
    }
}

impl HttpConfig {
    /// The head timeout.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// The body timeout.
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms)
    }

    /// The deadline of a request through the component.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The public authority as a `Host` value (checked by [`HostConfig::parse`]).
    pub fn public_authority_header(&self) -> http::HeaderValue {
        http::HeaderValue::from_str(&self.public_authority)
            .unwrap_or(http::HeaderValue::from_static("localhost"))
    }
}

/// Spill log: when the queue refuses a commit, the votes are fsync'd here, acknowledged, and
/// forwarded when the queue is back (also after a restart).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpillConfig {
    /// Whether the election's policy allows acknowledging votes held in the local spill log.
    pub enabled: bool,
    /// The spill log file (an embedded durable queue).
    pub path: PathBuf,
}

impl Default for SpillConfig {
    fn default() -> Self {
        SpillConfig {
            enabled: false,
            path: PathBuf::from("edge-spill.redb"),
        }
    }
}

impl HostConfig {
    /// Parses TOML text and checks bounds.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: HostConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        let gc = &config.group_commit;
        let checks = [
            (
                config.max_concurrent_requests >= 1 && config.max_concurrent_requests <= 10_000,
                "max_concurrent_requests must be 1..=10000",
            ),
            (
                gc.max_wait_ms <= 1000,
                "group_commit.max_wait_ms must be at most 1000",
            ),
            (
                gc.max_wait_overloaded_ms <= 1000,
                "group_commit.max_wait_overloaded_ms must be at most 1000",
            ),
            (
                gc.overload_lag_ms <= 60_000,
                "group_commit.overload_lag_ms must be at most 60000",
            ),
            (
                gc.overload_backlog_votes <= 1_000_000,
                "group_commit.overload_backlog_votes must be at most 1000000",
            ),
            (
                gc.overload_backlog_votes == 0 || gc.overload_lag_ms == 0,
                "group_commit: one overload trigger at a time, not both: set \
                 overload_backlog_votes = 0 (it is 64 by default) to use overload_lag_ms",
            ),
            (
                gc.queue_capacity >= 1 && gc.queue_capacity <= 1_000_000,
                "group_commit.queue_capacity must be 1..=1000000",
            ),
            (
                !config.forward_outbound || !config.forward_queues.is_empty(),
                "forward_outbound needs forward_queues",
            ),
            (
                !config.forward_outbound || config.sealing == SealingMode::Component,
                "forward_outbound lets the component send its own SQS calls: it needs sealing = \"component\"",
            ),
            (
                (8192..=1024 * 1024).contains(&config.http.max_header_bytes),
                "http.max_header_bytes must be 8192..=1048576",
            ),
            (
                (1..=300_000).contains(&config.http.header_read_timeout_ms)
                    && (1..=300_000).contains(&config.http.body_read_timeout_ms),
                "http.header_read_timeout_ms and http.body_read_timeout_ms must be 1..=300000",
            ),
            (
                (1..=1_000_000).contains(&config.http.max_connections),
                "http.max_connections must be 1..=1000000",
            ),
            (
                (1..=1000).contains(&config.http.http2_max_streams_per_connection),
                "http.http2_max_streams_per_connection must be 1..=1000",
            ),
            (
                (10..=300_000).contains(&config.http.request_timeout_ms),
                "http.request_timeout_ms must be 10..=300000",
            ),
            (
                !config.http.public_authority.contains('@')
                    && config
                        .http
                        .public_authority
                        .parse::<http::uri::Authority>()
                        .is_ok(),
                "http.public_authority must be host[:port]",
            ),
        ];
        if let Some((_, message)) = checks.iter().find(|(ok, _)| !ok) {
            return Err((*message).to_owned());
        }
        gc.bounds()
            .check()
            .map_err(|e| format!("group_commit.{e}"))?;
        edgevote_shared::validate::check_id("edge_id", &config.edge_id)
            .map_err(|e| e.to_string())?;
        edgevote_shared::validate::check_id("region", &config.region).map_err(|e| e.to_string())?;
        Ok(config)
    }
}
