//! The collector's Prometheus metrics: a fixed set of atomics rendered as text exposition
//! format. Names follow `edgevote_collector_<noun>_<verb>_total`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use edgevote_store::replication::ReplicationStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use edgevote_shared::histogram::LatencyHistogram;

/// Most distinct dead-letter reason labels kept (codes are a small fixed set; bound anyway).
const MAX_REASON_LABELS: usize = 64;

/// Counters and gauges of one collector.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Messages received from the queue.
    pub messages_received: AtomicU64,
    /// Messages deleted after their ballots were stored.
    pub messages_deleted: AtomicU64,
    /// Ballots newly stored.
    pub votes_stored: AtomicU64,
    /// Ballots already present (redelivery or client retry).
    pub votes_duplicate: AtomicU64,
    /// New ballots refused because their voter already had `max_votes_per_voter` ballots.
    pub ballots_over_limit: AtomicU64,
    /// Failed store calls (the messages are retried after their visibility timeout).
    pub store_errors: AtomicU64,
    /// Failed live-log appends (the messages are retried after their visibility timeout).
    pub live_log_errors: AtomicU64,
    /// Failed queue calls.
    pub queue_errors: AtomicU64,
    /// Messages whose visibility was extended during a slow batch.
    pub visibility_extensions: AtomicU64,
    /// Messages left for redelivery because they name a key the key set did not hold yet
    /// (`unknown_key_id` on an early receive: a key published moments ago).
    pub messages_deferred: AtomicU64,
    /// Key set reloads that changed the keys the collector verifies with.
    pub keyset_reloads: AtomicU64,
    /// Age of the last processed message when processed, milliseconds.
    pub queue_lag_ms: AtomicU64,
    /// Queue depth: visible messages.
    pub queue_visible: AtomicU64,
    /// Queue depth: in-flight messages.
    pub queue_in_flight: AtomicU64,
    /// Messages in the dead-letter queue.
    pub dead_letter_depth: AtomicU64,
    /// Age of the oldest queued message, milliseconds.
    pub queue_oldest_age_ms: AtomicU64,
    /// Durable commits of the queue's own writer (embedded queue: each one fsync), when the
    /// queue reports them ([`Self::queue_commits_known`]).
    pub queue_commits: AtomicU64,
    /// Whether the queue reports its commits (an SQS queue does not).
    pub queue_commits_known: std::sync::atomic::AtomicBool,
    dead_lettered: Mutex<BTreeMap<&'static str, u64>>,
    store_latency: LatencyHistogram,
    /// Replication into this region's store, when this process runs it (the local stack; on
    /// AWS, DynamoDB reports ReplicationLatency to CloudWatch instead).
    pub replication: std::sync::OnceLock<Arc<ReplicationStatus>>,
}

impl Metrics {
    /// Counts a message dead-lettered for `code`.
    pub fn dead_lettered(&self, code: &'static str) {
        let mut map = self.dead_lettered.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() < MAX_REASON_LABELS || map.contains_key(code) {
            *map.entry(code).or_insert(0) += 1;
        }
    }

