//! The invariants checked at the end of every run.
//!
//! 1. Every receipt a voter holds verifies and names a ballot stored in every region.
//! 2. No region stores a ballot that no voter holds a receipt for.
//! 3. One voter, one vote: the published tally counts each distinct voter exactly once.
//! 4. The tally is what the policy says: each voter's counted choice is the rule applied to
//!    the copies that reached a queue (a copy's time is its earliest acceptance).
//! 5. Regions converge: the same ballots and the same tally everywhere.
//! 6. Forged messages, and only they, end in dead-letter queues.

use std::collections::{BTreeMap, BTreeSet};

use edgevote_shared::{Digest32, Receipt, verify};
use edgevote_store::counting::{Candidate, CountedBallots};

use crate::world::{ELECTION, World};

/// Which invariant failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViolationKind {
    /// A receipt does not verify.
    InvalidReceipt,
    /// A receipt's ballot is missing from a region.
    ReceiptNotStored,
    /// A stored ballot no voter holds a receipt for.
    StoredWithoutReceipt,
    /// Some voter counted more (or less) than once.
    OneVoterOneVote,
    /// The tally differs from the policy applied to the accepted ballots.
    WrongTally,
    /// Regions hold different ballots or tallies.
    Diverged,
    /// A forged message was not dead-lettered, or an honest one was.
    DeadLetters,
    /// An honest ballot was refused.
    LegitRefused,
    /// The world did not settle after the faults healed.
    NoQuiescence,
}

/// One failed invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which.
    pub kind: ViolationKind,
    /// What exactly.
    pub detail: String,
}

/// Checks every invariant, recording violations in the world.
pub(crate) async fn all(world: &mut World) {
    let receipted = receipts(world);
    let expected = expected_tally(world);
    let voters: BTreeSet<&String> = world.enqueued.keys().map(|(v, _)| v).collect();
    let voters = voters.len() as u64;
    let mut found = Vec::new();
    let mut per_region = Vec::new();
    for r in 0..world.names.len() {
        let Ok(ballots) = world.regions.ballots(r, ELECTION).await else {
            found.push((ViolationKind::NoQuiescence, format!("r{r}: scan failed")));
            continue;
        };
        let stored: BTreeSet<(String, Digest32)> = ballots
            .iter()
            .map(|b| (b.voter.clone(), b.vote_id))
            .collect();
        for missing in receipted.difference(&stored).take(3) {
            found.push((
                ViolationKind::ReceiptNotStored,
                format!(
                    "r{r}: receipt of {} for {} not stored",
                    missing.0,
                    missing.1.to_b64()
                ),
            ));
        }
        for extra in stored.difference(&receipted).take(3) {
            found.push((
                ViolationKind::StoredWithoutReceipt,
                format!(
                    "r{r}: ballot of {} ({}) has no receipt",
                    extra.0,
                    extra.1.to_b64()
                ),
            ));
        }
        // A tally that could not be computed is a failed scan, not a tally of zero votes
        // (which would be reported as a one-voter-one-vote violation).
        let tally = match world.regions.tally(r, &world.rules).await {
            Ok(tally) => tally,
            Err(e) => {
                found.push((
                    ViolationKind::NoQuiescence,
                    format!("r{r}: tally failed: {e}"),
                ));
                continue;
            }
        };
        let counted: u64 = tally.values().sum();
        if counted != voters {
            found.push((
                ViolationKind::OneVoterOneVote,
                format!("r{r}: tally counts {counted} votes for {voters} voters: {tally:?}"),
            ));
        } else if tally != expected {
            found.push((
                ViolationKind::WrongTally,
                format!("r{r}: tally {tally:?}, policy gives {expected:?}"),
            ));
        }
        let copies: BTreeSet<(String, Digest32, u64)> = ballots
            .iter()
            .map(|b| (b.voter.clone(), b.vote_id, b.received_at_ms))
            .collect();
        per_region.push((copies, tally));
    }
    if per_region.windows(2).any(|w| w[0] != w[1]) {
        found.push((
            ViolationKind::Diverged,
            "regions hold different ballots or tallies".into(),
        ));
    }
    check_dead_letters(world, &mut found);
    for (kind, detail) in found {
        world.violation(kind, detail);
    }
}

/// The (voter, vote id) of every receipt, after verifying it.
fn receipts(world: &mut World) -> BTreeSet<(String, Digest32)> {
    let mut out = BTreeSet::new();
    let mut bad = Vec::new();
    for (voter, compact) in &world.receipts {
        match verify::<Receipt>(compact, &world.keys) {
            Ok(v) if v.doc.election == ELECTION => {
                out.insert((voter.clone(), v.doc.vote_id));
            }
            Ok(v) => bad.push(format!("receipt for election {}", v.doc.election)),
            Err(e) => bad.push(format!("receipt of {voter} does not verify: {e}")),
        }
    }
    for detail in bad {
        world.violation(ViolationKind::InvalidReceipt, detail);
    }
    out
}

/// The tally the policy gives for the votes that reached a queue.
fn expected_tally(world: &World) -> BTreeMap<String, u64> {
    let mut counted = CountedBallots::default();
    for ((voter, vote_id), (received_at_ms, choice)) in &world.enqueued {
        let candidate = Candidate {
            received_at_ms: *received_at_ms,
            vote_id: *vote_id,
            choice: choice.clone(),
        };
        counted.offer(world.rules.policy, voter, candidate);
    }
    counted.counts()
}

fn check_dead_letters(world: &World, found: &mut Vec<(ViolationKind, String)>) {
    let dead: BTreeSet<String> = world
        .queues
        .iter()
        .flat_map(|q| q.dead_letters())
        .map(|d| d.body)
        .collect();
    let honest_dead = dead.difference(&world.forged).count();
    let forged_alive = world.forged.difference(&dead).count();
    if honest_dead > 0 || forged_alive > 0 {
        found.push((
            ViolationKind::DeadLetters,
            format!(
                "{honest_dead} honest messages dead-lettered, {forged_alive} forged messages not"
            ),
        ));
    }
}
