//! Group commit inside one isolate: the votes of concurrent requests share one SQS message and
//! one envelope signature.
//!
//! Each request verifies its vote and joins the isolate's line with it. At most
//! [`COMMITS_IN_FLIGHT`] `SendMessage` calls run at once; a request that finds one free takes
//! the oldest waiting votes (its own among them, bounded by [`CommitBounds`] and the envelope's
//! byte bound), seals them into one envelope signed by the edge key, and sends it as one
//! message, while requests that arrive meanwhile wait for the next. A lone vote is therefore
//! sealed and sent at once, as before; under concurrent load each call carries every vote that
//! arrived during the previous one, under one signature instead of one per vote (the edge host
//! seals its group commits the same way). Every request learns its message's fate and signs its
//! receipt only once a queue took the message.
//!
//! This module is the pure state (no I/O, no time, no signatures), so it is tested on the host;
//! the Workers glue drives it and seals what [`GroupCommit::take`] hands it (see `glue.rs`).
//!
//! With one vote per message (`EDGEVOTE_BATCH_MAX_VOTES=1`) group commit is off: every vote is
//! sealed and sent at once in its own call, as many at a time as there are votes.

use std::collections::VecDeque;

use edgevote_edge_core::commit::MessageSize;
pub use edgevote_edge_core::commit::{COMMITS_IN_FLIGHT, CommitBounds};
use edgevote_shared::message;

/// Most votes waiting in one isolate; a vote past it is answered 503 at once (the isolate is
/// far behind its queue, and holding more would only hold more memory).
pub const MAX_WAITING: usize = 8 * message::MAX_ENVELOPES;

/// The isolate's line of votes `T` waiting for a `SendMessage`, each with the handle `W` its
/// request waits on.
#[derive(Debug)]
pub struct GroupCommit<T, W> {
    bounds: CommitBounds,
    waiting: VecDeque<Waiting<T, W>>,
    /// Calls taken and not finished, with when each started.
    in_flight: Vec<Call>,
    /// Longest a call can take (every queue until its timeout); one older is lost.
    call_budget_ms: u64,
    next_call: u64,
}

/// One vote in the line.
#[derive(Debug)]
struct Waiting<T, W> {
    vote: T,
    /// What the vote adds to an envelope, an upper bound.
    bytes: usize,
    waiter: W,
}

/// One `SendMessage` call in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Call {
    id: CallId,
    started_ms: u64,
}

/// Names a call taken with [`GroupCommit::take`], for [`GroupCommit::finished`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallId(u64);

/// One message to seal and send: its votes and who waits on each, in order.
#[derive(Debug)]
pub struct Flush<T, W> {
    /// The call, to report finished.
    pub call: CallId,
    /// The votes, oldest first; one envelope holds them all within the bounds.
    pub votes: Vec<T>,
    /// The request of each vote, in the same order.
    pub waiters: Vec<W>,
}

/// Why a vote could not join the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinError {
    /// [`MAX_WAITING`] votes already wait.
    Full,
    /// An envelope of this vote alone would be larger than a message may be (its bytes).
    TooLarge(usize),
}

impl<T, W> GroupCommit<T, W> {
    /// An empty line packing messages within `bounds` (checked by the configuration), whose
    /// calls take at most `call_budget_ms`.
    pub fn new(bounds: CommitBounds, call_budget_ms: u64) -> Self {
        debug_assert!(bounds.check().is_ok(), "bounds are checked with the config");
        GroupCommit {
            bounds,
            waiting: VecDeque::new(),
            in_flight: Vec::new(),
            call_budget_ms,
            next_call: 0,
        }
    }

    /// Puts `vote`, which adds at most `bytes` to an envelope, at the end of the line.
    pub fn join(&mut self, vote: T, bytes: usize, waiter: W) -> Result<(), JoinError> {
        let alone = MessageSize::default().with_vote(bytes);
        if !alone.fits(&self.bounds) {
            return Err(JoinError::TooLarge(alone.message_bytes()));
        }
        if self.waiting.len() >= MAX_WAITING {
            return Err(JoinError::Full);
        }
        self.waiting.push_back(Waiting {
            vote,
            bytes,
            waiter,
        });
        Ok(())
    }

    /// When a call is free at `now_ms` and votes wait: the next message (the oldest votes
    /// whose envelope fits the bounds), counted in flight until [`GroupCommit::finished`] or
    /// until it is older than the call budget.
    pub fn take(&mut self, now_ms: u64) -> Option<Flush<T, W>> {
        if !self.call_free(now_ms) || self.waiting.is_empty() {
            return None;
        }
        let mut votes = Vec::new();
        let mut waiters = Vec::new();
        // The edge core's account of a message's bytes, as the edge host's group commit keeps it.
        let mut size = MessageSize::default();
        while let Some(next) = self.waiting.front() {
            let grown = size.with_vote(next.bytes);
            let fits = votes.len() < self.bounds.max_votes && grown.fits(&self.bounds);
            // The first vote always fits: `join` refused any that would not alone.
            if !fits && !votes.is_empty() {
                break;
            }
            let Some(taken) = self.waiting.pop_front() else {
                break;
            };
            size = grown;
            votes.push(taken.vote);
            waiters.push(taken.waiter);
        }
        let call = CallId(self.next_call);
        self.next_call += 1;
        self.in_flight.push(Call {
            id: call,
            started_ms: now_ms,
        });
        Some(Flush {
            call,
            votes,
            waiters,
        })
    }

