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
        max_votes_per_voter: edgevote_shared::manifest::MAX_VOTES_PER_VOTER,
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

/// An envelope from `edge_id` (in the fixture's region) signed with the fixture's edge key,
/// holding `ballot` received at `received_at_ms`, sealed at `created_at_ms`.
fn dated_envelope(
    batch: &str,
    edge_id: &str,
    ballot: Ballot,
    received_at_ms: u64,
    created_at_ms: u64,
) -> String {
    let envelope = edgevote_shared::QueueEnvelope {
        v: 1,
        batch_id: batch.into(),
        edge: edge_id.into(),
        region: REGION.into(),
        created_at_ms,
        votes: vec![edgevote_shared::EnvelopeVote {
            ballot,
            received_at_ms,
        }],
    };
    sign(&edge(), &envelope).unwrap()
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
    // An attacker holding the edge's own key: envelopes that verify, but claim another edge,
    // or date votes where no honest edge could have.
    let minute = 60_000;
    let expired = Ballot {
        token: sign(
            &authority(),
            &VoteToken {
                iat: t / 1000 - 3600,
                nbf: t / 1000 - 3600,
                exp: t / 1000 - 600,
                ..decode_unverified::<VoteToken>(&ballot(FIRST, "v15", "yes", 1).token).unwrap()
            },
        )
        .unwrap(),
        ..ballot(FIRST, "v15", "yes", 1)
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "the edge's key signing for another edge",
            dated_envelope(
                "other.1",
                "edge-elsewhere",
                ballot(FIRST, "v16", "no", 1),
                t,
                t,
            ),
            "key_binding_mismatch",
        ),
        (
            "vote dated 10 minutes before the election opened",
            dated_envelope(
                "early.1",
                EDGE_ID,
                ballot(FIRST, "v17", "no", 1),
                t - 11 * minute,
                t - 11 * minute,
            ),
            "outside_election_window",
        ),
        (
            "vote dated 10 minutes after the election closed",
            dated_envelope(
                "late.1",
                EDGE_ID,
                ballot(FIRST, "v18", "no", 1),
                t + 70 * minute,
                t + 70 * minute,
            ),
            "outside_election_window",
        ),
        (
            "vote dated after its token expired",
            dated_envelope("expired.1", EDGE_ID, expired, t, t),
            "outside_token_validity",
        ),
        (
            "vote received after its envelope was sealed",
            dated_envelope(
                "after.1",
                EDGE_ID,
                ballot(FIRST, "v19", "no", 1),
                t + 10 * minute,
                t,
            ),
            "inconsistent_times",
        ),
        (
            "vote held 10 minutes before sealing",
            dated_envelope(
                "held.1",
                EDGE_ID,
                ballot(FIRST, "v20", "no", 1),
                t,
                t + 10 * minute,
            ),
            "inconsistent_times",
        ),
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

/// The vote ids of a voter's stored ballots, sorted.
async fn stored_ids(
    store: &dyn Store,
    election: &str,
    voter: &str,
) -> Vec<edgevote_shared::Digest32> {
    let mut ids: Vec<_> = store
        .voter_ballots(election, voter)
        .await
        .unwrap()
        .iter()
        .map(|b| b.vote_id)
        .collect();
    ids.sort();
    ids
}

/// A voter who keeps voting past the election's `max_votes_per_voter` (2 in [`CAPPED`]): the
/// ballots beyond the limit are refused one by one (not stored, not counted, counted in
/// `edgevote_collector_ballots_over_limit_total`), while the honest voters packed into the same
/// message are stored, nothing is dead-lettered, and retries of the voter's stored ballots
/// (same vote ids, one a later copy) still come out as duplicates, not as over the limit. The
/// refused ballot stamped earliest would win under first-vote-wins if it were stored.
pub async fn ballots_beyond_the_voter_limit_are_refused(
    queue: Arc<dyn Queue>,
    store: Arc<dyn Store>,
) {
    assert_eq!(CAPPED_LIMIT, 2);
    let t = now_ms();
    let greedy = |nonce: u8, choice: &str| ballot(CAPPED, "greedy", choice, nonce);
    // Phase 1: the voter fills the limit, next to an honest voter.
    let fill = vec![
        envelope(
            "cap.1",
            vec![(greedy(1, "yes"), t), (ballot(CAPPED, "h1", "no", 1), t)],
        ),
        envelope("cap.2", vec![(greedy(2, "no"), t + 10)]),
    ];
    queue.send_batch(fill).await.unwrap();
    drain(&collector(Arc::clone(&queue), Arc::clone(&store)), DRAIN).await;
    // Phase 2: two more ballots, packed with other voters' ballots in one message, and retries.
    let beyond = vec![
        envelope(
            "cap.3",
            vec![
                (greedy(3, "blank"), t - 60_000),
                (ballot(CAPPED, "h2", "yes", 1), t),
                (greedy(4, "blank"), t + 20),
                (ballot(CAPPED, "h3", "blank", 1), t),
            ],
        ),
        envelope("cap.4", vec![(greedy(1, "yes"), t)]),
        envelope("cap.5", vec![(greedy(2, "no"), t + 5_000)]),
    ];
    queue.send_batch(beyond).await.unwrap();
    let c = collector(Arc::clone(&queue), Arc::clone(&store));
    drain(&c, DRAIN).await;

    let letters = queue.peek_dead_letters(10).await.unwrap();
    assert!(letters.is_empty(), "nothing dead-lettered: {letters:?}");
    let mut expected = vec![
        greedy(1, "yes").vote_id("tok-greedy"),
        greedy(2, "no").vote_id("tok-greedy"),
    ];
    expected.sort();
    assert_eq!(
        stored_ids(store.as_ref(), CAPPED, "greedy").await,
        expected,
        "only the first {CAPPED_LIMIT} ballots of the voter are stored"
    );
    for honest in ["h1", "h2", "h3"] {
        assert_eq!(
            stored_ids(store.as_ref(), CAPPED, honest).await.len(),
            1,
            "{honest}"
        );
    }
    let result = tally(store.as_ref(), CAPPED, Policy::FirstVoteWins).await;
    assert_eq!((result.voters, result.ballots), (4, 5));
    let counts = |choice: &str| result.counts.get(choice).copied().unwrap_or(0);
    assert_eq!(
        (counts("yes"), counts("no"), counts("blank")),
        (2, 1, 1),
        "greedy counts 'yes' (its first ballot), not the refused earlier-stamped 'blank'"
    );
    let live = live_overall(&store.live_tally(CAPPED).await.unwrap());
    for (choice, n) in &result.counts {
        assert_eq!(
            live.get(choice).copied().unwrap_or(0),
            *n as i64,
            "{choice}"
        );
    }
    assert_eq!(live.values().sum::<i64>(), 4);
    assert_eq!(
        c.metrics.votes_stored.load(Ordering::Relaxed),
        2,
        "h2 and h3"
    );
    assert_eq!(
        c.metrics.votes_duplicate.load(Ordering::Relaxed),
        2,
        "the two retries are duplicates, not over the limit"
    );
    let rendered = c.metrics.render("r1");
    assert!(
        rendered.contains("edgevote_collector_ballots_over_limit_total{region=\"r1\"} 2\n"),
        "{rendered}"
    );
}

/// A vote accepted twice (a client that got no answer retried it through another edge), whose
/// copies reach the collector later copy first: the store must end up holding the earliest copy,
/// as every replica does, and count from it. An earlier copy is never overwritten by a later
/// one. Voter `c2`'s counted ballot depends on which copy is kept: its retried 'yes' was first
/// accepted at t, its other ballot 'no' at t+5s, and the late copy of 'yes' says t+10s.
pub async fn retried_vote_keeps_its_earliest_copy(queue: Arc<dyn Queue>, store: Arc<dyn Store>) {
    let t = now_ms();
    let c1 = ballot(FIRST, "c1", "yes", 1);
    let c2 = ballot(FIRST, "c2", "yes", 1);
    let c2_other = ballot(FIRST, "c2", "no", 2);
    let c3 = ballot(FIRST, "c3", "blank", 1);
    let late = t + 10_000;
    // Phase 1: the late copies of c1 and c2, c2's other ballot, and c3's early copy.
    queue
        .send_batch(vec![
            envelope(
                "copy.late",
                vec![(c1.clone(), late), (c2.clone(), late), (c3.clone(), t)],
            ),
            envelope("copy.other", vec![(c2_other, t + 5_000)]),
        ])
        .await
        .unwrap();
    drain(&collector(Arc::clone(&queue), Arc::clone(&store)), DRAIN).await;
    let before = tally(store.as_ref(), FIRST, Policy::FirstVoteWins).await;
    assert_eq!(before.counts.get("no"), Some(&1), "c2 counts 'no' so far");
    // Phase 2: the early copies of c1 and c2, and a late copy of c3.
    queue
        .send_batch(vec![
            envelope("copy.early", vec![(c1, t), (c2.clone(), t)]),
            envelope("copy.later", vec![(c3, late)]),
        ])
        .await
        .unwrap();
    let c = collector(Arc::clone(&queue), Arc::clone(&store));
    drain(&c, DRAIN).await;

    let copy = |voter: &'static str, vote_id| {
        let store = Arc::clone(&store);
        async move {
            let ballots = store.voter_ballots(FIRST, voter).await.unwrap();
            let found: Vec<_> = ballots
                .into_iter()
                .filter(|b| b.vote_id == vote_id)
                .collect();
            assert_eq!(found.len(), 1, "{voter}: one item per vote id");
            (found[0].received_at_ms, found[0].batch_id.clone())
        }
    };
    assert_eq!(
        copy("c1", ballot(FIRST, "c1", "yes", 1).vote_id("tok-c1")).await,
        (t, "copy.early".to_owned()),
        "c1: the earlier copy replaced the later one"
    );
    assert_eq!(
        copy("c2", c2.vote_id("tok-c2")).await,
        (t, "copy.early".to_owned()),
        "c2: the earlier copy replaced the later one"
    );
    assert_eq!(
        copy("c3", ballot(FIRST, "c3", "blank", 1).vote_id("tok-c3")).await,
        (t, "copy.late".to_owned()),
        "c3: a later copy never overwrites an earlier one"
    );
    let result = tally(store.as_ref(), FIRST, Policy::FirstVoteWins).await;
    assert_eq!(
        (result.voters, result.ballots),
        (3, 4),
        "copies add no ballot"
    );
    assert_eq!(
        result.counts,
        std::collections::BTreeMap::from([("yes".into(), 2), ("blank".into(), 1)]),
        "c2's earliest ballot is its 'yes' at t"
    );
    let live = live_overall(&store.live_tally(FIRST).await.unwrap());
    for choice in ["yes", "no", "blank"] {
        let exact = result.counts.get(choice).copied().unwrap_or(0) as i64;
        assert_eq!(
            live.get(choice).copied().unwrap_or(0),
            exact,
            "live {choice}"
        );
    }
    assert_eq!(c.metrics.votes_stored.load(Ordering::Relaxed), 0);
    assert_eq!(c.metrics.votes_duplicate.load(Ordering::Relaxed), 3);
}
