//! A latency histogram of fixed buckets, counted with atomics and rendered in the Prometheus
//! text exposition format: what the edge host and the collector use for the latencies ops
//! watch (queue sends, group commits, store calls). One set of bucket bounds for all of them,
//! so that a dashboard compares them bucket by bucket.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, seconds (Prometheus `le`); a `+Inf` bucket follows them.
/// Finest between 5 and 15 ms, around the 10 ms target of a vote's acknowledgement at half
/// load: a quantile read back as its bucket's bound is off by at most 2.5 ms there.
pub const LATENCY_BOUNDS_SECS: [f64; 18] = [
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.025, 0.035, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0,
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
        self.observe_many(elapsed, 1);
    }

    /// Counts `times` observations of the same `elapsed` (one per vote of a message that
    /// waited it as a whole).
    pub fn observe_many(&self, elapsed: Duration, times: u64) {
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BOUNDS_SECS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BOUNDS_SECS.len());
        self.buckets[bucket].fetch_add(times, Ordering::Relaxed);
        self.count.fetch_add(times, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_us
            .fetch_add(micros.saturating_mul(times), Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Appends the histogram as `name` (with `_bucket`, `_sum`, `_count` series) to `out`;
    /// `labels` is the label list without braces (`region="r1"`), put on every series.
    pub fn render(&self, out: &mut String, name: &str, help: &str, labels: &str) {
        render_header(out, name, help);
        self.render_series(out, name, labels);
    }

    /// Appends only the series of [`LatencyHistogram::render`]: for one histogram of a family
    /// whose header [`render_header`] wrote once.
    pub fn render_series(&self, out: &mut String, name: &str, labels: &str) {
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

/// Appends the `# HELP` and `# TYPE` lines of histogram `name`: once per family, before the
/// series of each of its histograms ([`LatencyHistogram::render_series`]).
pub fn render_header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
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
    fn many_observations_at_once_count_as_that_many() {
        let once = LatencyHistogram::default();
        let many = LatencyHistogram::default();
        for _ in 0..3 {
            once.observe(ms(12));
        }
        many.observe_many(ms(12), 3);
        many.observe_many(ms(12), 0);
        let render = |h: &LatencyHistogram| {
            let mut out = String::new();
            h.render(&mut out, "x_seconds", "X.", "region=\"r1\"");
            out
        };
        assert_eq!(render(&once), render(&many));
        assert!(
            render(&many).contains("x_seconds_bucket{region=\"r1\",le=\"0.0125\"} 3\n"),
            "{}",
            render(&many)
        );
        assert_eq!(many.count(), 3);
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