    /// Total dead-lettered by this collector.
    pub fn dead_lettered_total(&self) -> u64 {
        self.dead_lettered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    /// Store calls made so far (one `record` per election of a received batch).
    pub fn store_calls(&self) -> u64 {
        self.store_latency.count()
    }

    /// Records one store call's latency.
    pub fn observe_store_latency(&self, elapsed: Duration) {
        self.store_latency.observe(elapsed);
    }

    /// Renders the Prometheus text exposition format.
    pub fn render(&self, region: &str) -> String {
        let mut out = String::new();
        let label = format!("region=\"{region}\"");
        let counters = [
            (
                "edgevote_collector_messages_received_total",
                "Queue messages received.",
                &self.messages_received,
            ),
            (
                "edgevote_collector_messages_deleted_total",
                "Queue messages deleted after their ballots were stored.",
                &self.messages_deleted,
            ),
            (
                "edgevote_collector_votes_stored_total",
                "Ballots newly stored.",
                &self.votes_stored,
            ),
            (
                "edgevote_collector_votes_duplicate_total",
                "Ballots already stored (redelivery or retry).",
                &self.votes_duplicate,
            ),
            (
                "edgevote_collector_ballots_over_limit_total",
                "Ballots refused (not stored, not counted): their voter already had the election's max_votes_per_voter ballots.",
                &self.ballots_over_limit,
            ),
            (
                "edgevote_collector_store_errors_total",
                "Failed store calls.",
                &self.store_errors,
            ),
            (
                "edgevote_collector_live_log_errors_total",
                "Failed live-log appends (the messages come back and are appended then; while it fails, the queue grows).",
                &self.live_log_errors,
            ),
            (
                "edgevote_collector_queue_errors_total",
                "Failed queue calls.",
                &self.queue_errors,
            ),
            (
                "edgevote_collector_visibility_extensions_total",
                "Visibility extensions for slow batches.",
                &self.visibility_extensions,
            ),
            (
                "edgevote_collector_messages_deferred_total",
                "Messages left for redelivery instead of dead-lettered: they name a key the collector's key set did not hold yet (unknown_key_id, early receives only).",
                &self.messages_deferred,
            ),
            (
                "edgevote_collector_keyset_reloads_total",
                "Reloads of the key set file that changed the keys (rotation).",
                &self.keyset_reloads,
            ),
        ];
        for (name, help, value) in counters {
            metric(
                &mut out,
                name,
                help,
                "counter",
                &label,
                value.load(Ordering::Relaxed) as f64,
            );
        }
        let _ = writeln!(
            out,
            "# HELP edgevote_collector_messages_dead_lettered_total Messages moved to the dead-letter queue, by reason."
        );
        let _ = writeln!(
            out,
            "# TYPE edgevote_collector_messages_dead_lettered_total counter"
        );
        for (code, n) in self
            .dead_lettered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "edgevote_collector_messages_dead_lettered_total{{{label},reason=\"{code}\"}} {n}"
            );
        }
        // Gauges kept in milliseconds are exported in seconds (divisor 1000).
        let gauges = [
            (
                "edgevote_collector_queue_lag_seconds",
                "Age of the last processed message when it was processed.",
                &self.queue_lag_ms,
                1000.0,
            ),
            (
                "edgevote_collector_queue_oldest_age_seconds",
                "Age of the oldest message in the queue.",
                &self.queue_oldest_age_ms,
                1000.0,
            ),
            (
                "edgevote_collector_queue_visible_messages",
                "Messages waiting in the queue.",
                &self.queue_visible,
                1.0,
            ),
            (
                "edgevote_collector_queue_in_flight_messages",
                "Messages received and not yet deleted.",
                &self.queue_in_flight,
                1.0,
            ),
            (
                "edgevote_collector_dead_letter_messages",
                "Messages in the dead-letter queue.",
                &self.dead_letter_depth,
                1.0,
            ),
        ];
        for (name, help, value, divisor) in gauges {
            metric(
                &mut out,
                name,
                help,
                "gauge",
                &label,
                value.load(Ordering::Relaxed) as f64 / divisor,
            );
        }
        if self.queue_commits_known.load(Ordering::Relaxed) {
            metric(
                &mut out,
                "edgevote_collector_queue_commits_total",
                "Durable commits of the embedded queue (each one fsync; about one per message while edges send).",
                "counter",
                &label,
                self.queue_commits.load(Ordering::Relaxed) as f64,
            );
        }
        self.render_latency(&mut out, &label);
        self.render_replication(&mut out, region);
        out
    }

    fn render_replication(&self, out: &mut String, region: &str) {
        let name = "edgevote_store_replication_lag_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} How long this region's store has been behind a peer's writes (0 when caught up)."
        );
        let _ = writeln!(out, "# TYPE {name} gauge");
        let Some(status) = self.replication.get() else {
            return;
        };
        for (peer, lag) in status.lag_into(region, edgevote_signer::clock::now_ms()) {
            let _ = writeln!(out, "{name}{{region=\"{region}\",peer=\"{peer}\"}} {lag}");
        }
    }

    fn render_latency(&self, out: &mut String, label: &str) {
        self.store_latency.render(
            out,
            "edgevote_collector_store_latency_seconds",
            "Latency of store record calls.",
            label,
        );
    }
}

fn metric(out: &mut String, name: &str, help: &str, kind: &str, label: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name}{{{label}}} {value}");
}
