//! The edge host's Prometheus metrics (`edgevote_edge_<noun>_<verb>_total` etc.).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one edge host.
#[derive(Debug, Default)]
pub struct Metrics {
    /// HTTP requests answered, by class.
    pub requests_2xx: AtomicU64,
    /// 4xx answers.
    pub requests_4xx: AtomicU64,
    /// 5xx answers.
    pub requests_5xx: AtomicU64,
    /// Component instantiations.
    pub instances_created: AtomicU64,
    /// Envelopes committed to the queue (lines of the queue messages).
    pub envelopes_committed: AtomicU64,
    /// Votes committed to the queue (each component-sealed envelope holds one; a host-sealed
    /// envelope holds every vote of its group commit).
    pub votes_committed: AtomicU64,
    /// Host sealing: handed votes whose token the host's batch verification refused.
    pub votes_refused_by_sealer: AtomicU64,
    /// Queue messages written by group commit.
    pub group_commits: AtomicU64,
    /// Votes written to the spill log because the queue refused them.
    pub envelopes_spilled: AtomicU64,
    /// Votes forwarded from the spill log to the queue.
    pub envelopes_forwarded: AtomicU64,
    /// Votes refused (queue down, no spill): their voters got 503 and no receipt.
    pub envelopes_refused: AtomicU64,
    /// Failed queue calls.
    pub queue_errors: AtomicU64,
    /// Requests refused because the component failed (trap, bad response).
    pub component_errors: AtomicU64,
    /// Bundles deployed through the admin endpoint.
    pub bundle_deploys: AtomicU64,
    /// Rollbacks to the previous bundle.
    pub bundle_rollbacks: AtomicU64,
    /// Deploys refused (signature, digest, or a component that does not load).
    pub bundle_refusals: AtomicU64,
}

impl Metrics {
    /// Counts one answer of `status`.
    pub fn count_status(&self, status: u16) {
        let counter = match status {
            200..=299 => &self.requests_2xx,
            400..=499 => &self.requests_4xx,
            _ => &self.requests_5xx,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Renders the Prometheus text exposition format.
    pub fn render(&self, edge: &str, region: &str) -> String {
        let labels = format!("edge=\"{edge}\",region=\"{region}\"");
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP edgevote_edge_requests_total HTTP requests answered, by status class."
        );
        let _ = writeln!(out, "# TYPE edgevote_edge_requests_total counter");
        for (class, counter) in [
            ("2xx", &self.requests_2xx),
            ("4xx", &self.requests_4xx),
            ("5xx", &self.requests_5xx),
        ] {
            let _ = writeln!(
                out,
                "edgevote_edge_requests_total{{{labels},class=\"{class}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        let counters = [
            (
                "edgevote_edge_instances_created_total",
                "Component instances created.",
                &self.instances_created,
            ),
            (
                "edgevote_edge_envelopes_committed_total",
                "Vote envelopes durably committed to the queue.",
                &self.envelopes_committed,
            ),
            (
                "edgevote_edge_votes_committed_total",
                "Votes durably committed to the queue (divide by group commits: votes per message).",
                &self.votes_committed,
            ),
            (
                "edgevote_edge_sealer_refusals_total",
                "Host sealing: votes whose token the host's batch verification refused.",
                &self.votes_refused_by_sealer,
            ),
            (
                "edgevote_edge_group_commits_total",
                "Queue messages written by group commit.",
                &self.group_commits,
            ),
            (
                "edgevote_edge_envelopes_spilled_total",
                "Votes fsync'd to the spill log while the queue was unavailable.",
                &self.envelopes_spilled,
            ),
            (
                "edgevote_edge_envelopes_forwarded_total",
                "Votes forwarded from the spill log to the queue.",
                &self.envelopes_forwarded,
            ),
            (
                "edgevote_edge_envelopes_refused_total",
                "Votes refused with 503 (queue down, no spill).",
                &self.envelopes_refused,
            ),
            (
                "edgevote_edge_queue_errors_total",
                "Failed queue calls.",
                &self.queue_errors,
            ),
            (
                "edgevote_edge_component_errors_total",
                "Requests the component failed to answer.",
                &self.component_errors,
            ),
            (
                "edgevote_edge_bundle_deploys_total",
                "Bundles deployed through the admin endpoint.",
                &self.bundle_deploys,
            ),
            (
                "edgevote_edge_bundle_rollbacks_total",
                "Rollbacks to the previous bundle.",
                &self.bundle_rollbacks,
            ),
            (
                "edgevote_edge_bundle_refusals_total",
                "Bundle deploys refused (signature, digest, or component).",
                &self.bundle_refusals,
            ),
        ];
        for (name, help, counter) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(
                out,
                "{name}{{{labels}}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        out
    }
}
