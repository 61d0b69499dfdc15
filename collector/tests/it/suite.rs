//! The behaviours every backend pair must show. Each function takes a fresh queue and store.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use edgevote_queue::Queue;
use edgevote_shared::{
    Ballot, Policy, Role, SigningIdentity, VoteToken, b64, decode_unverified, sign,
};
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

/// The queue-consumer half of the hostile-input catalogue (the HTTP half is in the edge host's
/// tests): messages a compromised queue writer, a faulty edge or a broken network could deliver.
/// Each is dead-lettered whole with its reason, and only honest ballots count; replays count once.
pub async fn hostile_messages_are_dead_lettered_and_count_nothing(
    queue: Arc<dyn Queue>,
    store: Arc<dyn Store>,
) {
    use edgevote_shared::forgery::{sign_raw, with_non_canonical_s, with_small_order_signature};
    let t = now_ms();
    let good = envelope("good.1", vec![(ballot(FIRST, "v6", "yes", 1), t)]);
    let header = |kid: &str, typ: &str| serde_json::json!({"alg": "EdDSA", "kid": kid, "typ": typ});
    let envelope_header = header(edge().kid(), "edgevote-envelope+jws");
    let (head, rest) = good.split_once('.').unwrap();
    let tampered = {
        let (payload, sig) = rest.split_once('.').unwrap();
        let mut p = payload.to_owned();
        p.replace_range(10..11, if &p[10..11] == "A" { "B" } else { "A" });
        format!("{head}.{p}.{sig}")
    };
    let stranger = SigningIdentity::from_seed(&[77; 32], Role::Authority);
    let forged_token = Ballot {
        token: sign(
            &stranger,
            &decode_unverified::<VoteToken>(&ballot(FIRST, "v10", "yes", 1).token).unwrap(),
        )
        .unwrap(),
        ..ballot(FIRST, "v10", "yes", 1)
    };
    let payload_of =
        |compact: &str| b64::decode("payload", compact.split('.').nth(1).unwrap()).unwrap();
    let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
    let huge = String::from_utf8(payload_of(&good)).unwrap().replacen(
        &format!("\"received_at_ms\":{t}"),
        "\"received_at_ms\":1e400",
        1,
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "not a JWS at all",
            "not a jws at all".into(),
            "malformed_jws",
        ),
        ("whitespace only", "   ".into(), "malformed_jws"),
        (
            "binary garbage",
            "\u{1}\u{2}\u{fffd}\u{0}".into(),
            "malformed_jws",
        ),
        (
            "envelope signed by an unknown edge key",
            envelope_signed_by(
                &rogue_edge(),
                "forged.1",
                vec![(ballot(FIRST, "v7", "no", 1), t)],
            ),
            "unknown_key_id",
        ),
        ("tampered payload", tampered, "bad_signature"),
        (
            "truncated envelope",
            good[..good.len() / 2].to_owned(),
            "malformed_jws",
        ),
        (
            "oversized message (200 KiB)",
            "x".repeat(200 * 1024),
            "too_large",
        ),
        (
            "non-canonical S",
            with_non_canonical_s(&good),
            "bad_signature",
        ),
        (
            "small-order forged signature",
            with_small_order_signature(&good),
            "bad_signature",
        ),
        (
            "alg none",
            sign_raw(
                &serde_json::json!({"alg": "none", "kid": edge().kid(), "typ": "edgevote-envelope+jws"}),
                &payload_of(&good),
                &edge(),
            ),
            "unsupported_alg",
        ),
        (
            "envelope signed by the authority key",
            sign_raw(
                &header(authority().kid(), "edgevote-envelope+jws"),
                &payload_of(&good),
                &authority(),
            ),
            "key_role_mismatch",
        ),
        (
            "receipt type presented as an envelope",
            sign_raw(
                &header(edge().kid(), "edgevote-receipt+jws"),
                &payload_of(&good),
                &edge(),
            ),
            "wrong_document_type",
        ),
        (
            "nesting 500 levels deep",
            sign_raw(&envelope_header, deep.as_bytes(), &edge()),
            "too_deep",
        ),
        (
            "huge number in the envelope",
            sign_raw(&envelope_header, huge.as_bytes(), &edge()),
            "malformed_json",
        ),
        (
            "invalid choice",
            envelope("bad.1", vec![(ballot(FIRST, "v8", "maybe", 1), t)]),
            "invalid_choice",
        ),
        (
            "unknown election",
            envelope("bad.2", vec![(ballot("elsewhere", "v9", "yes", 1), t)]),
            "unknown_election",
        ),
        (
            "token from an unknown authority inside",
            envelope("bad.3", vec![(forged_token, t)]),
            "unknown_key_id",
        ),
        (
            "token for another election inside",
            envelope(
                "bad.4",
                vec![(
                    Ballot {
                        election: FIRST.into(),
                        ..ballot(LAST, "v11", "yes", 1)
                    },
                    t,
                )],
            ),
            "wrong_election",
        ),
        (
            "257 envelopes in one message",
            vec!["x"; 257].join("\n"),
            "too_many_envelopes",
        ),
        (
            "an honest envelope packed with a forged one",
            format!(
                "{}\n{}",
                envelope("mix.1", vec![(ballot(FIRST, "v12", "yes", 1), t)]),
                envelope_signed_by(
                    &rogue_edge(),
                    "mix.2",
                    vec![(ballot(FIRST, "v13", "no", 1), t)]
                )
            ),
            "unknown_key_id",
        ),
    ];
    // Replays: the same envelope three times, and a second ballot on the same token.
    let replay = envelope("replay.1", vec![(ballot(FIRST, "v14", "no", 1), t)]);
    let revote = envelope("replay.2", vec![(ballot(FIRST, "v14", "yes", 2), t + 5)]);
    let mut bodies: Vec<String> = cases.iter().map(|(_, b, _)| b.clone()).collect();
    bodies.extend([good, replay.clone(), replay.clone(), replay, revote]);
    for chunk in bodies.chunks(edgevote_queue::MAX_BATCH) {
        queue.send_batch(chunk.to_vec()).await.unwrap();
    }
    let c = collector(Arc::clone(&queue), Arc::clone(&store));
    drain(&c, DRAIN).await;
    let letters = queue.peek_dead_letters(100).await.unwrap();
    let mut wrong = Vec::new();
    for (name, body, code) in &cases {
        match letters.iter().find(|l| &l.body == body) {
            Some(l) if l.reason.starts_with(code) => {}
            Some(l) => wrong.push(format!("{name}: reason {:?}, expected {code}", l.reason)),
            None => wrong.push(format!("{name}: not dead-lettered")),
        }
    }
    let result = tally(store.as_ref(), FIRST, Policy::FirstVoteWins).await;
    println!(
        "hostile-input catalogue, queue consumer: {} cases + 2 replays, {} dead-lettered with the expected reason, {} ballots stored from them",
        cases.len(),
        cases.len() - wrong.len(),
        result.ballots - 3
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        letters.len(),
        cases.len(),
        "only the hostile messages are dead-lettered"
    );
    assert_eq!(
        (
            result.voters,
            result.ballots,
            result.counts.get("no").copied()
        ),
        (2, 3, Some(1)),
        "only v6 and v14 count, v14 once (its first ballot, 'no')"
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
