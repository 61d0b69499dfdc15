//! Group commit inside one isolate: the votes of concurrent requests share one SQS message.
//!
//! Each request seals its own one-vote envelope (as without group commit) and joins the
//! isolate's line. At most [`COMMITS_IN_FLIGHT`] `SendMessage` calls run at once; a request
//! that finds one free takes the oldest waiting envelopes (its own among them, bounded by
//! [`CommitBounds`]) and sends them as one message, while requests that arrive meanwhile wait
//! for the next. A lone vote is therefore sent at once, as before; under concurrent load each
//! call carries every vote that arrived during the previous one. Every request learns its
//! message's fate and signs its receipt only once a queue took the message.
//!
//! This module is the pure state (no I/O, no time), so it is tested on the host; the Workers
//! glue drives it (see `glue.rs`).
//!
//! With one vote per message (`EDGEVOTE_BATCH_MAX_VOTES=1`) group commit is off: every vote is
//! sent at once in its own call, as many at a time as there are votes.

use std::collections::VecDeque;

pub use edgevote_edge_core::commit::{COMMITS_IN_FLIGHT, CommitBounds};
use edgevote_shared::message;

/// Most envelopes waiting in one isolate; a vote past it is answered 503 at once (the
/// isolate is far behind its queue, and holding more would only hold more memory).
pub const MAX_WAITING: usize = 8 * message::MAX_ENVELOPES;

/// The isolate's line of envelopes waiting for a `SendMessage`, each with the handle `W` its
/// request waits on.
#[derive(Debug)]
pub struct GroupCommit<W> {
    bounds: CommitBounds,
    waiting: VecDeque<(String, W)>,
    /// Calls taken and not finished, with when each started.
    in_flight: Vec<Call>,
    /// Longest a call can take (every queue until its timeout); one older is lost.
    call_budget_ms: u64,
    next_call: u64,
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

/// One message to send: its body and who waits on it, in order.
#[derive(Debug)]
pub struct Flush<W> {
    /// The call, to report finished.
    pub call: CallId,
    /// The message body: the envelopes, one per line ([`message::encode`]).
    pub body: String,
    /// The requests whose envelope is in the body.
    pub waiters: Vec<W>,
}

/// Why an envelope could not join the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinError {
    /// [`MAX_WAITING`] envelopes already wait.
    Full,
    /// The envelope alone is larger than a message may be.
    TooLarge(usize),
}

impl<W> GroupCommit<W> {
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

    /// Puts `envelope` at the end of the line.
    pub fn join(&mut self, envelope: String, waiter: W) -> Result<(), JoinError> {
        if envelope.len() > self.bounds.max_message_bytes {
            return Err(JoinError::TooLarge(envelope.len()));
        }
        if self.waiting.len() >= MAX_WAITING {
            return Err(JoinError::Full);
        }
        self.waiting.push_back((envelope, waiter));
        Ok(())
    }

