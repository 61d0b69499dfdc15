//! The stack's own counters, read from every region's edge and collector `/metrics`
//! (Prometheus text): the same numbers a dashboard sees, for an in-process stack and for one
//! started elsewhere (`--up DIR`) alike.

use std::collections::BTreeMap;

use edgevote_shared::histogram::{LATENCY_BOUNDS_SECS, quantile_upper_bound};
use edgevote_stack::StackInfo;
use edgevote_stack::client::Conn;

use crate::BenchError;

/// Largest `/metrics` answer read (a few KiB per region; this bounds a broken one).
const MAX_METRICS_BYTES: usize = 1024 * 1024;

/// Cumulative counts of a latency histogram's buckets (`le` of
/// [`LATENCY_BOUNDS_SECS`], then `+Inf`), summed over every region.
pub type Buckets = [f64; LATENCY_BOUNDS_SECS.len() + 1];

/// The counters the bench reads, summed over every region.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    /// Votes the edges made durable in their queues (`edgevote_edge_votes_committed_total`).
    pub votes_committed: f64,
    /// Queue messages the edges wrote (`edgevote_edge_group_commits_total`).
    pub messages_sent: f64,
    /// Times an edge stretched its group-commit window, overloaded
    /// (`edgevote_edge_group_commit_stretches_total`).
    pub window_stretches: f64,
    /// Group-commit windows that opened stretched
    /// (`edgevote_edge_group_commit_windows_stretched_total`): each is one queue message.
    pub stretched_windows: f64,
    /// Group commits that committed alone, the batch before having waited for a slot
    /// (`edgevote_edge_group_commits_alone_total`).
    pub commits_alone: f64,
    /// Group-commit windows by why they closed, in the order of [`WINDOW_CLOSES`]
    /// (`edgevote_edge_group_commit_closes_total`).
    pub window_closes: [f64; WINDOW_CLOSES.len()],
    /// Queue messages the collectors received (`edgevote_collector_messages_received_total`).
    pub messages_received: f64,
    /// Ballots the collectors stored (`edgevote_collector_votes_stored_total`).
    pub votes_stored: f64,
    /// Ballots the collectors found already stored (`edgevote_collector_votes_duplicate_total`).
    pub votes_duplicate: f64,
    /// Store write calls of the collectors (`edgevote_collector_store_latency_seconds_count`:
    /// one `record` call, one transaction of the embedded store).
    pub store_writes: f64,
    /// Queue messages the collectors are done with: deleted once stored
    /// (`edgevote_collector_messages_deleted_total`) or dead-lettered
    /// (`edgevote_collector_messages_dead_lettered_total`).
    pub messages_deleted: f64,
    /// The edges' queue send latency (`edgevote_edge_queue_send_seconds`).
    pub queue_send: Buckets,
    /// The edges' group commit latency, first vote to outcome
    /// (`edgevote_edge_group_commit_seconds`).
    pub group_commit: Buckets,
    /// The edges' vote request latency, head to answer (`edgevote_edge_vote_seconds`).
    pub edge_vote: Buckets,
    /// The edges' per-vote time in group commit (`edgevote_edge_vote_commit_seconds`).
    pub vote_commit: Buckets,
    /// The edges' per-vote time in group commit past the window's deadline, by phase (late,
    /// slot, seal, store: `edgevote_edge_vote_commit_phase_seconds`).
    pub commit_phases: [Buckets; COMMIT_PHASES.len()],
}

/// The `phase` labels of `edgevote_edge_vote_commit_phase_seconds`, in the order of
/// [`Counters::commit_phases`].
pub const COMMIT_PHASES: [&str; 4] = ["late", "slot", "seal", "store"];

/// The `reason` labels of `edgevote_edge_group_commit_closes_total`, in the order of
/// [`Counters::window_closes`].
pub const WINDOW_CLOSES: [&str; 3] = ["window", "full", "backlog_fell"];