    /// A call taken with [`GroupCommit::take`] is over (whatever its outcome). A call already
    /// forgotten as lost changes nothing.
    pub fn finished(&mut self, call: CallId) {
        self.in_flight.retain(|c| c.id != call);
    }

    /// Forgets the calls older than the call budget at `now_ms`: their work was cancelled (the
    /// platform ends a request's `waitUntil` work after a while), and counting them would
    /// block the line for good. Returns how many.
    pub fn forget_lost(&mut self, now_ms: u64) -> usize {
        let before = self.in_flight.len();
        let budget = self.call_budget_ms;
        self.in_flight
            .retain(|c| now_ms.saturating_sub(c.started_ms) <= budget);
        before - self.in_flight.len()
    }

    /// Takes the first waiting vote whose waiter `is` out of the line (a request that gave up
    /// waiting); whether it was still waiting (not in any message).
    pub fn withdraw(&mut self, is: impl Fn(&W) -> bool) -> bool {
        match self.waiting.iter().position(|w| is(&w.waiter)) {
            Some(index) => self.waiting.remove(index).is_some(),
            None => false,
        }
    }

    /// Whoever should send next at `now_ms`: the oldest waiter, when a call is free.
    pub fn next_sender(&mut self, now_ms: u64) -> Option<&W> {
        if !self.call_free(now_ms) {
            return None;
        }
        self.waiting.front().map(|w| &w.waiter)
    }

    /// Whether a call may start at `now_ms`: fewer than [`COMMITS_IN_FLIGHT`] run (lost ones
    /// forgotten), or group commit is off (one vote per message: every vote is sent at once,
    /// as many calls as votes, which the platform's own bound on concurrent requests bounds).
    fn call_free(&mut self, now_ms: u64) -> bool {
        self.forget_lost(now_ms);
        self.bounds.max_votes == 1 || self.in_flight.len() < COMMITS_IN_FLIGHT
    }

    /// Votes waiting.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Calls in flight (lost ones included until forgotten).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgevote_edge_core::ENVELOPE_OVERHEAD_BYTES;
    use edgevote_shared::envelope::MAX_ENVELOPE_JWS_BYTES;

    /// The call budget of the tests' lines, ms.
    const BUDGET: u64 = 1_000;
    /// What one test vote adds to an envelope.
    const VOTE_BYTES: usize = 700;

    /// A line whose votes are named by their waiter's number.
    fn group(max_votes: usize, max_message_bytes: usize) -> GroupCommit<String, u32> {
        GroupCommit::new(
            CommitBounds {
                max_votes,
                max_message_bytes,
            },
            BUDGET,
        )
    }

    /// Vote `i` of `VOTE_BYTES` joins, waited on by `i`.
    fn join(g: &mut GroupCommit<String, u32>, i: u32) -> Result<(), JoinError> {
        g.join(format!("v{i}"), VOTE_BYTES, i)
    }

    #[test]
    fn a_lone_vote_is_sent_at_once_and_alone() {
        let mut g = group(128, 8192);
        join(&mut g, 1).unwrap();
        let flush = g.take(0).expect("a call is free");
        assert_eq!(
            (flush.votes, flush.waiters),
            (vec!["v1".to_owned()], vec![1])
        );
        assert_eq!((g.waiting(), g.in_flight()), (0, 1));
        assert!(g.take(0).is_none(), "nothing waits");
    }

    #[test]
    fn arrivals_during_busy_calls_share_the_next_message_in_order() {
        let mut g = group(128, 8192);
        let mut calls = Vec::new();
        for i in 0..COMMITS_IN_FLIGHT as u32 {
            join(&mut g, i).unwrap();
            calls.push(g.take(0).expect("a call is free").call);
        }
        for i in 10..15 {
            join(&mut g, i).unwrap();
        }
        assert!(g.take(0).is_none(), "every call is busy");
        assert!(g.next_sender(0).is_none());
        g.finished(calls[0]);
        assert_eq!(g.next_sender(0), Some(&10));
        let flush = g.take(0).expect("a call was freed");
        assert_eq!(flush.votes, ["v10", "v11", "v12", "v13", "v14"]);
        assert_eq!(flush.waiters, vec![10, 11, 12, 13, 14]);
    }

    #[test]
    fn a_message_keeps_to_the_vote_bound() {
        let mut g = group(3, 8192);
        for i in 0..7 {
            join(&mut g, i).unwrap();
        }
        let sizes: Vec<usize> = std::iter::from_fn(|| {
            let flush = g.take(0)?;
            g.finished(flush.call);
            Some(flush.votes.len())
        })
        .collect();
        assert_eq!(sizes, vec![3, 3, 1]);
        assert_eq!(g.in_flight(), 0);
    }