    /// When a call is free at `now_ms` and envelopes wait: the next message (the oldest
    /// envelopes that fit the bounds), counted in flight until [`GroupCommit::finished`] or
    /// until it is older than the call budget.
    pub fn take(&mut self, now_ms: u64) -> Option<Flush<W>> {
        if !self.call_free(now_ms) || self.waiting.is_empty() {
            return None;
        }
        let mut lines = Vec::new();
        let mut waiters = Vec::new();
        let mut bytes = 0;
        while let Some((line, _)) = self.waiting.front() {
            // The body with this line too: the lines so far, a separator and this one.
            let grown = if lines.is_empty() {
                line.len()
            } else {
                message::encoded_len([bytes, line.len()])
            };
            let fits =
                lines.len() < self.bounds.max_votes && grown <= self.bounds.max_message_bytes;
            if !fits && !lines.is_empty() {
                break;
            }
            let Some((line, waiter)) = self.waiting.pop_front() else {
                break;
            };
            bytes = grown;
            lines.push(line);
            waiters.push(waiter);
        }
        let call = CallId(self.next_call);
        self.next_call += 1;
        self.in_flight.push(Call {
            id: call,
            started_ms: now_ms,
        });
        // Cannot fail: one line or more, no line breaks in a compact JWS, bounds within the
        // message format's (checked by the configuration).
        let body = lines.join("\n");
        debug_assert_eq!(body.len(), bytes);
        debug_assert!(message::encode(&lines).is_ok_and(|encoded| encoded == body));
        Some(Flush {
            call,
            body,
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

    /// Takes the first waiting envelope whose waiter `is` out of the line (a request that gave
    /// up waiting); whether it was still waiting (not in any message).
    pub fn withdraw(&mut self, is: impl Fn(&W) -> bool) -> bool {
        match self.waiting.iter().position(|(_, waiter)| is(waiter)) {
            Some(index) => self.waiting.remove(index).is_some(),
            None => false,
        }
    }

    /// Whoever should send next at `now_ms`: the oldest waiter, when a call is free.
    pub fn next_sender(&mut self, now_ms: u64) -> Option<&W> {
        if !self.call_free(now_ms) {
            return None;
        }
        self.waiting.front().map(|(_, waiter)| waiter)
    }

    /// Whether a call may start at `now_ms`: fewer than [`COMMITS_IN_FLIGHT`] run (lost ones
    /// forgotten), or group commit is off (one vote per message: every vote is sent at once,
    /// as many calls as votes, which the platform's own bound on concurrent requests bounds).
    fn call_free(&mut self, now_ms: u64) -> bool {
        self.forget_lost(now_ms);
        self.bounds.max_votes == 1 || self.in_flight.len() < COMMITS_IN_FLIGHT
    }

    /// Envelopes waiting.
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

    /// The call budget of the tests' lines, ms.
    const BUDGET: u64 = 1_000;

    fn group(max_votes: usize, max_message_bytes: usize) -> GroupCommit<u32> {
        GroupCommit::new(
            CommitBounds {
                max_votes,
                max_message_bytes,
            },
            BUDGET,
        )
    }

    fn line(byte: char, len: usize) -> String {
        std::iter::repeat_n(byte, len).collect()
    }

    #[test]
    fn a_lone_envelope_is_sent_at_once_and_alone() {
        let mut g = group(128, 8192);
        g.join("a".into(), 1).unwrap();
        let flush = g.take(0).expect("a call is free");
        assert_eq!((flush.body.as_str(), flush.waiters), ("a", vec![1]));
        assert_eq!((g.waiting(), g.in_flight()), (0, 1));
        assert!(g.take(0).is_none(), "nothing waits");
    }

    #[test]
    fn arrivals_during_busy_calls_share_the_next_message_in_order() {
        let mut g = group(128, 8192);
        let mut calls = Vec::new();
        for i in 0..COMMITS_IN_FLIGHT as u32 {
            g.join(format!("e{i}"), i).unwrap();
            calls.push(g.take(0).expect("a call is free").call);
        }
        for i in 10..15 {
            g.join(format!("e{i}"), i).unwrap();
        }
        assert!(g.take(0).is_none(), "every call is busy");
        assert!(g.next_sender(0).is_none());
        g.finished(calls[0]);
        assert_eq!(g.next_sender(0), Some(&10));
        let flush = g.take(0).expect("a call was freed");
        assert_eq!(flush.body, "e10\ne11\ne12\ne13\ne14");
        assert_eq!(flush.waiters, vec![10, 11, 12, 13, 14]);
        assert_eq!(message::split(&flush.body).unwrap().len(), 5);
    }

    #[test]
    fn a_message_keeps_to_the_vote_bound() {
        let mut g = group(3, 8192);
        for i in 0..7 {
            g.join(format!("e{i}"), i).unwrap();
        }
        let sizes: Vec<usize> = std::iter::from_fn(|| {
            let flush = g.take(0)?;
            g.finished(flush.call);
            Some(flush.waiters.len())
        })
        .collect();
        assert_eq!(sizes, vec![3, 3, 1]);
        assert_eq!(g.in_flight(), 0);
    }

    #[test]
    fn a_message_keeps_to_the_byte_bound() {
        let mut g = group(128, 4096);
        for (i, byte) in ['a', 'b', 'c'].into_iter().enumerate() {
            g.join(line(byte, 2000), i as u32).unwrap();
        }
        let first = g.take(0).unwrap();
        // Two lines and a separator: 4001 bytes, over 4096 with a third.
        assert_eq!(first.waiters, vec![0, 1]);
        assert_eq!(first.body.len(), 4001);
        let second = g.take(0).unwrap();
        assert_eq!(second.waiters, vec![2]);
    }

    #[test]
    fn an_envelope_larger_than_a_message_is_refused_and_nothing_changes() {
        let mut g = group(128, 4096);
        assert_eq!(g.join(line('x', 4097), 1), Err(JoinError::TooLarge(4097)));
        assert_eq!(g.waiting(), 0);
    }

    #[test]
    fn the_line_is_bounded() {
        let mut g = group(128, 8192);
        for i in 0..MAX_WAITING as u32 {
            g.join("e".into(), i).unwrap();
        }
        assert_eq!(g.join("e".into(), 0), Err(JoinError::Full));
        assert_eq!(g.waiting(), MAX_WAITING);
    }

    #[test]
    fn a_withdrawn_envelope_is_in_no_message() {
        let mut g = group(128, 8192);
        for i in 0..3 {
            g.join(format!("e{i}"), i).unwrap();
        }
        assert!(g.withdraw(|w| *w == 1));
        assert!(!g.withdraw(|w| *w == 1), "already out of the line");
        let flush = g.take(0).unwrap();
        assert_eq!(flush.body, "e0\ne2");
        assert!(
            !g.withdraw(|w| *w == 0),
            "in a message: too late to withdraw"
        );
    }

    #[test]
    fn with_one_vote_per_message_every_vote_is_sent_at_once() {
        let mut g = group(1, 8192);
        for i in 0..COMMITS_IN_FLIGHT as u32 + 3 {
            g.join(format!("e{i}"), i).unwrap();
            let flush = g.take(0).expect("no bound on calls without group commit");
            assert_eq!(flush.waiters, vec![i]);
        }
        assert_eq!(g.in_flight(), COMMITS_IN_FLIGHT + 3);
    }

    #[test]
    fn calls_in_flight_are_bounded_and_freed() {
        let mut g = group(2, 8192);
        for i in 0..COMMITS_IN_FLIGHT as u32 + 3 {
            g.join(format!("e{i}"), i).unwrap();
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
            g.join(format!("e{i}"), i).unwrap();
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
