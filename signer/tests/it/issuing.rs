//! Token issuing, one and in bulk.

use std::collections::HashSet;

use edgevote_shared::{
    ElectionManifest, ElectionOption, KeySet, Limits, Policy, Role, SigningIdentity, VoteToken,
    verify,
};
use edgevote_signer::issue::{TokenWindow, issue_token, issue_tokens};

fn manifest() -> ElectionManifest {
    ElectionManifest {
        v: 1,
        id: "e1".into(),
        title: "E".into(),
        options: vec![ElectionOption {
            id: "a".into(),
            label: "A".into(),
        }],
        opens_at: 100,
        closes_at: 10_000,
        policy: Policy::LastVoteWins,
        limits: Limits::default(),
        created_at: 50,
    }
}

fn authority() -> (SigningIdentity, KeySet) {
    let identity = SigningIdentity::from_seed(&[1; 32], Role::Authority);
    let keys = KeySet::from_jwks(vec![identity.public_jwk(0)]).unwrap();
    (identity, keys)
}

#[test]
fn single_token_is_valid_for_the_election() {
    let (authority, keys) = authority();
    let window = TokenWindow::for_election(&manifest(), 60);
    let token = issue_token(&authority, &manifest(), Some("voter-7"), window).unwrap();
    let claims = verify::<VoteToken>(&token, &keys).unwrap().doc;
    assert_eq!(claims.sub, "voter-7");
    assert_eq!((claims.nbf, claims.exp), (60, 10_000));
    claims.check_usable("e1", 500).unwrap();
}

#[test]
fn bulk_tokens_are_all_valid_and_distinct() {
    let (authority, keys) = authority();
    let window = TokenWindow::for_election(&manifest(), 60);
    let mut tokens = Vec::new();
    issue_tokens(&authority, &manifest(), window, 3000, 3, |batch| {
        assert!(batch.len() <= 1024);
        tokens.extend(batch);
        Ok(())
    })
    .unwrap();
    assert_eq!(tokens.len(), 3000);
    let mut ids = HashSet::new();
    let mut voters = HashSet::new();
    for token in &tokens {
        let claims = verify::<VoteToken>(token, &keys).unwrap().doc;
        assert!(ids.insert(claims.jti));
        assert!(voters.insert(claims.sub));
    }
}

#[test]
fn bulk_issue_stops_on_sink_error() {
    let (authority, _) = authority();
    let window = TokenWindow::for_election(&manifest(), 60);
    let mut calls = 0;
    let outcome = issue_tokens(&authority, &manifest(), window, 1_000_000, 2, |_| {
        calls += 1;
        Err(edgevote_signer::SignerError::Random("disk full".into()))
    });
    assert!(outcome.is_err());
    assert!(calls == 1, "sink not called again after an error");
}
