//! The group-commit window: short while the edge keeps up, stretched while it is overloaded.
//!
//! A vote waits in group commit for the window (`max_wait_ms`, 2 ms by default), then for a
//! commit slot, its sealing and the queue send. When the edge cannot keep up (its cores are
//! saturated, or the queue is slow), its voters already wait far longer than the window, and
//! each message's fixed cost (the queue send here; a receive, a store write, a log append and a
//! delete downstream) is what the overloaded edge can least afford. So when most commits of a
//! period find the edge *behind* (under the backlog trigger, also as soon as a run of
//! [`FAST_ENTRY_COMMITS`] commits spanning [`FAST_ENTRY_SPAN`] does), the window stretches to
//! `max_wait_overloaded_ms` and each message carries more votes; it comes back after a period
//! in which most commits found it less than half as far behind. Behind means one of (config
//! picks which):
//! - `overload_backlog_votes`: the edge's *backlog* was at least that many votes when the
//!   commit finished: vote requests received and not yet in group commit, i.e. waiting for a
//!   connection task, an instance, the component or the host's checks, which is where votes
//!   pile up when the cores cannot keep up. Votes in group commit are left out, so a
//!   stretched window (which holds more of them) does not hold the edge in overload;
//! - `overload_lag_ms`: the commit *lagged* at least that long: how late the window's timer
//!   fired, plus the wait for a commit slot, sealing and the queue send (the window itself
//!   left out, so a stretched window does not hold the edge in overload). Measured, this also
//!   fires near the knee, where the edge still copes but slowly (README, Performance).
//!
//! A majority of a period's commits decides, so a stall of a coping edge (a page-cache flush, a
//! slow fsync: a few slow commits among hundreds of quick ones) does not stretch the
//! window for its voters. An edge that finished no commit for a whole period is not
//! overloaded, whatever it was before: the first votes after a lull get the short window.
//! Under the backlog trigger, an overloaded edge also opens each stretched window only while
//! its backlog is still at least half the trigger ([`Pace::batch_window`]), and group commit
//! closes an open one at the first arrival that finds it below ([`Pace::backlog_lasts`]), so
//! that voters do not wait the long window during the period that tells the edge it has
//! caught up.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::GroupCommitConfig;

/// How often the edge's state is decided: long enough to hold many commits at the short
/// window (a stall of 150 ms stays a minority), short enough to react within a second.
pub const PERIOD: Duration = Duration::from_millis(250);
/// Fewest commits a period needs to decide anything (a near-idle edge keeps its state).
const MIN_COMMITS_PER_PERIOD: u32 = 4;
/// Under the backlog trigger, commits in a row that find the edge behind, spanning at least
/// [`FAST_ENTRY_SPAN`], that make it overloaded at once, before its period ends: when a load
/// beyond the edge's cores arrives, every commit finds the backlog growing, and waiting out
/// the period (up to two, as the first still holds the quick commits from before the load)
/// sent about half of a saturated 2-second step's messages at the short window (measured
/// on 2 cores: 20 to 30 of each edge's 53 to 62; overloaded after 0.55 to 0.6 s, now 0.3 to
/// 0.45 s). A stall of a coping edge does not last that many commits (its backlog drains
/// within a few), and the backlog gate ([`Pace::batch_window`]) keeps its windows short
/// once the backlog is gone anyway. The lag trigger has no such gate, so it keeps to periods.
pub const FAST_ENTRY_COMMITS: u32 = 8;
/// Shortest time the run of [`FAST_ENTRY_COMMITS`] must span: commits finishing together
/// after a stall are one event, not a sustained backlog.
pub const FAST_ENTRY_SPAN: Duration = Duration::from_millis(100);

/// The window group commit waits for more votes, by how far behind its recent commits found
/// the edge.
#[derive(Debug)]
pub struct Pace {
    normal: Duration,
    /// The stretched window; `None`: stretching is off.
    stretched: Option<Duration>,
    /// What makes a commit count as behind.
    trigger: Trigger,
    state: Mutex<State>,
}

/// When a commit counts as behind (while overloaded: at half of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// A backlog of at least this many votes.
    BacklogVotes(u64),
    /// The commit lagged at least this long.
    Lag(Duration),
}

