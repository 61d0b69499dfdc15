//! The edge handler core: every refusal over its HTTP surface, and the accepted path.

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used)]

use edgevote_edge_core::{Edge, Outcome, Request, Response, ServedElection};
use edgevote_shared::{
    ElectionManifest, ElectionOption, KeySet, Limits, Policy, QueueEnvelope, Receipt, Role,
    SigningIdentity, VoteToken, b64, sign, verify,
};
use serde_json::json;

const NOW_MS: u64 = 1_800_000_000_000;
const NOW: u64 = NOW_MS / 1000;

fn authority() -> SigningIdentity {
    SigningIdentity::from_seed(&[1; 32], Role::Authority)
}

fn edge_key() -> SigningIdentity {
    SigningIdentity::from_seed(&[2; 32], Role::Edge)
}

fn keys() -> KeySet {
    KeySet::from_jwks(vec![authority().public_jwk(0), edge_key().public_jwk(0)]).unwrap()
}

fn manifest(id: &str, opens_at: u64, closes_at: u64) -> ElectionManifest {
    ElectionManifest {
        v: 1,
        id: id.into(),
        title: "T".into(),
        options: vec![ElectionOption {
            id: "yes".into(),
            label: "Yes".into(),
        }],
        opens_at,
        closes_at,
        policy: Policy::FirstVoteWins,
        limits: Limits {
            max_ballot_bytes: 2048,
            max_votes_per_voter: 3,
        },
        created_at: 0,
    }
}

fn edge() -> Edge {
    let served = [
        manifest("open", NOW - 10, NOW + 10),
        manifest("closed", NOW - 20, NOW - 10),
        manifest("other", NOW - 10, NOW + 10),
    ]
    .into_iter()
    .map(|m| ServedElection {
        signed: sign(&authority(), &m).unwrap(),
        manifest: m,
    })
    .collect();
    Edge::new(served, keys(), edge_key(), "edge-1", "r1", None)
}

fn token(election: &str, exp: u64, signer: &SigningIdentity) -> String {
    let claims = VoteToken {
        jti: "t1".into(),
        sub: "v1".into(),
        aud: election.into(),
        iat: 0,
        nbf: 0,
        exp,
    };
    sign(signer, &claims).unwrap()
}

fn body(election: &str, token: &str, choice: &str) -> Vec<u8> {
    json!({"election": election, "token": token, "choice": choice, "nonce": b64::encode([9u8; 16])})
        .to_string()
        .into_bytes()
}

fn post(path: &str, content_type: Option<&str>, body: &[u8]) -> Outcome {
    edge().handle(
        Request {
            method: "POST",
            path,
            content_type,
            body,
        },
        NOW_MS,
    )
}

fn refused(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Respond(r) => r,
        Outcome::Enqueue(_) => panic!("a refusal was accepted"),
    }
}

