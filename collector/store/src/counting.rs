//! The counting rule: which of a voter's ballots counts. Pure and deterministic, so every
//! replica holding the same ballots picks the same one.

use std::collections::{BTreeMap, HashMap};

use edgevote_shared::{Digest32, Policy};

use crate::StoredBallot;

/// The parts of a ballot the rule looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Edge timestamp, unix ms.
    pub received_at_ms: u64,
    /// Vote id (tie-break).
    pub vote_id: Digest32,
    /// The choice it counts for.
    pub choice: String,
}

impl Candidate {
    /// The rule's view of a stored ballot.
    pub fn of(ballot: &StoredBallot) -> Self {
        Candidate {
            received_at_ms: ballot.received_at_ms,
            vote_id: ballot.vote_id,
            choice: ballot.choice.clone(),
        }
    }
}

/// True when `a` should count instead of `b` under `policy`: first-vote-wins prefers the
/// earlier timestamp, last-vote-wins the later; equal timestamps go to the smaller vote id.
pub fn beats(policy: Policy, a: &Candidate, b: &Candidate) -> bool {
    if a.received_at_ms != b.received_at_ms {
        return match policy {
            Policy::FirstVoteWins => a.received_at_ms < b.received_at_ms,
            Policy::LastVoteWins => a.received_at_ms > b.received_at_ms,
        };
    }
    a.vote_id < b.vote_id
}

/// True when `incoming` should replace `existing`, two stored copies of the same vote (same
/// voter and vote id, accepted twice because a client retried through another edge). The
/// earliest acceptance wins, then the smaller edge and batch id: a total order, so keeping the
/// least copy is a merge every replica applies in any order and ends on the same item.
pub fn replaces_copy(incoming: &StoredBallot, existing: &StoredBallot) -> bool {
    debug_assert_eq!(incoming.vote_id, existing.vote_id);
    let key = |b: &StoredBallot| (b.received_at_ms, b.edge.clone(), b.batch_id.clone());
    key(incoming) < key(existing)
}

/// The counted ballot among `ballots` (all of one voter), if any.
pub fn counted<'a>(
    policy: Policy,
    ballots: impl IntoIterator<Item = &'a StoredBallot>,
) -> Option<Candidate> {
    ballots
        .into_iter()
        .map(Candidate::of)
        .reduce(|best, c| if beats(policy, &c, &best) { c } else { best })
}

/// The counted ballot of every voter, built one ballot at a time (final tallies, the audit log,
/// the load generator's expectations). Memory: one small entry per voter.
#[derive(Debug, Default)]
pub struct CountedBallots {
    best: HashMap<String, Candidate>,
}

impl CountedBallots {
    /// Considers `candidate` as `voter`'s counted ballot under `policy`.
    pub fn offer(&mut self, policy: Policy, voter: &str, candidate: Candidate) {
        match self.best.get_mut(voter) {
            Some(current) if beats(policy, &candidate, current) => *current = candidate,
            Some(_) => {}
            None => {
                self.best.insert(voter.to_owned(), candidate);
            }
        }
    }

    /// Distinct voters seen.
    pub fn voters(&self) -> u64 {
        self.best.len() as u64
    }

    /// Counted ballots per choice.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for candidate in self.best.values() {
            *counts.entry(candidate.choice.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// The counted ballot of each voter, in no particular order.
    pub fn into_counted(self) -> impl Iterator<Item = Candidate> {
        self.best.into_values()
    }
}

/// Adds to `delta` the change of one voter's counted choice from `before` to `after`.
pub fn apply_change(
    delta: &mut BTreeMap<String, i64>,
    before: Option<&Candidate>,
    after: Option<&Candidate>,
) {
    if before.map(|c| &c.vote_id) == after.map(|c| &c.vote_id) {
        return;
    }
    if let Some(old) = before {
        *delta.entry(old.choice.clone()).or_insert(0) -= 1;
    }
    if let Some(new) = after {
        *delta.entry(new.choice.clone()).or_insert(0) += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(ts: u64, id: u8, choice: &str) -> Candidate {
        Candidate {
            received_at_ms: ts,
            vote_id: Digest32([id; 32]),
            choice: choice.into(),
        }
    }

    #[test]
    fn first_and_last_vote_wins_with_tie_break() {
        assert!(beats(Policy::FirstVoteWins, &c(1, 9, "a"), &c(2, 1, "b")));
        assert!(beats(Policy::LastVoteWins, &c(2, 9, "a"), &c(1, 1, "b")));
        for policy in [Policy::FirstVoteWins, Policy::LastVoteWins] {
            assert!(beats(policy, &c(5, 1, "a"), &c(5, 2, "b")));
            assert!(!beats(policy, &c(5, 2, "a"), &c(5, 1, "b")));
        }
    }

    #[test]
    fn change_moves_one_count() {
        let mut delta = BTreeMap::new();
        apply_change(&mut delta, None, Some(&c(1, 1, "a")));
        apply_change(&mut delta, Some(&c(1, 1, "a")), Some(&c(2, 2, "b")));
        apply_change(&mut delta, Some(&c(2, 2, "b")), Some(&c(2, 2, "b")));
        assert_eq!(delta, BTreeMap::from([("a".into(), 0), ("b".into(), 1)]));
    }
}
