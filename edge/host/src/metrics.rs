//! The edge host's Prometheus metrics (`edgevote_edge_<noun>_<verb>_total` etc.).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use edgevote_shared::histogram::LatencyHistogram;

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
    /// Host sealing: hand-overs refused because the ballot was not the one the voter sent.
    pub handover_mismatches: AtomicU64,
    /// Queue messages written by group commit.
    pub group_commits: AtomicU64,
    /// Votes written to the spill log because the queue refused them.
    pub votes_spilled: AtomicU64,
    /// Votes forwarded from the spill log to the queue.
    pub votes_forwarded: AtomicU64,
    /// Votes refused (queue down, no spill): their voters got 503 and no receipt.
    pub votes_queue_refused: AtomicU64,
    /// Failed queue calls.
    pub queue_errors: AtomicU64,
    /// Requests refused because the component failed (trap, bad response).
    pub component_errors: AtomicU64,
    /// 4xx answers and refused connections, by who refused them ([`Stage`]).
    pub client_errors: [AtomicU64; Stage::COUNT],
    /// 5xx answers, by who answered them ([`Stage`]; never `Protocol`).
    pub server_errors: [AtomicU64; Stage::COUNT],
    /// Component instances dropped instead of going back to the pool, by [`Discard`] reason.
    pub instances_discarded: [AtomicU64; Discard::COUNT],
    /// Edge key switches after a rotation (the host follows its key file and key set).
    pub key_switches: AtomicU64,
    /// Votes refused with `edge_key_expired`: no key the host holds is valid for them now.
    pub votes_refused_key_expired: AtomicU64,
    /// Bundles deployed through the admin endpoint.
    pub bundle_deploys: AtomicU64,
    /// Rollbacks to the previous bundle.
    pub bundle_rollbacks: AtomicU64,
    /// Deploys refused (signature, digest, or a component that does not load).
    pub bundle_refusals: AtomicU64,
    /// Failed accepts (a resource error pauses the accept loop; see [`crate::accept`]).
    pub accept_errors: AtomicU64,
    /// Connections open now (at most `http.max_connections`).
    pub connections_open: AtomicU64,
    /// Connections that opened with the HTTP/2 preface (the rest speak HTTP/1).
    pub http2_connections: AtomicU64,
    /// Vote requests received and not yet answered (see [`Metrics::vote_started`]).
    pub votes_in_flight: AtomicU64,
    /// Votes handed to group commit and not yet committed or refused (see
    /// [`Metrics::commit_started`]).
    pub votes_in_group_commit: AtomicU64,
    /// How long each vote request (`POST .../votes`) took, from its head to its answer's head,
    /// whatever the answer: what a voter waits for a receipt, less the network.
    pub vote_latency: LatencyHistogram,
    /// How long each queue send of a group commit took (answered or failed).
    pub queue_send_latency: LatencyHistogram,
    /// How long each group commit took from its first vote to its outcome: the longest any of
    /// its votes waited in group commit.
    pub group_commit_latency: LatencyHistogram,
    /// How long each vote spent in group commit, from its hand-over to its outcome (window,
    /// commit slot, sealing, queue send), whatever the outcome: per vote, so that the part of
    /// [`Metrics::vote_latency`] before group commit can be told from the part in it.
    pub vote_commit_latency: LatencyHistogram,
    /// Where votes waited in group commit past their window's deadline, by [`CommitPhase`]:
    /// each message's wait observed once per vote it holds (the votes that joined it while it
    /// waited for its slot waited less than that). The window itself, up to its deadline, is
    /// the rest of [`Metrics::vote_commit_latency`].
    pub vote_commit_phases: [LatencyHistogram; CommitPhase::COUNT],
    /// Times the edge counted as overloaded and stretched its group-commit window.
    pub group_commit_stretches: AtomicU64,
    /// Group-commit windows that opened stretched (the edge overloaded and, under the backlog
    /// trigger, its backlog still at least half the trigger).
    pub group_commit_stretched_windows: AtomicU64,
    /// Group commits that committed alone (waited until no other commit was in flight, and
    /// held every commit slot) because the batch before waited 5 ms or more for its slot.
    pub group_commits_alone: AtomicU64,
    /// The group-commit window now, microseconds (`max_wait_ms`, or `max_wait_overloaded_ms`
    /// while overloaded).
    pub group_commit_window_us: AtomicU64,
    /// Group-commit windows by why they closed ([`CommitClose`]): what sets the votes per
    /// message (a message may still take votes while it waits for its commit slot).
    pub group_commit_closes: [AtomicU64; CommitClose::COUNT],
}

