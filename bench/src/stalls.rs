//! Stretches of a step in which the stack answered slowly: the ack latencies grouped by the
//! [`WINDOW_MS`] window their votes were scheduled in.
//!
//! A step's p99 is its slowest 1%. At 2,000 votes/s over 6 s that is 120 votes: one stretch of
//! 300 ms in which every vote waits (a stall of the whole process) makes it alone, while the
//! other 5.7 s may answer every vote in under 10 ms. The windows tell the two apart: a tail
//! spread over the step leaves every window's median low; a stall shows as a few windows whose
//! median is high, and when they were.

/// Width of a window, milliseconds.
pub const WINDOW_MS: u64 = 100;
/// A window whose median ack latency is above this is slow, milliseconds.
pub const SLOW_MEDIAN_MS: f64 = 15.0;
/// Windows with fewer votes are not judged (too few for a median).
const MIN_VOTES: usize = 5;
/// Most windows kept: a step longer than this many windows has its later votes left out.
const MAX_WINDOWS: usize = 100_000;

/// The ack latencies of a step, microseconds, by window of scheduled send time.
#[derive(Debug, Default)]
pub struct WindowedLatency {
    windows: Vec<Vec<u32>>,
}

impl WindowedLatency {
    /// Records a vote scheduled `scheduled_ms` after the step's start and acknowledged
    /// `latency_us` after its scheduled time.
    pub fn record(&mut self, scheduled_ms: u64, latency_us: u64) {
        let Ok(window) = usize::try_from(scheduled_ms / WINDOW_MS) else {
            return;
        };
        if window >= MAX_WINDOWS {
            return;
        }
        if self.windows.len() <= window {
            self.windows.resize_with(window + 1, Vec::new);
        }
        self.windows[window].push(u32::try_from(latency_us).unwrap_or(u32::MAX));
    }

    /// The step's slow windows.
    pub fn stalls(&self) -> Stalls {
        let mut stalls = Stalls::default();
        for (index, latencies) in self.windows.iter().enumerate() {
            if latencies.len() < MIN_VOTES {
                continue;
            }
            let mut sorted = latencies.clone();
            sorted.sort_unstable();
            let median_ms = f64::from(sorted[sorted.len() / 2]) / 1000.0;
            stalls.windows += 1;
            if median_ms > SLOW_MEDIAN_MS {
                stalls.slow_windows += 1;
            }
            if median_ms > stalls.worst_median_ms {
                stalls.worst_median_ms = median_ms;
                stalls.worst_at_ms = index as u64 * WINDOW_MS;
            }
        }
        stalls
    }
}

/// What the windows of one step show.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Stalls {
    /// Windows with enough votes to judge.
    pub windows: usize,
    /// Of those, windows whose median ack latency was above [`SLOW_MEDIAN_MS`].
    pub slow_windows: usize,
    /// The highest median of a window, milliseconds.
    pub worst_median_ms: f64,
    /// When that window started, milliseconds after the step's first scheduled send.
    pub worst_at_ms: u64,
}

impl Stalls {
    /// The step line's words for them.
    pub fn describe(&self) -> String {
        format!(
            "{} of {} {WINDOW_MS} ms windows with a median over {SLOW_MEDIAN_MS:.0} ms, the worst {:.1} ms at {:.1} s",
            self.slow_windows,
            self.windows,
            self.worst_median_ms,
            self.worst_at_ms as f64 / 1000.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step of `seconds` at 200 votes/s (20 per window), every vote answered in `fast_us`
    /// but those scheduled from `stall.0` (inclusive) to `stall.1` ms, answered in `slow_us`.
    fn step(seconds: u64, fast_us: u64, stall: (u64, u64), slow_us: u64) -> WindowedLatency {
        let mut windows = WindowedLatency::default();
        for vote in 0..seconds * 200 {
            let at_ms = vote * 5;
            let stalled = (stall.0..stall.1).contains(&at_ms);
            windows.record(at_ms, if stalled { slow_us } else { fast_us });
        }
        windows
    }

    #[test]
    fn a_stall_shows_as_its_windows_and_when_it_was() {
        let stalls = step(6, 4_000, (2_300, 2_600), 60_000).stalls();
        assert_eq!(stalls.windows, 60);
        assert_eq!(stalls.slow_windows, 3, "2.3 s to 2.6 s");
        assert_eq!(stalls.worst_median_ms, 60.0);
        assert_eq!(stalls.worst_at_ms, 2_300);
    }

    #[test]
    fn a_tail_spread_over_the_step_has_no_slow_window() {
        let mut windows = WindowedLatency::default();
        for vote in 0..1_200u64 {
            // One vote in ten slow, in every window: a p99 far above the medians.
            let latency_us = if vote % 10 == 0 { 80_000 } else { 5_000 };
            windows.record(vote * 5, latency_us);
        }
        let stalls = windows.stalls();
        assert_eq!((stalls.windows, stalls.slow_windows), (60, 0));
        assert_eq!(stalls.worst_median_ms, 5.0);
    }

    #[test]
    fn sparse_windows_are_not_judged_and_far_ones_not_kept() {
        let mut windows = WindowedLatency::default();
        for _ in 0..MIN_VOTES - 1 {
            windows.record(50, 900_000);
        }
        windows.record(MAX_WINDOWS as u64 * WINDOW_MS, 900_000);
        assert_eq!(windows.stalls(), Stalls::default());
        assert_eq!(
            windows.windows.len(),
            1,
            "a vote past the last window is left out"
        );
    }
}