/// What one finished commit tells the pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observation {
    /// Timer lateness + wait for a commit slot + sealing + queue send.
    pub lag: Duration,
    /// The edge's backlog when the commit finished: vote requests received and not yet in
    /// group commit.
    pub backlog_votes: u64,
}

#[derive(Debug, Default)]
struct State {
    overloaded: bool,
    /// When the last commit finished.
    last_commit: Option<Instant>,
    period_start: Option<Instant>,
    commits: u32,
    /// Commits of this period that found the edge behind (see [`Trigger`]).
    behind: u32,
    /// The run, up to now, of commits in a row that found a coping edge behind: when the
    /// first of them finished and how many (see [`FAST_ENTRY_COMMITS`]).
    run: Option<(Instant, u32)>,
}

/// A change of the edge's state that a period of commits caused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shift {
    /// The edge fell behind: the window is stretched from now on.
    Overloaded {
        /// Commits of the deciding period (or run, see [`FAST_ENTRY_COMMITS`]) that found the
        /// edge behind.
        behind: u32,
        /// All commits of the deciding period or run.
        commits: u32,
    },
    /// The edge caught up: the window is back to `max_wait_ms`.
    Recovered {
        /// Commits of the deciding period that still found it half as far behind or more.
        behind: u32,
        /// All commits of the deciding period.
        commits: u32,
    },
}

impl Pace {
    /// The pace of `config`: its window, its stretched window and its overload trigger.
    pub fn new(config: &GroupCommitConfig) -> Self {
        let trigger = if config.overload_backlog_votes > 0 {
            Trigger::BacklogVotes(config.overload_backlog_votes)
        } else {
            Trigger::Lag(Duration::from_millis(config.overload_lag_ms))
        };
        Pace {
            normal: config.max_wait(),
            stretched: config.stretched_wait(),
            trigger,
            state: Mutex::new(State::default()),
        }
    }

    /// The window of the edge's state at `now`: stretched while it counts as overloaded (what
    /// the window gauge shows).
    pub fn window(&self, now: Instant) -> Duration {
        match self.stretched {
            Some(stretched) if self.is_overloaded(now) => stretched,
            _ => self.normal,
        }
    }

    /// The window for a batch opening at `now` while the edge's backlog is `backlog_votes`:
    /// the state's, except that under the backlog trigger a stretched window opens only while
    /// the backlog is still at least half the trigger. When the load falls, the backlog
    /// empties at once while the state needs a period of commits to say so; without this,
    /// every vote of that period (a quarter second or more) would wait the stretched window
    /// on an edge that already keeps up. The lag trigger has no present-tense measure, so
    /// its windows follow the state.
    pub fn batch_window(&self, now: Instant, backlog_votes: u64) -> Duration {
        if self.backlog_lasts(backlog_votes) {
            self.window(now)
        } else {
            self.normal
        }
    }

    /// Whether a backlog of `backlog_votes` still warrants a stretched window, opening or
    /// open (group commit closes an open one early when an arrival finds it gone): under the
    /// backlog trigger, at least half the trigger; the lag trigger has no present-tense
    /// measure, so always.
    pub fn backlog_lasts(&self, backlog_votes: u64) -> bool {
        match self.trigger {
            Trigger::BacklogVotes(enter) => backlog_votes >= (enter / 2).max(1),
            Trigger::Lag(_) => true,
        }
    }

    /// Whether the edge counts as overloaded at `now` (never after a lull of a period).
    pub fn is_overloaded(&self, now: Instant) -> bool {
        let state = self.lock();
        state.overloaded && !state.lull_before(now)
    }