/// Who answered (or refused) a request: what separates a client's mistake from a failure of
/// ours in the error counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The HTTP layer: an HTTP/1 head it could not parse (bare 400/414/431), a head timeout,
    /// an HTTP/2 connection error; the connection is closed.
    Protocol = 0,
    /// The host itself: its front screen, rate limits, body reading, deadlines, a failed
    /// component, `/metrics`, `/healthz`, the admin endpoint.
    Host = 1,
    /// The component's own answer.
    Component = 2,
}

/// For an enum whose variants index an array of counters (their discriminants, listed here in
/// order) and label a [`Family`]'s values: `COUNT`, `ALL` and `label`.
macro_rules! counter_labels {
    ($name:ident { $($variant:ident => $label:literal),+ $(,)? }) => {
        impl $name {
            const COUNT: usize = [$($name::$variant),+].len();
            const ALL: [$name; Self::COUNT] = [$($name::$variant),+];

            fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label),+
                }
            }
        }
    };
}

counter_labels!(Stage {
    Protocol => "protocol",
    Host => "host",
    Component => "component",
});

/// A counter family with one label.
struct Family {
    name: &'static str,
    help: &'static str,
    label: &'static str,
    values: Vec<(&'static str, u64)>,
}

impl Family {
    fn render(&self, out: &mut String, labels: &str) {
        let Family {
            name,
            help,
            label,
            values,
        } = self;
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for (value_label, value) in values {
            let _ = writeln!(out, "{name}{{{labels},{label}=\"{value_label}\"}} {value}");
        }
    }
}

/// Why an instance was dropped rather than reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discard {
    /// The guest trapped or the call failed.
    Trap = 0,
    /// The request ran past its deadline (the guest was interrupted or abandoned).
    Deadline = 1,
    /// It served its quota of requests (a bound on slow leaks, not a fault).
    Quota = 2,
}

/// A part of a vote's time in group commit past its window's deadline
/// ([`Metrics::vote_commit_phases`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitPhase {
    /// Waiting for a commit slot (both in flight).
    Slot = 0,
    /// Sealing: the batch verification of handed tokens and the envelope's signature.
    Seal = 1,
    /// Storing: the queue send (or the spill log when the queue refused).
    Store = 2,
    /// How late the window closed after its deadline: the committer's task resumed late (its
    /// runtime's workers were busy or blocked). Zero for a window closed by a full message or
    /// a backlog gone, before its deadline.
    Late = 3,
}

/// Why a group-commit window closed ([`Metrics::group_commit_closes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitClose {
    /// Its time was up (`max_wait_ms`, or `max_wait_overloaded_ms` when it opened stretched).
    Window = 0,
    /// The message was full (`max_votes` or `max_message_bytes`).
    Full = 1,
    /// It opened stretched and an arrival found the backlog below half the trigger (the load
    /// fell).
    BacklogFell = 2,
}

counter_labels!(CommitClose {
    Window => "window",
    Full => "full",
    BacklogFell => "backlog_fell",
});

counter_labels!(CommitPhase {
    Slot => "slot",
    Seal => "seal",
    Store => "store",
    Late => "late",
});

counter_labels!(Discard {
    Trap => "trap",
    Deadline => "deadline",
    Quota => "quota",
});

/// One vote counted in a gauge ([`Metrics::votes_in_flight`], [`Metrics::votes_in_group_commit`])
/// until dropped, however its request ends (answered, refused, or abandoned by its client).
#[derive(Debug)]
pub struct Counted<'m>(&'m AtomicU64);

