//! A latency histogram of fixed buckets, counted with atomics and rendered in the Prometheus
//! text exposition format: what the edge host and the collector use for the latencies ops
//! watch (queue sends, group commits, store calls). One set of bucket bounds for all of them,
//! so that a dashboard compares them bucket by bucket.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, seconds (Prometheus `le`); a `+Inf` bucket follows them.
pub const LATENCY_BOUNDS_SECS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// Observations per bucket (not cumulative: one increment an observation), their count and
/// their sum. Bounded by construction: a fixed number of counters whatever is observed.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// `buckets[i]`: observations above `LATENCY_BOUNDS_SECS[i - 1]` and at most
    /// `LATENCY_BOUNDS_SECS[i]`; the last one holds those above every bound.
    buckets: [AtomicU64; LATENCY_BOUNDS_SECS.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl LatencyHistogram {
    /// Counts one observation.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BOUNDS_SECS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BOUNDS_SECS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_us.fetch_add(micros, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Appends the histogram as `name` (with `_bucket`, `_sum`, `_count` series) to `out`;
    /// `labels` is the label list without braces (`region="r1"`), put on every series.
    pub fn render(&self, out: &mut String, name: &str, help: &str, labels: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BOUNDS_SECS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        // `+Inf` from the buckets, not from `count`: a scrape between an observation's two
        // increments must still show a cumulative series that never decreases.
        cumulative += self.buckets[LATENCY_BOUNDS_SECS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// The upper bound, seconds, of the bucket holding quantile `q` (0..=1) of a histogram given
/// as cumulative `(le, count)` pairs in rising `le` order (`f64::INFINITY` for `+Inf`), as read
/// back from a scrape. `None` without observations; infinity when the quantile lies above
/// every finite bound.
pub fn quantile_upper_bound(cumulative: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = cumulative.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * total).ceil().max(1.0);
    cumulative
        .iter()
        .find(|(_, count)| *count >= rank)
        .map(|(le, _)| *le)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = LatencyHistogram::default();
        for d in [Duration::from_micros(300), ms(1), ms(3), ms(3), ms(7_000)] {
            h.observe(d);
        }
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "X.", "region=\"r1\"");
        assert!(out.contains("# TYPE x_seconds histogram\n"), "{out}");
        assert!(
            out.contains("x_seconds_bucket{region=\"r1\",le=\"0.0005\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{region=\"r1\",le=\"0.001\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{region=\"r1\",le=\"0.0025\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{region=\"r1\",le=\"0.005\"} 4\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{region=\"r1\",le=\"5\"} 4\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{region=\"r1\",le=\"+Inf\"} 5\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_sum{region=\"r1\"} 7.0073\n"),
            "{out}"
        );
        assert!(out.contains("x_seconds_count{region=\"r1\"} 5\n"), "{out}");
        assert_eq!(h.count(), 5);
    }

    #[test]
    fn quantiles_name_the_bucket_that_holds_them() {
        let buckets = [
            (0.001, 90.0),
            (0.005, 99.0),
            (0.01, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert_eq!(quantile_upper_bound(&buckets, 0.5), Some(0.001));
        assert_eq!(quantile_upper_bound(&buckets, 0.99), Some(0.005));
        assert_eq!(quantile_upper_bound(&buckets, 0.999), Some(0.01));
        assert_eq!(quantile_upper_bound(&buckets, 1.0), Some(0.01));
        let slow = [(0.001, 0.0), (f64::INFINITY, 3.0)];
        assert_eq!(quantile_upper_bound(&slow, 0.5), Some(f64::INFINITY));
        assert_eq!(
            quantile_upper_bound(&[(0.001, 0.0), (f64::INFINITY, 0.0)], 0.5),
            None
        );
        assert_eq!(quantile_upper_bound(&[], 0.5), None);
    }
}