#[test]
fn every_rejection_has_its_status_and_code_and_enqueues_nothing() {
    let good_token = token("open", NOW + 100, &authority());
    let vote = "/v1/elections/open/votes";
    let json = Some("application/json");
    let forged = {
        let stranger = SigningIdentity::from_seed(&[7; 32], Role::Authority);
        token("open", NOW + 100, &stranger)
    };
    let cases: Vec<(&str, Outcome, u16, &str)> = vec![
        (
            "bad JSON",
            post(vote, json, b"{not json"),
            400,
            "malformed_json",
        ),
        (
            "oversized body",
            post(vote, json, &vec![b' '; 4096]),
            413,
            "too_large",
        ),
        (
            "wrong content type",
            post(vote, Some("text/plain"), &body("open", &good_token, "yes")),
            415,
            "unsupported_media_type",
        ),
        (
            "no content type",
            post(vote, None, &body("open", &good_token, "yes")),
            415,
            "unsupported_media_type",
        ),
        (
            "unknown election",
            post(
                "/v1/elections/nope/votes",
                json,
                &body("nope", &good_token, "yes"),
            ),
            404,
            "unknown_election",
        ),
        (
            "closed election",
            post(
                "/v1/elections/closed/votes",
                json,
                &body("closed", &token("closed", NOW + 100, &authority()), "yes"),
            ),
            403,
            "election_closed",
        ),
        (
            "invalid choice",
            post(vote, json, &body("open", &good_token, "maybe")),
            422,
            "invalid_choice",
        ),
        (
            "forged token",
            post(vote, json, &body("open", &forged, "yes")),
            401,
            "unknown_key_id",
        ),
        (
            "expired token",
            post(
                vote,
                json,
                &body("open", &token("open", NOW - 1, &authority()), "yes"),
            ),
            403,
            "token_expired",
        ),
        (
            "token for another election",
            post(
                vote,
                json,
                &body("open", &token("other", NOW + 100, &authority()), "yes"),
            ),
            403,
            "wrong_election",
        ),
        (
            "ballot for another election",
            post(vote, json, &body("other", &good_token, "yes")),
            403,
            "wrong_election",
        ),
        (
            "deep JSON",
            post(
                vote,
                json,
                format!("{}{}", "[".repeat(40), "]".repeat(40)).as_bytes(),
            ),
            400,
            "too_deep",
        ),
        (
            "wrong method",
            edge().handle(
                Request {
                    method: "PUT",
                    path: vote,
                    content_type: json,
                    body: b"",
                },
                NOW_MS,
            ),
            405,
            "method_not_allowed",
        ),
        (
            "wrong path",
            edge().handle(
                Request {
                    method: "GET",
                    path: "/admin",
                    content_type: None,
                    body: b"",
                },
                NOW_MS,
            ),
            404,
            "not_found",
        ),
    ];
    for (name, outcome, status, code) in cases {
        let response = refused(outcome);
        assert_eq!(response.status, status, "{name}");
        assert_eq!(response.error_code().as_deref(), Some(code), "{name}");
    }
}

#[test]
fn accepted_vote_yields_receipt_and_envelope_only_on_request() {
    let e = edge();
    let token = token("open", NOW + 100, &authority());
    let request = Request {
        method: "POST",
        path: "/v1/elections/open/votes",
        content_type: Some("application/json; charset=utf-8"),
        body: &body("open", &token, "yes"),
    };
    let Outcome::Enqueue(accepted) = e.handle(request, NOW_MS) else {
        panic!("valid vote refused");
    };
    let envelope = e
        .seal("edge-1.1", vec![accepted.vote.clone()], NOW_MS)
        .unwrap();
    let sealed = verify::<QueueEnvelope>(&envelope, &keys()).unwrap().doc;
    assert_eq!(sealed.votes, vec![accepted.vote.clone()]);
    let response = e.receipt_response(&accepted);
    assert_eq!(response.status, 202);
    let value: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    let receipt = verify::<Receipt>(value["receipt"].as_str().unwrap(), &keys())
        .unwrap()
        .doc;
    assert_eq!(receipt.vote_id, accepted.admitted.vote_id);
    assert_eq!(receipt.received_at_ms, NOW_MS);
    assert_eq!(
        (receipt.edge.as_str(), receipt.region.as_str()),
        ("edge-1", "r1")
    );
}

#[test]
fn read_routes() {
    let e = edge();
    let get = |path| match e.handle(
        Request {
            method: "GET",
            path,
            content_type: None,
            body: b"",
        },
        NOW_MS,
    ) {
        Outcome::Respond(r) => r,
        Outcome::Enqueue(_) => panic!("GET enqueued"),
    };
    assert_eq!(get("/healthz").status, 200);
    let keys_response = get("/v1/keys");
    assert_eq!(KeySet::parse(&keys_response.body).unwrap(), keys());
    let manifest = get("/v1/elections/open");
    let value: serde_json::Value = serde_json::from_slice(&manifest.body).unwrap();
    assert!(verify::<ElectionManifest>(value["signed"].as_str().unwrap(), &keys()).is_ok());
    assert_eq!(get("/v1/elections/nope").status, 404);
    assert_eq!(
        Response::unavailable(2, "down").headers,
        vec![("retry-after", "2".to_owned())]
    );
}