/// One vote in group commit: counted in [`Metrics::votes_in_group_commit`] and, when dropped
/// (however it ends), its time there observed in [`Metrics::vote_commit_latency`].
#[derive(Debug)]
pub struct InGroupCommit<'m> {
    _counted: Counted<'m>,
    since: std::time::Instant,
    latency: &'m LatencyHistogram,
}

impl Drop for InGroupCommit<'_> {
    fn drop(&mut self) {
        self.latency.observe(self.since.elapsed());
    }
}

impl<'m> Counted<'m> {
    fn new(gauge: &'m AtomicU64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Counted(gauge)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts a vote request in flight until the guard is dropped.
    pub fn vote_started(&self) -> Counted<'_> {
        Counted::new(&self.votes_in_flight)
    }

    /// Counts a vote in group commit until the guard is dropped, and then observes how long
    /// it was there.
    pub fn commit_started(&self) -> InGroupCommit<'_> {
        InGroupCommit {
            _counted: Counted::new(&self.votes_in_group_commit),
            since: std::time::Instant::now(),
            latency: &self.vote_commit_latency,
        }
    }

    /// The edge's backlog: vote requests in flight that have not reached group commit (they
    /// wait for a connection task, an instance, the component or the host's checks).
    pub fn vote_backlog(&self) -> u64 {
        let in_flight = self.votes_in_flight.load(Ordering::Relaxed);
        in_flight.saturating_sub(self.votes_in_group_commit.load(Ordering::Relaxed))
    }

    /// Counts a group-commit window closed for `why`.
    pub fn count_commit_close(&self, why: CommitClose) {
        self.group_commit_closes[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Group-commit windows closed for `why` so far.
    pub fn commit_closes(&self, why: CommitClose) -> u64 {
        self.group_commit_closes[why as usize].load(Ordering::Relaxed)
    }

    /// Observes that the `votes` of one message waited `elapsed` in `phase`.
    pub fn observe_commit_phase(
        &self,
        phase: CommitPhase,
        elapsed: std::time::Duration,
        votes: usize,
    ) {
        self.vote_commit_phases[phase as usize].observe_many(elapsed, votes as u64);
    }

    /// Records the group-commit window in use from now on.
    pub fn set_group_commit_window(&self, window: std::time::Duration) {
        let micros = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        self.group_commit_window_us.store(micros, Ordering::Relaxed);
    }

    /// Counts one answer of `status`, given by `stage`.
    pub fn count_status(&self, status: u16, stage: Stage) {
        let counter = match status {
            200..=299 => &self.requests_2xx,
            400..=499 => &self.requests_4xx,
            _ => &self.requests_5xx,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        match status {
            400..=499 => self.count_client_error(stage),
            500..=599 => {
                self.server_errors[stage as usize].fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Counts a client error that got no response of ours (`Stage::Protocol`) or one that did.
    pub fn count_client_error(&self, stage: Stage) {
        self.client_errors[stage as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one instance dropped for `reason`.
    pub fn count_discard(&self, reason: Discard) {
        self.instances_discarded[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Instances dropped for `reason` so far.
    pub fn discarded(&self, reason: Discard) -> u64 {
        self.instances_discarded[reason as usize].load(Ordering::Relaxed)
    }

    /// Client errors refused at `stage` so far.
    pub fn client_errors_at(&self, stage: Stage) -> u64 {
        self.client_errors[stage as usize].load(Ordering::Relaxed)
    }

    /// Server errors answered at `stage` so far.
    pub fn server_errors_at(&self, stage: Stage) -> u64 {
        self.server_errors[stage as usize].load(Ordering::Relaxed)
    }

    /// The labelled error and discard counters.
    fn render_labelled(&self, out: &mut String, labels: &str) {
        let stages = |counters: &[AtomicU64; Stage::COUNT], which: &[Stage]| {
            which
                .iter()
                .map(|s| (s.label(), counters[*s as usize].load(Ordering::Relaxed)))
                .collect::<Vec<_>>()
        };
        let families = [
            Family {
                name: "edgevote_edge_client_errors_total",
                help: "Client errors (4xx answers and connections refused by the HTTP layer), by who refused them. Not a fault of the edge.",
                label: "stage",
                values: stages(&self.client_errors, &Stage::ALL),
            },
            Family {
                name: "edgevote_edge_server_errors_total",
                help: "Server errors (5xx answers), by who answered them. Each one is a fault of the edge or its queue: alert on these.",
                label: "stage",
                values: stages(&self.server_errors, &[Stage::Host, Stage::Component]),
            },
            Family {
                name: "edgevote_edge_group_commit_closes_total",
                help: "Group-commit windows by why they closed: window (its time was up), full (max_votes or max_message_bytes reached), backlog_fell (a stretched window whose backlog fell below half the trigger). A closed message still takes votes while it waits for a commit slot.",
                label: "reason",
                values: CommitClose::ALL
                    .iter()
                    .map(|c| (c.label(), self.commit_closes(*c)))
                    .collect(),
            },
            Family {
                name: "edgevote_edge_instances_discarded_total",
                help: "Component instances dropped instead of reused, by reason (trap, deadline, quota).",
                label: "reason",
                values: Discard::ALL
                    .iter()
                    .map(|d| (d.label(), self.discarded(*d)))
                    .collect(),
            },
        ];
        for family in families {
            family.render(out, labels);
        }
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
                "edgevote_edge_key_switches_total",
                "Edge key switches after a rotation (the host follows the published key set and its key file).",
                &self.key_switches,
            ),
            (
                "edgevote_edge_key_expired_refusals_total",
                "Votes refused with 503 edge_key_expired: no edge key the host holds is valid for them (nothing durable, no receipt).",
                &self.votes_refused_key_expired,
            ),
            (
                "edgevote_edge_handover_mismatches_total",
                "Host sealing: ballots a component handed over that its voter did not send (refused; a faulty or hostile bundle).",
                &self.handover_mismatches,
            ),
            (
                "edgevote_edge_group_commits_total",
                "Queue messages written by group commit.",
                &self.group_commits,
            ),
            (
                "edgevote_edge_group_commit_stretches_total",
                "Times the edge counted as overloaded (most group commits of a quarter second found it behind) and stretched its group-commit window to max_wait_overloaded_ms.",
                &self.group_commit_stretches,
            ),
            (
                "edgevote_edge_group_commit_windows_stretched_total",
                "Group-commit windows that opened stretched to max_wait_overloaded_ms (the edge overloaded and, under the backlog trigger, its backlog still at least half of it).",
                &self.group_commit_stretched_windows,
            ),
            (
                "edgevote_edge_group_commits_alone_total",
                "Group commits that waited until no other commit was in flight and held every commit slot, because the batch before had waited 5 ms or more for a slot (the edge past its saturation knee).",
                &self.group_commits_alone,
            ),
            (
                "edgevote_edge_votes_spilled_total",
                "Votes fsync'd to the spill log while the queue was unavailable.",
                &self.votes_spilled,
            ),
            (
                "edgevote_edge_votes_forwarded_total",
                "Votes forwarded from the spill log to the queue.",
                &self.votes_forwarded,
            ),
            (
                "edgevote_edge_votes_queue_refused_total",
                "Votes refused with 503 because neither the queue nor a spill log took them.",
                &self.votes_queue_refused,
            ),
            // The names these counters had before they said what they count (votes, not
            // envelopes); kept so that existing dashboards and alerts go on working.
            (
                "edgevote_edge_envelopes_spilled_total",
                "Deprecated alias of edgevote_edge_votes_spilled_total.",
                &self.votes_spilled,
            ),
            (
                "edgevote_edge_envelopes_forwarded_total",
                "Deprecated alias of edgevote_edge_votes_forwarded_total.",
                &self.votes_forwarded,
            ),
            (
                "edgevote_edge_envelopes_refused_total",
                "Deprecated alias of edgevote_edge_votes_queue_refused_total.",
                &self.votes_queue_refused,
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
            (
                "edgevote_edge_accept_errors_total",
                "Failed accepts; out of descriptors or buffers, the accept loop pauses (5 ms doubling to 1 s).",
                &self.accept_errors,
            ),
            (
                "edgevote_edge_http2_connections_total",
                "Connections that opened with the HTTP/2 preface (prior knowledge); the rest speak HTTP/1.",
                &self.http2_connections,
            ),
        ];
        self.render_labelled(&mut out, &labels);
        for (name, help, counter) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(
                out,
                "{name}{{{labels}}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP edgevote_edge_connections_open Connections open now (at most http.max_connections).\n\
             # TYPE edgevote_edge_connections_open gauge\n\
             edgevote_edge_connections_open{{{labels}}} {}",
            self.connections_open.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP edgevote_edge_votes_in_flight Vote requests received and not yet answered.\n\
             # TYPE edgevote_edge_votes_in_flight gauge\n\
             edgevote_edge_votes_in_flight{{{labels}}} {}",
            self.votes_in_flight.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP edgevote_edge_votes_in_group_commit Votes handed to group commit and not yet committed or refused.\n\
             # TYPE edgevote_edge_votes_in_group_commit gauge\n\
             edgevote_edge_votes_in_group_commit{{{labels}}} {}",
            self.votes_in_group_commit.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP edgevote_edge_group_commit_window_seconds The group-commit window now: max_wait_ms, or max_wait_overloaded_ms while the edge is overloaded.\n\
             # TYPE edgevote_edge_group_commit_window_seconds gauge\n\
             edgevote_edge_group_commit_window_seconds{{{labels}}} {}",
            self.group_commit_window_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        self.vote_latency.render(
            &mut out,
            "edgevote_edge_vote_seconds",
            "Time from a vote request's head to its answer's head (a receipt or a refusal): what voters wait, less the network.",
            &labels,
        );
        self.queue_send_latency.render(
            &mut out,
            "edgevote_edge_queue_send_seconds",
            "Latency of the queue sends of group commit (one per queue message), answered or failed.",
            &labels,
        );
        self.group_commit_latency.render(
            &mut out,
            "edgevote_edge_group_commit_seconds",
            "Time from a group commit's first vote to its outcome (window, commit slot, sealing, queue send): the longest wait of its votes before their receipts.",
            &labels,
        );
        self.vote_commit_latency.render(
            &mut out,
            "edgevote_edge_vote_commit_seconds",
            "Per vote, time from its hand-over to group commit to its outcome (window, commit slot, sealing, queue send), whatever the outcome: the part of edgevote_edge_vote_seconds spent in group commit.",
            &labels,
        );
        let name = "edgevote_edge_vote_commit_phase_seconds";
        edgevote_shared::histogram::render_header(
            &mut out,
            name,
            "Per vote, time its group commit spent past its window's deadline, by phase: the window closing late (the committer resumed late), waiting for a commit slot, sealing, storing (queue send or spill); observed once per vote of the message.",
        );
        for phase in CommitPhase::ALL {
            let series_labels = format!("{labels},phase=\"{}\"", phase.label());
            self.vote_commit_phases[phase as usize].render_series(&mut out, name, &series_labels);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ALL` lists the variants in the order of their discriminants, which index the counters.
    #[test]
    fn labelled_variants_index_their_counters() {
        for (i, stage) in Stage::ALL.iter().enumerate() {
            assert_eq!(*stage as usize, i, "{}", stage.label());
        }
        for (i, discard) in Discard::ALL.iter().enumerate() {
            assert_eq!(*discard as usize, i, "{}", discard.label());
        }
        for (i, phase) in CommitPhase::ALL.iter().enumerate() {
            assert_eq!(*phase as usize, i, "{}", phase.label());
        }
        for (i, close) in CommitClose::ALL.iter().enumerate() {
            assert_eq!(*close as usize, i, "{}", close.label());
        }
        assert_eq!(
            (
                Stage::COUNT,
                Discard::COUNT,
                CommitPhase::COUNT,
                CommitClose::COUNT
            ),
            (3, 3, 4, 3)
        );
    }
}
