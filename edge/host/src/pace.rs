//! The group-commit window: short while the edge keeps up, stretched while it is overloaded.
//!
//! A vote waits in group commit for the window (`max_wait_ms`, 2 ms by default), then for a
//! commit slot, its sealing and the queue send. Call that second part, plus how late the
//! window's timer fired, the commit's *lag*. While an edge keeps up, the lag is a few
//! milliseconds. When it cannot keep up (its cores are saturated, or the queue is slow), the
//! lag of most commits grows to tens of milliseconds: its voters already wait far longer than
//! the window, and each message's fixed cost (the queue send here; a receive, a store write, a
//! log append and a delete downstream) is what the overloaded edge can least afford. So when
//! most commits of a period lagged `overload_lag_ms` or more, the window stretches to
//! `max_wait_overloaded_ms` and each message carries more votes; it comes back after a period
//! in which most commits lagged less than half of that.
//!
//! The lag leaves the window out, so a stretched window does not hold the edge in overload.
//! A majority of a period's commits decides, so a stall of a coping edge (a page-cache flush, a
//! slow fsync: a few commits of 100 ms among hundreds of quick ones) does not stretch the
//! window for its voters. An edge that finished no commit for a whole period is not
//! overloaded, whatever it was before: the first votes after a lull get the short window.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::GroupCommitConfig;

/// How often the edge's state is decided: long enough to hold many commits at the short
/// window (a stall of 150 ms stays a minority), short enough to react within a second.
pub const PERIOD: Duration = Duration::from_millis(250);
/// Fewest commits a period needs to decide anything (a near-idle edge keeps its state).
const MIN_COMMITS_PER_PERIOD: u32 = 4;

/// The window group commit waits for more votes, by how its recent commits lagged.
#[derive(Debug)]
pub struct Pace {
    normal: Duration,
    /// The stretched window; `None`: stretching is off.
    stretched: Option<Duration>,
    /// Lag at or above which a commit counts as lagging.
    enter: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    overloaded: bool,
    /// When the last commit finished.
    last_commit: Option<Instant>,
    period_start: Option<Instant>,
    commits: u32,
    /// Commits of this period that lagged: at least `enter` while not overloaded, at least
    /// half of it while overloaded.
    lagging: u32,
}

/// A change of the edge's state that a period of commits caused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shift {
    /// The edge fell behind: the window is stretched from now on.
    Overloaded {
        /// Commits of the deciding period that lagged the threshold or more.
        lagging: u32,
        /// All commits of the deciding period.
        commits: u32,
    },
    /// The edge caught up: the window is back to `max_wait_ms`.
    Recovered {
        /// Commits of the deciding period that still lagged half the threshold or more.
        lagging: u32,
        /// All commits of the deciding period.
        commits: u32,
    },
}

impl Pace {
    /// The pace of `config`: its window, its stretched window and its overload threshold.
    pub fn new(config: &GroupCommitConfig) -> Self {
        Pace {
            normal: config.max_wait(),
            stretched: config.stretched_wait(),
            enter: Duration::from_millis(config.overload_lag_ms),
            state: Mutex::new(State::default()),
        }
    }

    /// The window for a batch opening at `now`.
    pub fn window(&self, now: Instant) -> Duration {
        match self.stretched {
            Some(stretched) if self.is_overloaded(now) => stretched,
            _ => self.normal,
        }
    }

    /// Whether the edge counts as overloaded at `now` (never after a lull of a period).
    pub fn is_overloaded(&self, now: Instant) -> bool {
        let state = self.lock();
        state.overloaded && !state.lull_before(now)
    }

