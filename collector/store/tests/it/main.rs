//! The embedded store's own promises, below the collector: the per-voter limit and its bounded
//! read, the merge of copies, and that replication never applies the limit.
#![allow(clippy::unwrap_used)]

use edgevote_shared::{Digest32, Policy};
use edgevote_store::embedded::EmbeddedStore;
use edgevote_store::{
    ElectionRules, MAX_VOTER_BALLOTS, PutOutcome, Store, StoredBallot, final_tally, live_overall,
};

fn rules(id: &str, policy: Policy, limit: u32) -> ElectionRules {
    ElectionRules {
        id: id.into(),
        policy,
        max_votes_per_voter: limit,
    }
}

fn ballot(election: &str, voter: &str, id: u8, choice: &str, at_ms: u64) -> StoredBallot {
    StoredBallot {
        election: election.into(),
        voter: voter.into(),
        vote_id: Digest32([id; 32]),
        choice: choice.into(),
        token_id: format!("tok-{voter}"),
        nonce: "bm9uY2Utbm9uY2Utbm9uY2U".into(),
        received_at_ms: at_ms,
        edge: "edge-1".into(),
        region: "r1".into(),
        batch_id: "batch-1".into(),
    }
}

fn copy_of(ballot: &StoredBallot, at_ms: u64, batch: &str) -> StoredBallot {
    StoredBallot {
        received_at_ms: at_ms,
        batch_id: batch.into(),
        ..ballot.clone()
    }
}

use PutOutcome::{Duplicate, OverLimit, Stored};

/// New ballots beyond the limit are refused in batch order (both copies of one refused ballot),
/// the other voters of the batch are stored, and copies of stored ballots stay duplicates (an
/// earlier copy still replaces the later one).
#[tokio::test]
async fn limit_refuses_new_ballots_not_copies() {
    let store = EmbeddedStore::in_memory().unwrap();
    let rules = rules("limited", Policy::LastVoteWins, 2);
    let g = |id: u8, at: u64| ballot(&rules.id, "greedy", id, "yes", at);
    let h = |voter: &str, id: u8| ballot(&rules.id, voter, id, "no", 10);
    let first = store
        .record(
            &rules,
            "r1",
            vec![g(1, 10), h("h1", 50), g(2, 20), g(3, 30), g(3, 30)],
        )
        .await
        .unwrap();
    assert_eq!(first, vec![Stored, Stored, Stored, OverLimit, OverLimit]);
    let second = store
        .record(
            &rules,
            "r1",
            vec![
                g(4, 40),
                copy_of(&g(1, 10), 5, "early"),
                g(2, 20),
                h("h2", 51),
            ],
        )
        .await
        .unwrap();
    assert_eq!(second, vec![OverLimit, Duplicate, Duplicate, Stored]);
    let mut held: Vec<(u8, u64)> = store
        .voter_ballots(&rules.id, "greedy")
        .await
        .unwrap()
        .iter()
        .map(|b| (b.vote_id.0[0], b.received_at_ms))
        .collect();
    held.sort();
    assert_eq!(held, vec![(1, 5), (2, 20)]);
    let live = live_overall(&store.live_tally(&rules.id).await.unwrap());
    let exact = final_tally(&store, &rules).await.unwrap();
    assert_eq!((exact.voters, exact.ballots), (3, 4));
    for (choice, n) in &exact.counts {
        assert_eq!(live.get(choice).copied(), Some(*n as i64), "{choice}");
    }
}

/// A voter holding more ballots than a store reads at once (replicated in: replication never
/// applies the limit) fails no batch: their new ballot is over the limit, a retry of the ballot
/// that sorts last (beyond the bounded read) is a duplicate, another voter's ballot is stored.
#[tokio::test]
async fn voter_beyond_the_read_bound_fails_no_batch() {
    let store = EmbeddedStore::in_memory().unwrap();
    let rules = rules("hoarder", Policy::FirstVoteWins, 100);
    let hoarded: Vec<StoredBallot> = (0..=MAX_VOTER_BALLOTS as u32)
        .map(|i| StoredBallot {
            vote_id: Digest32::of(&i.to_le_bytes()),
            ..ballot(&rules.id, "hoarder", 0, "yes", u64::from(i) + 10)
        })
        .collect();
    let added = store
        .apply_replica("elsewhere", hoarded.clone(), 1)
        .await
        .unwrap();
    assert_eq!(added, MAX_VOTER_BALLOTS + 1, "replication takes them all");
    let last = hoarded.iter().max_by_key(|b| b.vote_id).unwrap();
    let outcomes = store
        .record(
            &rules,
            "r1",
            vec![
                ballot(&rules.id, "hoarder", 1, "no", 1),
                copy_of(last, last.received_at_ms + 1, "retry"),
                ballot(&rules.id, "honest", 2, "no", 1),
            ],
        )
        .await
        .unwrap();
    assert_eq!(outcomes, vec![OverLimit, Duplicate, Stored]);
    let live = live_overall(&store.live_tally(&rules.id).await.unwrap());
    assert_eq!(live.get("no"), Some(&1), "the honest voter is counted");
    let exact = final_tally(&store, &rules).await.unwrap();
    assert_eq!(exact.ballots, MAX_VOTER_BALLOTS as u64 + 2);
}