impl Counters {
    /// What happened between `before` and `self`.
    pub fn since(&self, before: &Counters) -> Counters {
        Counters {
            votes_committed: self.votes_committed - before.votes_committed,
            messages_sent: self.messages_sent - before.messages_sent,
            window_stretches: self.window_stretches - before.window_stretches,
            stretched_windows: self.stretched_windows - before.stretched_windows,
            commits_alone: self.commits_alone - before.commits_alone,
            window_closes: std::array::from_fn(|i| self.window_closes[i] - before.window_closes[i]),
            messages_received: self.messages_received - before.messages_received,
            votes_stored: self.votes_stored - before.votes_stored,
            votes_duplicate: self.votes_duplicate - before.votes_duplicate,
            store_writes: self.store_writes - before.store_writes,
            messages_deleted: self.messages_deleted - before.messages_deleted,
            queue_send: minus(&self.queue_send, &before.queue_send),
            group_commit: minus(&self.group_commit, &before.group_commit),
            edge_vote: minus(&self.edge_vote, &before.edge_vote),
            vote_commit: minus(&self.vote_commit, &before.vote_commit),
            commit_phases: std::array::from_fn(|i| {
                minus(&self.commit_phases[i], &before.commit_phases[i])
            }),
        }
    }

    /// Messages in the queues now: written by the edges, not yet deleted by the collectors
    /// (exact from the counters, where the collectors' depth gauge is only polled).
    pub fn queue_depth(&self) -> f64 {
        (self.messages_sent - self.messages_deleted).max(0.0)
    }
}

fn minus(after: &Buckets, before: &Buckets) -> Buckets {
    std::array::from_fn(|i| after[i] - before[i])
}

/// The upper bound, milliseconds, of the bucket that holds the 99th percentile of `buckets`;
/// `None` without observations or when it lies above every finite bound.
pub fn p99_ms(buckets: &Buckets) -> Option<f64> {
    let pairs: Vec<(f64, f64)> = LATENCY_BOUNDS_SECS
        .iter()
        .copied()
        .chain([f64::INFINITY])
        .zip(buckets.iter().copied())
        .collect();
    quantile_upper_bound(&pairs, 0.99)
        .filter(|secs| secs.is_finite())
        .map(|secs| secs * 1000.0)
}

/// The cumulative bucket counts of histogram `name` (its `_bucket` series) in a Prometheus
/// text exposition, summed over every label but `le`; buckets it does not show stay 0.
pub fn parse_buckets(text: &str, name: &str) -> Buckets {
    parse_buckets_labelled(text, name, "")
}

/// The lines of `text` whose series name is `series` and that carry `label` (`phase="slot"`;
/// empty: every series of it).
fn series_lines<'a>(
    text: &'a str,
    series: &str,
    label: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    let prefix = format!("{series}{{");
    text.lines().filter(move |line| {
        line.starts_with(&prefix)
            && (label.is_empty() || line.split(['{', ',', '}']).any(|part| part == label))
    })
}

/// [`parse_buckets`] of the series that carry `label` (`phase="slot"`; empty: every series).
pub fn parse_buckets_labelled(text: &str, name: &str, label: &str) -> Buckets {
    let mut buckets = Buckets::default();
    for line in series_lines(text, &format!("{name}_bucket"), label) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some(le) = series
            .split("le=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
        else {
            continue;
        };
        let index = if le == "+Inf" {
            Some(LATENCY_BOUNDS_SECS.len())
        } else {
            le.parse::<f64>()
                .ok()
                .and_then(|le| LATENCY_BOUNDS_SECS.iter().position(|b| *b == le))
        };
        if let (Some(index), Ok(value)) = (index, value.parse::<f64>()) {
            buckets[index] += value;
        }
    }
    buckets
}

/// Sums of every sample of each metric in a Prometheus text exposition, whatever its labels.
pub fn parse_totals(text: &str) -> BTreeMap<String, f64> {
    let mut totals = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        if let Ok(value) = value.parse::<f64>() {
            *totals.entry(name.to_owned()).or_insert(0.0) += value;
        }
    }
    totals
}