    /// Counts one commit, finished at `now`; at the end of a period, decides the state.
    /// Returns the shift it caused, if any.
    pub fn observe(&self, seen: Observation, now: Instant) -> Option<Shift> {
        self.stretched?; // stretching is off: nothing to decide
        let mut state = self.lock();
        if state.lull_before(now) {
            // Nothing finished for a period: whatever was measured before is stale.
            let was_overloaded = state.overloaded;
            *state = State::fresh(now);
            if was_overloaded {
                return Some(Shift::Recovered {
                    behind: 0,
                    commits: 0,
                });
            }
        }
        state.last_commit = Some(now);
        let start = *state.period_start.get_or_insert(now);
        state.commits += 1;
        let behind_now = self.is_behind(seen, state.overloaded);
        state.behind += u32::from(behind_now);
        let run_overloads = self.count_run(&mut state, behind_now, now);
        let period_over = now.saturating_duration_since(start) >= PERIOD
            && state.commits >= MIN_COMMITS_PER_PERIOD;
        if !period_over && !run_overloads {
            return None;
        }
        // A run decides on its own commits, every one of them behind.
        let (commits, behind) = match (run_overloads, state.run) {
            (true, Some((_, run))) => (run, run),
            _ => (state.commits, state.behind),
        };
        state.period_start = Some(now);
        state.commits = 0;
        state.behind = 0;
        state.run = None;
        let most_behind = run_overloads || behind * 2 > commits;
        let shift = match (state.overloaded, most_behind) {
            (false, true) => Shift::Overloaded { behind, commits },
            (true, false) => Shift::Recovered { behind, commits },
            _ => return None,
        };
        state.overloaded = !state.overloaded;
        Some(shift)
    }

    /// Counts a commit of a coping edge into the run of those that found it behind; whether
    /// the run now makes the edge overloaded (backlog trigger only: see
    /// [`FAST_ENTRY_COMMITS`]).
    fn count_run(&self, state: &mut State, behind_now: bool, now: Instant) -> bool {
        if state.overloaded || !behind_now || !matches!(self.trigger, Trigger::BacklogVotes(_)) {
            state.run = None;
            return false;
        }
        let (first, count) = state.run.unwrap_or((now, 0));
        let count = count.saturating_add(1);
        state.run = Some((first, count));
        count >= FAST_ENTRY_COMMITS && now.saturating_duration_since(first) >= FAST_ENTRY_SPAN
    }

