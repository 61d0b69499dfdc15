//! The behaviours every backend pair must show. Each function takes a fresh queue and store.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use edgevote_queue::Queue;
use edgevote_shared::Policy;
use edgevote_store::{ElectionRules, Store, final_tally, live_overall};

use crate::fixture::*;

const DRAIN: Duration = Duration::from_secs(60);

async fn tally(store: &dyn Store, election: &str, policy: Policy) -> edgevote_store::FinalTally {
    let rules = ElectionRules {
        id: election.into(),
        policy,
    };
    final_tally(store, &rules).await.unwrap()
}

/// One ballot delivered five times (five messages, two envelopes) is stored and counted once.
pub async fn same_ballot_five_times_counts_once(queue: Arc<dyn Queue>, store: Arc<dyn Store>) {
    let b = ballot(FIRST, "v1", "yes", 1);
    let t = now_ms();
    let same = envelope("e1.1", vec![(b.clone(), t)]);
    let other = envelope("e2.7", vec![(b, t)]);
    let bodies = vec![same.clone(), same.clone(), same.clone(), same, other];
    queue.send_batch(bodies).await.unwrap();
    let c = collector(queue, Arc::clone(&store));
    drain(&c, DRAIN).await;
    let result = tally(store.as_ref(), FIRST, Policy::FirstVoteWins).await;
    assert_eq!(result.voters, 1);
    assert_eq!(result.ballots, 1);
    assert_eq!(result.counts.get("yes"), Some(&1));
    assert_eq!(c.metrics.votes_stored.load(Ordering::Relaxed), 1);
    assert_eq!(c.metrics.votes_duplicate.load(Ordering::Relaxed), 4);
    let live = live_overall(&store.live_tally(FIRST).await.unwrap());
    assert_eq!(live.get("yes"), Some(&1));
}

/// Two different ballots of one voter count once: the earlier under first-vote-wins, the later
/// under last-vote-wins, whatever order they arrive in.
pub async fn two_ballots_of_one_voter_follow_the_policy(
    queue: Arc<dyn Queue>,
    store: Arc<dyn Store>,
) {
    let t = now_ms();
    let mut bodies = Vec::new();
    for election in [FIRST, LAST] {
        // The later ballot is sent first.
        let late = ballot(election, "v2", "no", 2);
        let early = ballot(election, "v2", "yes", 1);
        bodies.push(envelope(&format!("{election}.a"), vec![(late, t + 5000)]));
        bodies.push(envelope(&format!("{election}.b"), vec![(early, t)]));
        bodies.push(envelope(
            &format!("{election}.c"),
            vec![(ballot(election, "v3", "blank", 1), t)],
        ));
    }
    queue.send_batch(bodies).await.unwrap();
    let c = collector(queue, Arc::clone(&store));
    drain(&c, DRAIN).await;
    let first = tally(store.as_ref(), FIRST, Policy::FirstVoteWins).await;
    assert_eq!(first.ballots, 3);
    assert_eq!(first.voters, 2);
    assert_eq!(first.counts.get("yes"), Some(&1));
    assert_eq!(first.counts.get("no"), None);
    let last = tally(store.as_ref(), LAST, Policy::LastVoteWins).await;
    assert_eq!(last.voters, 2);
    assert_eq!(last.counts.get("no"), Some(&1));
    assert_eq!(last.counts.get("yes"), None);
    for (election, expected) in [(FIRST, &first), (LAST, &last)] {
        let live = live_overall(&store.live_tally(election).await.unwrap());
        for (choice, n) in &expected.counts {
            assert_eq!(
                live.get(choice).copied().unwrap_or(0),
                *n as i64,
                "{election} {choice}"
            );
        }
        assert_eq!(live.values().sum::<i64>(), expected.voters as i64);
    }
}

/// A batch whose processing dies after the store write and before the delete is redelivered
/// and counted once.
pub async fn crash_after_store_before_delete_counts_once(
    queue: Arc<dyn Queue>,
    store: Arc<dyn Store>,
) {
    let t = now_ms();
    let body = envelope(
        "crash.1",
        vec![
            (ballot(FIRST, "v4", "yes", 1), t),
            (ballot(FIRST, "v5", "no", 1), t),
        ],
    );
    queue.send_batch(vec![body]).await.unwrap();
    let c = collector(queue, Arc::clone(&store));
    c.faults.crash_after_store.store(1, Ordering::SeqCst);
    drain(&c, DRAIN).await;
    assert_eq!(
        c.faults.crash_after_store.load(Ordering::SeqCst),
        0,
        "fault fired"
    );
    let result = tally(store.as_ref(), FIRST, Policy::FirstVoteWins).await;
    assert_eq!((result.voters, result.ballots), (2, 2));
    assert_eq!(c.metrics.votes_stored.load(Ordering::Relaxed), 2);
    assert_eq!(c.metrics.votes_duplicate.load(Ordering::Relaxed), 2);
    let live = live_overall(&store.live_tally(FIRST).await.unwrap());
    assert_eq!(live.values().sum::<i64>(), 2);
}

