//! The sans-I/O group-commit core: its bounds hand back what does not fit, and sealing gives
//! every item a fate (in the message, or refused with its reason), never silence.

use edgevote_edge_core::commit::{Batch, CommitBounds, Item, MIN_MESSAGE_BYTES, VoteRefused};
use edgevote_edge_core::{Accepted, Edge, HandedVote};
use edgevote_shared::{QueueEnvelope, Role, SigningIdentity, message, verify};

use super::{NOW, NOW_MS, authority, body, edge, edge_key, keys, served, voter_token};

/// A handed vote of voter `n`, its token signed by `signer`.
fn handed(host: &Edge, n: u32, signer: &SigningIdentity) -> HandedVote {
    let ballot = body("open", &voter_token(n, signer), "yes");
    host.check_handed("open", &ballot, NOW_MS).unwrap()
}

/// A component's one-vote envelope, sealed by `sealer`.
fn component_envelope(sealer: &Edge, n: u32) -> String {
    let host = edge();
    let vote = handed(&host, n, &authority());
    let accepted: Accepted = host.verify_handed(vec![vote]).pop().unwrap().unwrap();
    sealer.seal_single(&accepted, NOW_MS).unwrap().1
}

type TestBatch = Batch<u32, u32>;

fn vote_item(host: &Edge, n: u32) -> Item<u32, u32> {
    Item::Vote {
        vote: Box::new(handed(host, n, &authority())),
        reply: n,
    }
}

#[test]
fn a_batch_hands_back_what_does_not_fit_and_the_message_stays_in_bounds() {
    let host = edge();
    let bounds = CommitBounds {
        max_votes: 100,
        max_message_bytes: MIN_MESSAGE_BYTES,
    };
    let mut batch = TestBatch::new(bounds);
    let mut carried = None;
    for n in 0..100 {
        if let Err(item) = batch.offer(vote_item(&host, n)) {
            carried = Some(item);
            break;
        }
    }
    let Some(Item::Vote { reply: next, .. }) = carried else {
        panic!("4 KiB cannot hold 100 votes: the byte bound must close the batch");
    };
    assert_eq!(
        next as usize,
        batch.len(),
        "the first vote left out is handed back"
    );
    assert!(batch.len() >= 2 && batch.bytes() <= MIN_MESSAGE_BYTES);
    let estimate = batch.bytes();
    let sealed = batch.seal(&host, NOW_MS);
    assert!(sealed.refused_votes.is_empty() && sealed.refused_envelopes.is_empty());
    let body = message::encode(&sealed.lines).unwrap();
    assert!(
        body.len() <= estimate,
        "the estimate bounds the message: {} > {estimate}",
        body.len()
    );
    assert_eq!(sealed.votes_in_message(), next as usize);
}

#[test]
fn the_vote_bound_closes_a_batch_and_the_first_item_always_fits() {
    let host = edge();
    let mut batch = TestBatch::new(CommitBounds {
        max_votes: 2,
        ..CommitBounds::default()
    });
    assert!(batch.offer(vote_item(&host, 0)).is_ok());
    assert!(batch.offer(vote_item(&host, 1)).is_ok());
    assert!(batch.is_full());
    assert!(batch.offer(vote_item(&host, 2)).is_err());
    // A component envelope larger than the byte bound still starts a batch of its own.
    let mut alone = TestBatch::new(CommitBounds {
        max_votes: 2,
        max_message_bytes: MIN_MESSAGE_BYTES,
    });
    let big = Item::Envelope {
        line: "x".repeat(MIN_MESSAGE_BYTES + 1),
        reply: 0,
    };
    assert!(alone.offer(big).is_ok());
}

#[test]
fn a_forged_token_refuses_its_vote_alone_and_every_other_vote_is_sealed() {
    let host = edge();
    let stranger = SigningIdentity::from_seed(&[7; 32], Role::Authority);
    let mut batch = TestBatch::new(CommitBounds::default());
    for n in 0..5 {
        let signer = if n == 2 { &stranger } else { &authority() };
        let item = Item::Vote {
            vote: Box::new(handed(&host, n, signer)),
            reply: n,
        };
        assert!(batch.offer(item).is_ok());
    }
    let sealed = batch.seal(&host, NOW_MS);
    let [(2, VoteRefused::Token(refusal))] = sealed.refused_votes.as_slice() else {
        panic!(
            "only vote 2 is refused, for its token: {:?}",
            sealed.refused_votes
        );
    };
    assert_eq!(refusal.error_code().as_deref(), Some("unknown_key_id"));
    let replies: Vec<u32> = sealed.votes.iter().map(|v| v.reply).collect();
    assert_eq!(replies, [0, 1, 3, 4]);
    let stored: usize = sealed
        .lines
        .iter()
        .map(|line| {
            verify::<QueueEnvelope>(line, &keys())
                .unwrap()
                .doc
                .votes
                .len()
        })
        .sum();
    assert_eq!(stored, 4, "the message holds exactly the sealed votes");
}

#[test]
fn a_component_envelope_naming_another_edge_is_refused_not_committed() {
    let host = edge();
    // The component holds edge-1's key but claims to be edge-2.
    let impostor = Edge::new(served(), keys(), edge_key(), "edge-2", "r1", None);
    let mut batch = TestBatch::new(CommitBounds::default());
    for (n, sealer) in [(0, &host), (1, &impostor)] {
        let line = component_envelope(sealer, n);
        assert!(batch.offer(Item::Envelope { line, reply: n }).is_ok());
    }
    let sealed = batch.seal(&host, NOW_MS);
    assert_eq!(sealed.envelopes, [0]);
    let [(1, detail)] = sealed.refused_envelopes.as_slice() else {
        panic!(
            "the impostor's envelope is refused: {:?}",
            sealed.refused_envelopes
        );
    };
    assert!(detail.contains("key_binding_mismatch"), "{detail}");
    assert_eq!(sealed.lines.len(), 1);
}

#[test]
fn a_vote_no_key_may_seal_is_refused_as_key_expired() {
    // The edge key's validity ended before the vote was received.
    let mut edge_jwk = edge_key().public_jwk(0).bound_to("edge-1", "r1");
    edge_jwk.valid_until = Some(NOW - 1);
    let expired =
        edgevote_shared::KeySet::from_jwks(vec![authority().public_jwk(0), edge_jwk]).unwrap();
    let host = Edge::new(served(), expired, edge_key(), "edge-1", "r1", None);
    let mut batch = TestBatch::new(CommitBounds::default());
    assert!(batch.offer(vote_item(&host, 0)).is_ok());
    let sealed = batch.seal(&host, NOW_MS);
    assert!(sealed.lines.is_empty() && sealed.votes.is_empty());
    assert!(matches!(
        sealed.refused_votes.as_slice(),
        [(0, VoteRefused::KeyExpired(_))]
    ));
}

#[test]
fn bounds_outside_the_message_format_are_refused() {
    for bounds in [
        CommitBounds {
            max_votes: 0,
            ..CommitBounds::default()
        },
        CommitBounds {
            max_votes: message::MAX_ENVELOPES + 1,
            ..CommitBounds::default()
        },
        CommitBounds {
            max_message_bytes: message::MAX_BYTES + 1,
            ..CommitBounds::default()
        },
        CommitBounds {
            max_message_bytes: MIN_MESSAGE_BYTES - 1,
            ..CommitBounds::default()
        },
    ] {
        assert!(bounds.check().is_err(), "{bounds:?}");
    }
    assert!(CommitBounds::default().check().is_ok());
}
