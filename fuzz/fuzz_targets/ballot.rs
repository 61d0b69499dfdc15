//! Fuzzes the ballot parser and admission, the path of every vote an edge takes.
//!
//! The input is a ballot request body. Properties:
//! - `Ballot::parse` bounds the body by the election's limit and accepts only ballots that pass
//!   `validate`; an accepted ballot survives a JSON round trip and its vote id is deterministic;
//! - `admit` against the sample election (open at `NOW`, authority keys of the fixture) accepts
//!   only a ballot whose token verifies on its own for this election, and gives it the vote id of
//!   that token;
//! - the receipt and the one-vote envelope of an admitted ballot sign, and verify to the same
//!   document with the edge keys (what the edge returns and what the collector reads);
//! - every refusal carries a stable code.
#![no_main]

use edgevote_fuzz::assert_stable_code;
use edgevote_fuzz::fixture::{ELECTION, NOW, Sample, fixture};
use edgevote_shared::envelope::{EnvelopeVote, QueueEnvelope};
use edgevote_shared::manifest::ElectionManifest;
use edgevote_shared::{
    AdmissionError, Ballot, Receipt, Role, VoteToken, admit, json, sign, verify,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    let manifest = ElectionManifest::sample(NOW);
    let limit = manifest.limits.max_ballot_bytes as usize;
    let ballot = match Ballot::parse(data, limit) {
        Ok(ballot) => ballot,
        Err(error) => {
            assert_stable_code(error.code());
            return;
        }
    };
    assert!(
        data.len() <= limit,
        "a ballot above the election's limit parsed"
    );
    assert_eq!(ballot.validate(), Ok(()));
    let encoded = json::to_vec(&ballot);
    assert_eq!(
        Ballot::parse(&encoded, limit).as_ref(),
        Ok(&ballot),
        "JSON round trip changed the ballot"
    );
    let token_id = "tok-0001";
    assert_eq!(ballot.vote_id(token_id), ballot.vote_id(token_id));

    // The whole fixture key set: keys of other roles are there, and must not sign tokens.
    let admitted = match admit(&manifest, &fx.keys, ballot.clone(), NOW) {
        Ok(admitted) => admitted,
        Err(AdmissionError::Wire(error)) => {
            assert_stable_code(error.code());
            return;
        }
        Err(AdmissionError::InvalidChoice(choice)) => {
            assert!(manifest.option(&choice).is_none());
            return;
        }
        Err(error @ AdmissionError::ElectionClosed { .. }) => {
            panic!("the sample election is open at NOW: {error}")
        }
    };
    assert_eq!(admitted.ballot, ballot);
    assert_eq!(ballot.election, ELECTION);
    assert!(manifest.option(&ballot.choice).is_some());
    let token = verify::<VoteToken>(&ballot.token, &fx.keys).expect("admitted token verifies");
    assert_eq!(admitted.token, token);
    assert_eq!(token.doc.check_usable(ELECTION, NOW), Ok(()));
    assert_eq!(admitted.vote_id, ballot.vote_id(&token.doc.jti));

    let edge = fx.current(Role::Edge);
    let receipt = admitted.receipt("edge-1", "eu-west-1", NOW * 1000);
    let signed = sign(edge, &receipt).expect("the receipt of an admitted ballot signs");
    let checked = verify::<Receipt>(&signed, &fx.keys).expect("a fresh receipt verifies");
    assert_eq!(checked.doc, receipt);

    let envelope = QueueEnvelope {
        v: 1,
        batch_id: "edge-1.000001".into(),
        edge: "edge-1".into(),
        region: "eu-west-1".into(),
        created_at_ms: NOW * 1000,
        votes: vec![EnvelopeVote {
            ballot,
            received_at_ms: NOW * 1000,
        }],
    };
    let sealed = sign(edge, &envelope).expect("a one-vote envelope of an admitted ballot signs");
    let opened = verify::<QueueEnvelope>(&sealed, &fx.keys).expect("a fresh envelope verifies");
    assert_eq!(opened.doc, envelope);
});