    #[test]
    fn a_message_keeps_to_the_byte_bound() {
        let mut g = group(128, 4096);
        for i in 0..5 {
            g.join(format!("v{i}"), 1000, i).unwrap();
        }
        // The envelope's overhead and three votes with two commas: 1024 + 3000 + 2 = 4026
        // bytes; a fourth would make 5027, over 4096.
        let first = g.take(0).unwrap();
        assert_eq!(first.waiters, vec![0, 1, 2]);
        let second = g.take(0).unwrap();
        assert_eq!(second.waiters, vec![3, 4]);
    }

    #[test]
    fn the_envelope_bound_applies_under_a_larger_message_bound() {
        let mut g = group(256, message::MAX_BYTES);
        let bytes = MAX_ENVELOPE_JWS_BYTES / 4;
        for i in 0..4 {
            g.join(format!("v{i}"), bytes, i).unwrap();
        }
        assert_eq!(g.take(0).unwrap().waiters, vec![0, 1, 2]);
        assert_eq!(g.take(0).unwrap().waiters, vec![3]);
    }

    #[test]
    fn a_vote_too_large_for_any_message_is_refused_and_nothing_changes() {
        let mut g = group(128, 4096);
        let bytes = 4096 - ENVELOPE_OVERHEAD_BYTES + 1;
        assert_eq!(
            g.join("big".into(), bytes, 1),
            Err(JoinError::TooLarge(4097))
        );
        assert_eq!(g.waiting(), 0);
        g.join("fits".into(), bytes - 1, 2).unwrap();
    }

    #[test]
    fn the_line_is_bounded() {
        let mut g = group(128, 8192);
        for i in 0..MAX_WAITING as u32 {
            join(&mut g, i).unwrap();
        }
        assert_eq!(join(&mut g, 0), Err(JoinError::Full));
        assert_eq!(g.waiting(), MAX_WAITING);
    }

    #[test]
    fn a_withdrawn_vote_is_in_no_message() {
        let mut g = group(128, 8192);
        for i in 0..3 {
            join(&mut g, i).unwrap();
        }
        assert!(g.withdraw(|w| *w == 1));
        assert!(!g.withdraw(|w| *w == 1), "already out of the line");
        let flush = g.take(0).unwrap();
        assert_eq!(flush.votes, ["v0", "v2"]);
        assert!(
            !g.withdraw(|w| *w == 0),
            "in a message: too late to withdraw"
        );
    }

    #[test]
    fn with_one_vote_per_message_every_vote_is_sent_at_once() {
        let mut g = group(1, 8192);
        for i in 0..COMMITS_IN_FLIGHT as u32 + 3 {
            join(&mut g, i).unwrap();
            let flush = g.take(0).expect("no bound on calls without group commit");
            assert_eq!(flush.waiters, vec![i]);
        }
        assert_eq!(g.in_flight(), COMMITS_IN_FLIGHT + 3);
    }

    #[test]
    fn calls_in_flight_are_bounded_and_freed() {
        let mut g = group(2, 8192);
        for i in 0..COMMITS_IN_FLIGHT as u32 + 3 {
            join(&mut g, i).unwrap();
        }
        let calls: Vec<CallId> = (0..COMMITS_IN_FLIGHT)
            .map(|_| g.take(0).expect("a call is free").call)
            .collect();
        assert_eq!(g.in_flight(), COMMITS_IN_FLIGHT);
        assert!(g.take(0).is_none());
        g.finished(calls[1]);
        g.finished(calls[1]);
        assert_eq!(g.in_flight(), COMMITS_IN_FLIGHT - 1, "a call finishes once");
        assert!(g.take(0).is_some());
    }

    #[test]
    fn a_call_older_than_its_budget_is_forgotten_as_lost() {
        let mut g = group(2, 8192);
        for i in 0..COMMITS_IN_FLIGHT as u32 * 2 + 2 {
            join(&mut g, i).unwrap();
        }
        let lost: Vec<CallId> = (0..COMMITS_IN_FLIGHT)
            .map(|_| g.take(100).expect("a call is free").call)
            .collect();
        assert!(
            g.take(100 + BUDGET).is_none(),
            "within the budget a call counts"
        );
        assert!(g.next_sender(100 + BUDGET).is_none());
        // Their work was cancelled: past the budget the line moves on without them.
        assert_eq!(g.next_sender(101 + BUDGET), Some(&4));
        let flush = g.take(101 + BUDGET).expect("lost calls are forgotten");
        assert_eq!(flush.waiters, vec![4, 5]);
        assert_eq!(g.in_flight(), 1);
        // A lost call that reports after all frees nothing else.
        g.finished(lost[0]);
        assert_eq!(g.in_flight(), 1);
        assert_eq!(g.forget_lost(102 + 2 * BUDGET), 1);
    }
}
