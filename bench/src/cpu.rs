//! CPU time of the whole process, and rates measured against it.

use std::time::Instant;

/// USER_HZ on Linux: `/proc` reports CPU time in ticks of 10 ms (runs last long enough).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU seconds this process has used so far, every thread (also those that exited), user and
/// system, from `/proc/self/stat`; 0 where it cannot be read (not Linux).
pub fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces: utime and
    // stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / TICKS_PER_SEC
}

/// Operations per wall-clock second and per CPU-second of one measured run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Operations per wall-clock second.
    pub per_wall_sec: f64,
    /// Operations per CPU-second of the whole process (= per core when the work stays on one).
    pub per_cpu_sec: f64,
}

/// A stopwatch of wall-clock and process CPU time.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch {
    wall: Instant,
    cpu_secs: f64,
}

impl Stopwatch {
    /// Starts now.
    pub fn start() -> Self {
        Stopwatch {
            wall: Instant::now(),
            cpu_secs: process_cpu_seconds(),
        }
    }

    /// Wall-clock seconds and CPU seconds since the start.
    pub fn elapsed(&self) -> (f64, f64) {
        (
            self.wall.elapsed().as_secs_f64(),
            process_cpu_seconds() - self.cpu_secs,
        )
    }

    /// The rates of `count` operations done since the start.
    pub fn rate(&self, count: usize) -> Rate {
        let (wall, cpu) = self.elapsed();
        Rate {
            per_wall_sec: count as f64 / wall.max(1e-9),
            per_cpu_sec: count as f64 / cpu.max(1.0 / TICKS_PER_SEC),
        }
    }
}

/// The rates of `count` operations done by `run`.
pub fn measure(count: usize, run: impl FnOnce()) -> Rate {
    let watch = Stopwatch::start();
    run();
    watch.rate(count)
}

/// The median and the range of some rates (per CPU-second), for measurements repeated in
/// interleaved rounds so that the machine's drift hits all alike.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Spread {
    /// Median per CPU-second.
    pub median: f64,
    /// Lowest per CPU-second.
    pub min: f64,
    /// Highest per CPU-second.
    pub max: f64,
    /// Median wall-clock rate (equal to the CPU rate when the work stays on one core).
    pub wall_median: f64,
}

/// The [`Spread`] of `rates` (at least one).
pub fn spread(rates: &[Rate]) -> Spread {
    let sorted = |pick: fn(&Rate) -> f64| {
        let mut sorted: Vec<f64> = rates.iter().map(pick).collect();
        sorted.sort_by(f64::total_cmp);
        sorted
    };
    let cpu = sorted(|r| r.per_cpu_sec);
    let wall = sorted(|r| r.per_wall_sec);
    let (Some(min), Some(max)) = (cpu.first(), cpu.last()) else {
        return Spread {
            median: 0.0,
            min: 0.0,
            max: 0.0,
            wall_median: 0.0,
        };
    };
    Spread {
        median: cpu[cpu.len() / 2],
        min: *min,
        max: *max,
        wall_median: wall[wall.len() / 2],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_median_and_range() {
        let rate = |cpu: f64| Rate {
            per_wall_sec: cpu * 2.0,
            per_cpu_sec: cpu,
        };
        let s = spread(&[rate(3.0), rate(1.0), rate(2.0)]);
        assert_eq!(
            (s.median, s.min, s.max, s.wall_median),
            (2.0, 1.0, 3.0, 4.0)
        );
        assert_eq!(spread(&[]).median, 0.0);
    }

    #[test]
    fn process_cpu_time_never_goes_back() {
        let before = process_cpu_seconds();
        assert!(process_cpu_seconds() >= before);
    }
}
