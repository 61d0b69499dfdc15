//! The stack's own counters, read from every region's edge and collector `/metrics`
//! (Prometheus text): the same numbers a dashboard sees, for an in-process stack and for one
//! started elsewhere (`--up DIR`) alike.

use std::collections::BTreeMap;

use edgevote_stack::StackInfo;
use edgevote_stack::client::Conn;

use crate::BenchError;

/// Largest `/metrics` answer read (a few KiB per region; this bounds a broken one).
const MAX_METRICS_BYTES: usize = 1024 * 1024;

/// The counters the bench reads, summed over every region.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    /// Votes the edges made durable in their queues (`edgevote_edge_votes_committed_total`).
    pub votes_committed: f64,
    /// Queue messages the edges wrote (`edgevote_edge_group_commits_total`).
    pub messages_sent: f64,
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
}

impl Counters {
    /// What happened between `before` and `self`.
    pub fn since(&self, before: &Counters) -> Counters {
        Counters {
            votes_committed: self.votes_committed - before.votes_committed,
            messages_sent: self.messages_sent - before.messages_sent,
            messages_received: self.messages_received - before.messages_received,
            votes_stored: self.votes_stored - before.votes_stored,
            votes_duplicate: self.votes_duplicate - before.votes_duplicate,
            store_writes: self.store_writes - before.store_writes,
            messages_deleted: self.messages_deleted - before.messages_deleted,
        }
    }

    /// Messages in the queues now: written by the edges, not yet deleted by the collectors
    /// (exact from the counters, where the collectors' depth gauge is only polled).
    pub fn queue_depth(&self) -> f64 {
        (self.messages_sent - self.messages_deleted).max(0.0)
    }
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

/// The counters of every region of `stack` now.
pub async fn counters(stack: &StackInfo) -> Result<Counters, BenchError> {
    let mut all = BTreeMap::new();
    for region in &stack.regions {
        for url in [&region.edge_url, &region.collector_url] {
            for (name, value) in parse_totals(&metrics_text(url).await?) {
                *all.entry(name).or_insert(0.0) += value;
            }
        }
    }
    let get = |name: &str| all.get(name).copied().unwrap_or(0.0);
    Ok(Counters {
        votes_committed: get("edgevote_edge_votes_committed_total"),
        messages_sent: get("edgevote_edge_group_commits_total"),
        messages_received: get("edgevote_collector_messages_received_total"),
        votes_stored: get("edgevote_collector_votes_stored_total"),
        votes_duplicate: get("edgevote_collector_votes_duplicate_total"),
        store_writes: get("edgevote_collector_store_latency_seconds_count"),
        messages_deleted: get("edgevote_collector_messages_deleted_total")
            + get("edgevote_collector_messages_dead_lettered_total"),
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