    /// Whether `seen` finds the edge behind: at the trigger, or at half of it while overloaded
    /// (so that it does not flap).
    fn is_behind(&self, seen: Observation, overloaded: bool) -> bool {
        let halve = |n: u64| if overloaded { n / 2 } else { n };
        match self.trigger {
            Trigger::BacklogVotes(enter) => seen.backlog_votes >= halve(enter).max(1),
            Trigger::Lag(enter) => seen.lag >= if overloaded { enter / 2 } else { enter },
        }
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
            behind: 0,
            run: None,
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
            overload_backlog_votes: 0,
            overload_lag_ms,
            ..GroupCommitConfig::default()
        })
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A commit that lagged `n` ms with no backlog.
    fn lag(n: u64) -> Observation {
        Observation {
            lag: ms(n),
            backlog_votes: 0,
        }
    }

    /// A quick commit that finished with a backlog of `n` votes.
    fn backlog(n: u64) -> Observation {
        Observation {
            lag: ms(1),
            backlog_votes: n,
        }
    }

    /// A pace stretching to 50 ms on a backlog of `votes`.
    fn pace_on_backlog(votes: u64) -> Pace {
        Pace::new(&GroupCommitConfig {
            max_wait_ms: 2,
            max_wait_overloaded_ms: 50,
            overload_backlog_votes: votes,
            ..GroupCommitConfig::default()
        })
    }

    /// A clock the tests move by hand.
    struct Clock(Instant);

    impl Clock {
        /// Feeds `count` commits that saw `seen`, `every` apart; returns the shifts they caused.
        fn feed(
            &mut self,
            pace: &Pace,
            seen: Observation,
            every: Duration,
            count: u32,
        ) -> Vec<Shift> {
            (0..count)
                .filter_map(|_| {
                    self.0 += every;
                    pace.observe(seen, self.0)
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
        assert!(clock.feed(&pace, lag(4), ms(3), 10_000).is_empty());
        assert_eq!(pace.window(clock.0), ms(2));
    }

    #[test]
    fn a_sustained_lag_stretches_the_window_and_it_comes_back_when_the_lag_falls() {
        let (pace, mut clock) = (pace(2, 50, 20), clock());
        let shifts = clock.feed(&pace, lag(60), ms(10), 30);
        assert!(
            matches!(shifts.as_slice(), [Shift::Overloaded { behind, commits }] if behind == commits),
            "{shifts:?}"
        );
        assert_eq!(pace.window(clock.0), ms(50));
        // At or above half the threshold the edge stays overloaded (no flapping).
        assert!(clock.feed(&pace, lag(12), ms(50), 100).is_empty());
        assert_eq!(pace.window(clock.0), ms(50));
        let shifts = clock.feed(&pace, lag(3), ms(50), 10);
        assert!(
            matches!(shifts.as_slice(), [Shift::Recovered { behind: 0, .. }]),
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
            assert!(clock.feed(&pace, lag(3), ms(3), 280).is_empty());
            assert!(clock.feed(&pace, lag(150), ms(25), 6).is_empty());
        }
        assert_eq!(pace.window(clock.0), ms(2));
    }

    #[test]
    fn a_near_idle_edge_decides_nothing_from_a_few_commits() {
        let (pace, mut clock) = (pace(2, 50, 20), clock());
        // One slow commit per period: never enough commits to decide.
        assert!(clock.feed(&pace, lag(500), ms(300), 1).is_empty());
        assert!(clock.feed(&pace, lag(500), PERIOD / 2, 2).is_empty());
        assert!(!pace.is_overloaded(clock.0));
    }

    #[test]
    fn stretching_is_off_when_the_windows_are_equal_or_the_threshold_is_zero() {
        for pace in [pace(2, 2, 20), pace(2, 50, 0), pace(10, 5, 20)] {
            let mut clock = clock();
            assert!(clock.feed(&pace, lag(500), ms(10), 1_000).is_empty());
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
        assert_eq!(clock.feed(&pace, lag(60), ms(10), 30).len(), 1);
        assert_eq!(pace.window(clock.0), ms(50));
        clock.0 += PERIOD;
        assert_eq!(
            pace.window(clock.0),
            ms(2),
            "the first batch after the lull"
        );
        let shifts = clock.feed(&pace, lag(3), ms(3), 1);
        assert_eq!(
            shifts,
            [Shift::Recovered {
                behind: 0,
                commits: 0
            }]
        );
        assert!(clock.feed(&pace, lag(3), ms(3), 1_000).is_empty());
        assert_eq!(pace.window(clock.0), ms(2));
    }

    #[test]
    fn a_backlog_stretches_the_window_and_it_comes_back_when_it_drains() {
        let (pace, mut clock) = (pace_on_backlog(128), clock());
        // A coping edge: a few dozen votes of backlog, slow commits or not.
        let slow_but_coping = Observation {
            lag: ms(200),
            backlog_votes: 40,
        };
        assert!(clock.feed(&pace, slow_but_coping, ms(5), 1_000).is_empty());
        assert_eq!(pace.window(clock.0), ms(2));
        let shifts = clock.feed(&pace, backlog(300), ms(5), 60);
        assert!(
            matches!(shifts.as_slice(), [Shift::Overloaded { behind, commits }] if behind == commits),
            "{shifts:?}"
        );
        assert_eq!(pace.window(clock.0), ms(50));
        // Half the trigger or more keeps it stretched (no flapping).
        assert!(clock.feed(&pace, backlog(64), ms(20), 100).is_empty());
        // The period that decides may still hold a few of those commits.
        let shifts = clock.feed(&pace, backlog(63), ms(20), 20);
        assert!(
            matches!(shifts.as_slice(), [Shift::Recovered { behind, commits }] if behind * 2 <= *commits),
            "{shifts:?}"
        );
        assert_eq!(pace.window(clock.0), ms(2));
    }

    /// A load beyond the edge's cores: every commit finds the backlog at the trigger. The edge
    /// is overloaded after [`FAST_ENTRY_COMMITS`] of them spanning [`FAST_ENTRY_SPAN`], not at
    /// the end of a period that began with quick commits.
    #[test]
    fn a_sustained_backlog_overloads_the_edge_before_its_period_ends() {
        let (pace, mut clock) = (pace_on_backlog(64), clock());
        // The period's first commits came before the load: quick, no backlog.
        assert!(clock.feed(&pace, backlog(0), ms(5), 10).is_empty());
        let every = FAST_ENTRY_SPAN / (FAST_ENTRY_COMMITS - 2);
        let shifts = clock.feed(&pace, backlog(200), every, FAST_ENTRY_COMMITS - 1);
        assert!(shifts.is_empty(), "{shifts:?}");
        let shifts = clock.feed(&pace, backlog(200), every, 1);
        assert!(
            matches!(shifts.as_slice(), [Shift::Overloaded { behind, commits }]
                if *behind == FAST_ENTRY_COMMITS && *commits == FAST_ENTRY_COMMITS),
            "{shifts:?}"
        );
        assert_eq!(pace.window(clock.0), ms(50));
    }

    /// A commit that finds no backlog breaks the run (here the quick commits are twice as many
    /// as the others, so no period decides either); a run of the lag trigger decides nothing
    /// before its period ends.
    #[test]
    fn only_an_unbroken_run_of_the_backlog_trigger_overloads_the_edge_early() {
        let every = FAST_ENTRY_SPAN / (FAST_ENTRY_COMMITS - 2);
        let (backlogged, mut clock) = (pace_on_backlog(64), clock());
        for _ in 0..20 {
            let shifts = clock.feed(&backlogged, backlog(200), every, FAST_ENTRY_COMMITS - 1);
            assert!(shifts.is_empty(), "{shifts:?}");
            let quick = clock.feed(&backlogged, backlog(0), every, 2 * FAST_ENTRY_COMMITS);
            assert!(quick.is_empty(), "{quick:?}");
        }
        let (lagging, mut clock) = (pace(2, 50, 20), clock);
        assert!(clock.feed(&lagging, lag(3), ms(5), 10).is_empty());
        assert!(
            clock
                .feed(&lagging, lag(60), every, FAST_ENTRY_COMMITS + 2)
                .is_empty()
        );
    }

    /// Commits that finish together after a stall (each finding its backlog) are one event:
    /// a run shorter than [`FAST_ENTRY_SPAN`] does not overload the edge.
    #[test]
    fn commits_bunched_after_a_stall_do_not_overload_the_edge() {
        let (pace, mut clock) = (pace_on_backlog(64), clock());
        for _ in 0..20 {
            assert!(clock.feed(&pace, backlog(0), ms(5), 30).is_empty());
            let bunched = clock.feed(&pace, backlog(300), ms(1), 3 * FAST_ENTRY_COMMITS);
            assert!(bunched.is_empty(), "{bunched:?}");
            assert!(clock.feed(&pace, backlog(0), ms(5), 60).is_empty());
        }
        assert!(!pace.is_overloaded(clock.0));
    }

    /// The load falls from overload to half: the backlog empties at once, and the very next
    /// batch gets the short window although the state needs a period of commits to recover.
    #[test]
    fn an_overloaded_edge_whose_backlog_emptied_opens_short_windows_at_once() {
        let (pace, mut clock) = (pace_on_backlog(128), clock());
        assert_eq!(clock.feed(&pace, backlog(300), ms(5), 60).len(), 1);
        assert!(pace.is_overloaded(clock.0));
        assert_eq!(pace.batch_window(clock.0, 300), ms(50));
        assert_eq!(pace.batch_window(clock.0, 64), ms(50), "half the trigger");
        assert_eq!(pace.batch_window(clock.0, 63), ms(2));
        assert_eq!(pace.batch_window(clock.0, 0), ms(2));
        // The state (and the gauge) still say overloaded until a period of commits decides.
        assert_eq!(pace.window(clock.0), ms(50));
        // A backlog never stretches the window of an edge that is not overloaded.
        let fresh = pace_on_backlog(128);
        assert_eq!(fresh.batch_window(clock.0, 10_000), ms(2));
    }

    /// The lag trigger has no present-tense measure: its windows follow the state.
    #[test]
    fn under_the_lag_trigger_the_batch_window_is_the_state_window() {
        let (pace, mut clock) = (pace(2, 50, 20), clock());
        assert_eq!(clock.feed(&pace, lag(60), ms(10), 30).len(), 1);
        assert_eq!(pace.batch_window(clock.0, 0), ms(50));
    }

    /// A burst of a coping edge (a stall: 150 ms in which the backlog peaks) among quick
    /// commits stays a minority of its periods.
    #[test]
    fn a_brief_backlog_of_a_coping_edge_does_not_stretch_the_window() {
        let (pace, mut clock) = (pace_on_backlog(128), clock());
        for _ in 0..50 {
            assert!(clock.feed(&pace, backlog(15), ms(3), 280).is_empty());
            assert!(clock.feed(&pace, backlog(200), ms(25), 6).is_empty());
        }
        assert_eq!(pace.window(clock.0), ms(2));
    }
}