    /// Counts one commit's lag (timer lateness + slot wait + sealing + send), finished at
    /// `now`; at the end of a period, decides the state. Returns the shift it caused, if any.
    pub fn observe_lag(&self, lag: Duration, now: Instant) -> Option<Shift> {
        self.stretched?; // stretching is off: nothing to decide
        let mut state = self.lock();
        if state.lull_before(now) {
            // Nothing finished for a period: whatever was measured before is stale.
            let was_overloaded = state.overloaded;
            *state = State::fresh(now);
            if was_overloaded {
                return Some(Shift::Recovered {
                    lagging: 0,
                    commits: 0,
                });
            }
        }
        state.last_commit = Some(now);
        let start = *state.period_start.get_or_insert(now);
        let threshold = if state.overloaded {
            self.enter / 2
        } else {
            self.enter
        };
        state.commits += 1;
        state.lagging += u32::from(lag >= threshold);
        if now.saturating_duration_since(start) < PERIOD || state.commits < MIN_COMMITS_PER_PERIOD {
            return None;
        }
        let (commits, lagging) = (state.commits, state.lagging);
        state.period_start = Some(now);
        state.commits = 0;
        state.lagging = 0;
        let most_lagged = lagging * 2 > commits;
        let shift = match (state.overloaded, most_lagged) {
            (false, true) => Shift::Overloaded { lagging, commits },
            (true, false) => Shift::Recovered { lagging, commits },
            _ => return None,
        };
        state.overloaded = !state.overloaded;
        Some(shift)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a flag and counters, each always valid: a panic elsewhere (there is
        // no code that can panic under this lock) would leave it usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// A state with nothing measured yet, its period starting at `now`.
    fn fresh(now: Instant) -> State {
        State {
            overloaded: false,
            last_commit: Some(now),
            period_start: Some(now),
            commits: 0,
            lagging: 0,
        }
    }

    /// Whether no commit finished in the period before `now`.
    fn lull_before(&self, now: Instant) -> bool {
        self.last_commit
            .is_some_and(|last| now.saturating_duration_since(last) >= PERIOD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pace(max_wait_ms: u64, overloaded_ms: u64, overload_lag_ms: u64) -> Pace {
        Pace::new(&GroupCommitConfig {
            max_wait_ms,
            max_wait_overloaded_ms: overloaded_ms,
            overload_lag_ms,
            ..GroupCommitConfig::default()
        })
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A clock the tests move by hand.
    struct Clock(Instant);

    impl Clock {
        /// Feeds `count` commits of `lag`, `every` apart; returns the shifts they caused.
        fn feed(&mut self, pace: &Pace, lag: Duration, every: Duration, count: u32) -> Vec<Shift> {
            (0..count)
                .filter_map(|_| {
                    self.0 += every;
                    pace.observe_lag(lag, self.0)
                })
                .collect()
        }
    }

    fn clock() -> Clock {
        Clock(Instant::now())
    }

    #[test]
    fn an_edge_that_keeps_up_keeps_the_short_window() {
        let (pace, mut clock) = (pace(2, 50, 20), clock());
        assert!(clock.feed(&pace, ms(4), ms(3), 10_000).is_empty());
        assert_eq!(pace.window(clock.0), ms(2));
    }

    #[test]
    fn a_sustained_lag_stretches_the_window_and_it_comes_back_when_the_lag_falls() {
        let (pace, mut clock) = (pace(2, 50, 20), clock());
        let shifts = clock.feed(&pace, ms(60), ms(10), 30);
        assert!(
            matches!(shifts.as_slice(), [Shift::Overloaded { lagging, commits }] if lagging == commits),
            "{shifts:?}"
        );
        assert_eq!(pace.window(clock.0), ms(50));
        // At or above half the threshold the edge stays overloaded (no flapping).
        assert!(clock.feed(&pace, ms(12), ms(50), 100).is_empty());
        assert_eq!(pace.window(clock.0), ms(50));
        let shifts = clock.feed(&pace, ms(3), ms(50), 10);
        assert!(
            matches!(shifts.as_slice(), [Shift::Recovered { lagging: 0, .. }]),
            "{shifts:?}"
        );
        assert_eq!(pace.window(clock.0), ms(2));
    }

    /// A coping edge has stalls: every second, 150 ms in which a few commits lag 150 ms among
    /// quick ones (as seen at mid rates on 2 cores). They must not stretch the window.
    #[test]
    fn a_stall_of_a_coping_edge_does_not_stretch_the_window() {
        let (pace, mut clock) = (pace(2, 50, 20), clock());
        for _ in 0..50 {
            assert!(clock.feed(&pace, ms(3), ms(3), 280).is_empty());
            assert!(clock.feed(&pace, ms(150), ms(25), 6).is_empty());
        }
        assert_eq!(pace.window(clock.0), ms(2));
    }

    #[test]
    fn a_near_idle_edge_decides_nothing_from_a_few_commits() {
        let (pace, mut clock) = (pace(2, 50, 20), clock());
        // One slow commit per period: never enough commits to decide.
        assert!(clock.feed(&pace, ms(500), ms(300), 1).is_empty());
        assert!(clock.feed(&pace, ms(500), PERIOD / 2, 2).is_empty());
        assert!(!pace.is_overloaded(clock.0));
    }

    #[test]
    fn stretching_is_off_when_the_windows_are_equal_or_the_threshold_is_zero() {
        for pace in [pace(2, 2, 20), pace(2, 50, 0), pace(10, 5, 20)] {
            let mut clock = clock();
            assert!(clock.feed(&pace, ms(500), ms(10), 1_000).is_empty());
            assert!(!pace.is_overloaded(clock.0));
        }
        // A stretched window shorter than the normal one never shortens it.
        assert_eq!(pace(10, 5, 20).window(Instant::now()), ms(10));
    }

    /// After a burst that overloaded the edge and a lull (the queues drain, voters pause), the
    /// first votes get the short window, and the next commit says the edge recovered.
    #[test]
    fn a_lull_ends_the_overload() {
        let (pace, mut clock) = (pace(2, 50, 20), clock());
        assert_eq!(clock.feed(&pace, ms(60), ms(10), 30).len(), 1);
        assert_eq!(pace.window(clock.0), ms(50));
        clock.0 += PERIOD;
        assert_eq!(
            pace.window(clock.0),
            ms(2),
            "the first batch after the lull"
        );
        let shifts = clock.feed(&pace, ms(3), ms(3), 1);
        assert_eq!(
            shifts,
            [Shift::Recovered {
                lagging: 0,
                commits: 0
            }]
        );
        assert!(clock.feed(&pace, ms(3), ms(3), 1_000).is_empty());
        assert_eq!(pace.window(clock.0), ms(2));
    }
}