/// Malformed, forged, oversized and invalid messages end in the dead-letter queue with their
/// reason; nothing of them is counted and the collector goes on with good messages.
pub async fn poison_messages_are_dead_lettered(queue: Arc<dyn Queue>, store: Arc<dyn Store>) {
    let t = now_ms();
    let good = envelope("good.1", vec![(ballot(FIRST, "v6", "yes", 1), t)]);
    let forged = envelope_signed_by(
        &rogue_edge(),
        "forged.1",
        vec![(ballot(FIRST, "v7", "no", 1), t)],
    );
    let (head, rest) = good.split_once('.').unwrap();
    let tampered = {
        let (payload, sig) = rest.split_once('.').unwrap();
        let mut p = payload.to_owned();
        p.replace_range(10..11, if &p[10..11] == "A" { "B" } else { "A" });
        format!("{head}.{p}.{sig}")
    };
    let oversized = "x".repeat(200 * 1024);
    let wrong_choice = envelope("bad.1", vec![(ballot(FIRST, "v8", "maybe", 1), t)]);
    let unknown_election = envelope("bad.2", vec![(ballot("elsewhere", "v9", "yes", 1), t)]);
    let cases = [
        ("not a jws at all".to_owned(), "malformed_jws"),
        (forged, "unknown_key_id"),
        (tampered, "bad_signature"),
        (oversized, "too_large"),
        (wrong_choice, "invalid_choice"),
        (unknown_election, "unknown_election"),
    ];
    let bodies: Vec<String> = cases.iter().map(|(b, _)| b.clone()).collect();
    queue.send_batch(bodies).await.unwrap();
    queue.send_batch(vec![good]).await.unwrap();
    let c = collector(Arc::clone(&queue), Arc::clone(&store));
    drain(&c, DRAIN).await;
    let letters = queue.peek_dead_letters(100).await.unwrap();
    assert_eq!(letters.len(), cases.len(), "{letters:#?}");
    for (_, code) in &cases {
        assert!(
            letters.iter().any(|l| l.reason.starts_with(code)),
            "no dead letter with reason {code}: {:?}",
            letters.iter().map(|l| &l.reason).collect::<Vec<_>>()
        );
    }
    let result = tally(store.as_ref(), FIRST, Policy::FirstVoteWins).await;
    assert_eq!(
        (result.voters, result.ballots),
        (1, 1),
        "only the good ballot counts"
    );
    assert_eq!(c.metrics.dead_lettered_total(), cases.len() as u64);
}

/// A message packing several envelopes (one per line, as the edge host's group commit does) is
/// counted whole; one forged envelope among them dead-letters the whole message.
pub async fn packed_envelopes_count_whole_or_not_at_all(
    queue: Arc<dyn Queue>,
    store: Arc<dyn Store>,
) {
    let t = now_ms();
    let packed = [
        envelope("p.1", vec![(ballot(FIRST, "p1", "yes", 1), t)]),
        envelope("p.2", vec![(ballot(FIRST, "p2", "no", 1), t)]),
        envelope("p.3", vec![(ballot(FIRST, "p3", "yes", 1), t)]),
    ]
    .join("\n");
    let poisoned = [
        envelope("q.1", vec![(ballot(FIRST, "q1", "yes", 1), t)]),
        envelope_signed_by(
            &rogue_edge(),
            "q.2",
            vec![(ballot(FIRST, "q2", "yes", 1), t)],
        ),
    ]
    .join("\n");
    queue.send_batch(vec![packed, poisoned]).await.unwrap();
    let c = collector(Arc::clone(&queue), Arc::clone(&store));
    drain(&c, DRAIN).await;
    let result = tally(store.as_ref(), FIRST, Policy::FirstVoteWins).await;
    assert_eq!(
        (result.voters, result.counts.get("yes").copied()),
        (3, Some(2))
    );
    let letters = queue.peek_dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].reason.starts_with("unknown_key_id"),
        "{}",
        letters[0].reason
    );
}