/// The sum of counter `name`'s series that carry `label` (e.g. `reason="full"`).
pub fn parse_total_labelled(text: &str, name: &str, label: &str) -> f64 {
    series_lines(text, name, label)
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// The counters of every region of `stack` now.
pub async fn counters(stack: &StackInfo) -> Result<Counters, BenchError> {
    let mut all = BTreeMap::new();
    let mut queue_send = Buckets::default();
    let mut group_commit = Buckets::default();
    let mut edge_vote = Buckets::default();
    let mut vote_commit = Buckets::default();
    let mut commit_phases = [Buckets::default(); COMMIT_PHASES.len()];
    let mut window_closes = [0.0; WINDOW_CLOSES.len()];
    for region in &stack.regions {
        for url in [&region.edge_url, &region.collector_url] {
            let text = metrics_text(url).await?;
            for (name, value) in parse_totals(&text) {
                *all.entry(name).or_insert(0.0) += value;
            }
            // Adds the series of histogram `name` that carry `label` (empty: all of them).
            let add = |sum: &mut Buckets, name, label: &str| {
                let buckets = parse_buckets_labelled(&text, name, label);
                for (total, value) in sum.iter_mut().zip(buckets) {
                    *total += value;
                }
            };
            add(&mut queue_send, "edgevote_edge_queue_send_seconds", "");
            add(&mut group_commit, "edgevote_edge_group_commit_seconds", "");
            add(&mut edge_vote, "edgevote_edge_vote_seconds", "");
            add(&mut vote_commit, "edgevote_edge_vote_commit_seconds", "");
            for (sum, phase) in commit_phases.iter_mut().zip(COMMIT_PHASES) {
                let label = format!("phase=\"{phase}\"");
                add(sum, "edgevote_edge_vote_commit_phase_seconds", &label);
            }
            for (sum, reason) in window_closes.iter_mut().zip(WINDOW_CLOSES) {
                let label = format!("reason=\"{reason}\"");
                *sum +=
                    parse_total_labelled(&text, "edgevote_edge_group_commit_closes_total", &label);
            }
        }
    }
    let get = |name: &str| all.get(name).copied().unwrap_or(0.0);
    Ok(Counters {
        votes_committed: get("edgevote_edge_votes_committed_total"),
        messages_sent: get("edgevote_edge_group_commits_total"),
        window_stretches: get("edgevote_edge_group_commit_stretches_total"),
        stretched_windows: get("edgevote_edge_group_commit_windows_stretched_total"),
        commits_alone: get("edgevote_edge_group_commits_alone_total"),
        window_closes,
        messages_received: get("edgevote_collector_messages_received_total"),
        votes_stored: get("edgevote_collector_votes_stored_total"),
        votes_duplicate: get("edgevote_collector_votes_duplicate_total"),
        store_writes: get("edgevote_collector_store_latency_seconds_count"),
        messages_deleted: get("edgevote_collector_messages_deleted_total")
            + get("edgevote_collector_messages_dead_lettered_total"),
        queue_send,
        group_commit,
        edge_vote,
        vote_commit,
        commit_phases,
    })
}

async fn metrics_text(url: &str) -> Result<String, BenchError> {
    let failed = |source: crate::BoxError| BenchError::Scrape {
        url: url.to_owned(),
        source,
    };
    let mut conn = Conn::connect(url).await.map_err(failed)?;
    let (status, body) = conn.get("/metrics", None).await.map_err(failed)?;
    if status != 200 || body.len() > MAX_METRICS_BYTES {
        return Err(failed(
            format!("/metrics answered {status} with {} bytes", body.len()).into(),
        ));
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_every_labelled_sample() {
        let text = "# HELP a_total A.\n# TYPE a_total counter\na_total{region=\"r1\"} 3\n\
                    a_total{region=\"r2\",x=\"y z\"} 4\nb_seconds_count{region=\"r1\"} 2.5\nc 1\nbroken\n";
        let totals = parse_totals(text);
        assert_eq!(totals["a_total"], 7.0);
        assert_eq!(totals["b_seconds_count"], 2.5);
        assert_eq!(totals["c"], 1.0);
        assert_eq!(totals.len(), 3);
    }

    #[test]
    fn labelled_totals_sum_only_the_series_with_that_label() {
        let text = "c_total{region=\"r1\",reason=\"full\"} 3\n\
                    c_total{region=\"r2\",reason=\"full\"} 4\n\
                    c_total{region=\"r1\",reason=\"fullest\"} 100\n\
                    c_total_other{region=\"r1\",reason=\"full\"} 100\n";
        assert_eq!(
            parse_total_labelled(text, "c_total", "reason=\"full\""),
            7.0
        );
        assert_eq!(
            parse_total_labelled(text, "c_total", "reason=\"none\""),
            0.0
        );
    }

    #[test]
    fn labelled_buckets_take_only_the_series_with_that_label() {
        let text = "h_seconds_bucket{region=\"r1\",phase=\"slot\",le=\"0.001\"} 5\n\
                    h_seconds_bucket{region=\"r1\",phase=\"seal\",le=\"0.001\"} 7\n\
                    h_seconds_bucket{region=\"r2\",phase=\"slot\",le=\"0.001\"} 1\n\
                    h_seconds_bucket{region=\"r2\",phase=\"slotted\",le=\"0.001\"} 100\n";
        assert_eq!(
            parse_buckets_labelled(text, "h_seconds", "phase=\"slot\"")[1],
            6.0
        );
        assert_eq!(
            parse_buckets_labelled(text, "h_seconds", "phase=\"seal\"")[1],
            7.0
        );
        assert_eq!(parse_buckets(text, "h_seconds")[1], 113.0);
    }

    #[test]
    fn buckets_sum_over_regions_by_le_and_give_the_p99() {
        let text = "# TYPE h_seconds histogram\n\
                    h_seconds_bucket{region=\"r1\",le=\"0.001\"} 90\n\
                    h_seconds_bucket{region=\"r1\",le=\"0.005\"} 98\n\
                    h_seconds_bucket{region=\"r1\",le=\"+Inf\"} 100\n\
                    h_seconds_bucket{region=\"r2\",le=\"0.001\"} 0\n\
                    h_seconds_bucket{region=\"r2\",le=\"0.005\"} 1\n\
                    h_seconds_bucket{region=\"r2\",le=\"+Inf\"} 1\n\
                    h_seconds_bucket{region=\"r1\",le=\"0.007\"} 1000\n\
                    h_seconds_sum{region=\"r1\"} 3\nother_bucket{le=\"0.001\"} 7\n";
        let buckets = parse_buckets(text, "h_seconds");
        assert_eq!(buckets[1], 90.0, "le=0.001");
        assert_eq!(buckets[3], 99.0, "le=0.005 over both regions");
        assert_eq!(buckets[LATENCY_BOUNDS_SECS.len()], 101.0, "+Inf");
        assert_eq!(
            buckets.iter().sum::<f64>(),
            290.0,
            "no unknown le, no other metric"
        );
        let cumulative: Buckets = std::array::from_fn(|i| match i {
            0 => 0.0,
            1 | 2 => 90.0,
            _ => 100.0,
        });
        assert_eq!(p99_ms(&cumulative), Some(5.0));
        assert_eq!(p99_ms(&Buckets::default()), None);
        let above: Buckets = std::array::from_fn(|i| {
            if i == LATENCY_BOUNDS_SECS.len() {
                4.0
            } else {
                0.0
            }
        });
        assert_eq!(p99_ms(&above), None, "above 5 s");
    }

    #[test]
    fn counters_since_and_depth() {
        let before = Counters {
            votes_committed: 10.0,
            messages_sent: 5.0,
            ..Counters::default()
        };
        let after = Counters {
            votes_committed: 30.0,
            messages_sent: 9.0,
            messages_deleted: 6.0,
            ..Counters::default()
        };
        assert_eq!(after.since(&before).votes_committed, 20.0);
        assert_eq!(after.queue_depth(), 3.0);
        assert_eq!(before.queue_depth(), 5.0);
    }
}
