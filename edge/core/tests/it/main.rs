//! The edge handler core: every refusal over its HTTP surface, and the accepted path.

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used)]

use edgevote_edge_core::{
    ENVELOPE_OVERHEAD_BYTES, Edge, Outcome, Request, Response, Sealing, ServedElection,
};
use edgevote_shared::{
    ElectionManifest, ElectionOption, KeySet, Limits, Policy, QueueEnvelope, Receipt, Role,
    SigningIdentity, VoteToken, b64, sign, verify,
};
use serde_json::json;

mod commit;
mod page;

const NOW_MS: u64 = 1_800_000_000_000;
const NOW: u64 = NOW_MS / 1000;

fn authority() -> SigningIdentity {
    SigningIdentity::from_seed(&[1; 32], Role::Authority)
}

fn edge_key() -> SigningIdentity {
    SigningIdentity::from_seed(&[2; 32], Role::Edge)
}

fn keys() -> KeySet {
    KeySet::from_jwks(vec![
        authority().public_jwk(0),
        edge_key().public_jwk(0).bound_to("edge-1", "r1"),
    ])
    .unwrap()
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

fn served() -> Vec<ServedElection> {
    [
        manifest("open", NOW - 10, NOW + 10),
        manifest("closed", NOW - 20, NOW - 10),
        manifest("other", NOW - 10, NOW + 10),
    ]
    .into_iter()
    .map(|m| ServedElection {
        signed: sign(&authority(), &m).unwrap(),
        manifest: m,
    })
    .collect()
}

fn edge() -> Edge {
    Edge::new(served(), keys(), edge_key(), "edge-1", "r1", None)
}

/// The same edge without its key, as a component under host sealing runs it.
fn keyless_edge() -> Edge {
    Edge::with_sealing(served(), keys(), Sealing::Host, "edge-1", "r1", None)
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

/// One request of the refusal table.
struct Case {
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

fn case(method: &'static str, path: &str, content_type: Option<&'static str>, body: &[u8]) -> Case {
    Case {
        method,
        path: path.to_owned(),
        content_type,
        body: body.to_vec(),
    }
}

impl Case {
    fn request(&self) -> Request<'_> {
        Request {
            method: self.method,
            path: &self.path,
            content_type: self.content_type,
            body: &self.body,
        }
    }
}

fn refused(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Respond(r) => r,
        other => panic!("a refusal was accepted: {other:?}"),
    }
}

/// Host sealing end to end, natively: the keyless edge's answer, or the host's for a ballot
/// it was handed (checked again, then verified in a batch of one).
fn through_host(component: &Edge, host: &Edge, request: Request<'_>) -> Outcome {
    match component.handle(request, NOW_MS) {
        Outcome::HandToHost(handed) => {
            let vote = match host.check_handed(&handed.election, &handed.body, NOW_MS) {
                Ok(vote) => vote,
                Err(refusal) => return Outcome::Respond(refusal),
            };
            match host.verify_handed(vec![vote]).pop().unwrap() {
                Ok(accepted) => Outcome::Enqueue(Box::new(accepted)),
                Err(refusal) => Outcome::Respond(refusal),
            }
        }
        other => other,
    }
}

/// The same edge with its key on its platform (WebCrypto on Workers), as a Worker runs it.
fn platform_edge() -> Edge {
    let key = edgevote_edge_core::PlatformKey {
        kid: edge_key().kid().to_owned(),
    };
    Edge::with_sealing(
        served(),
        keys(),
        Sealing::Platform(key),
        "edge-1",
        "r1",
        None,
    )
}

/// What a platform's RFC 8032 Ed25519 says (ed25519-dalek's non-strict verification).
fn platform_verdict(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let key = ed25519_dalek::VerifyingKey::from_bytes(public_key).unwrap();
    let signature = ed25519_dalek::Signature::from_bytes(signature);
    ed25519_dalek::Verifier::verify(&key, message, &signature).is_ok()
}

/// Platform sealing end to end: the edge's answer, or its verdict on the token's signature as
/// `verdict` (the platform) gives it.
fn through_platform(
    edge: &Edge,
    request: Request<'_>,
    verdict: impl Fn(&[u8; 32], &[u8], &[u8; 64]) -> bool,
) -> Outcome {
    match edge.handle(request, NOW_MS) {
        Outcome::VerifyOnPlatform(vote) => {
            let (key, message, signature) = vote.signature_parts();
            let valid = verdict(key, message, signature);
            match edge.admit_on_platform(*vote, valid) {
                Ok(accepted) => Outcome::Enqueue(Box::new(accepted)),
                Err(refusal) => Outcome::Respond(refusal),
            }
        }
        other => other,
    }
}

/// Every refusal of the table, under every sealing: the same status and code either way.
#[test]
fn every_rejection_has_its_status_and_code_and_enqueues_nothing() {
    let good_token = token("open", NOW + 100, &authority());
    let vote = "/v1/elections/open/votes";
    let json = Some("application/json");
    let forged = {
        let stranger = SigningIdentity::from_seed(&[7; 32], Role::Authority);
        token("open", NOW + 100, &stranger)
    };
    let bad_signature = {
        // One signature character changed, away from the end (whose low bits are padding).
        let mut t = good_token.clone();
        let at = t.len() - 10;
        let other = if &t[at..=at] == "A" { "B" } else { "A" };
        t.replace_range(at..=at, other);
        t
    };
    let cases: Vec<(&str, Case, u16, &str)> = vec![
        (
            "bad signature",
            case("POST", vote, json, &body("open", &bad_signature, "yes")),
            401,
            "bad_signature",
        ),
        (
            "bad JSON",
            case("POST", vote, json, b"{not json"),
            400,
            "malformed_json",
        ),
        (
            "oversized body",
            case("POST", vote, json, &vec![b' '; 4096]),
            413,
            "too_large",
        ),
        (
            "wrong content type",
            case(
                "POST",
                vote,
                Some("text/plain"),
                &body("open", &good_token, "yes"),
            ),
            415,
            "unsupported_media_type",
        ),
        (
            "no content type",
            case("POST", vote, None, &body("open", &good_token, "yes")),
            415,
            "unsupported_media_type",
        ),
        (
            "unknown election",
            case(
                "POST",
                "/v1/elections/nope/votes",
                json,
                &body("nope", &good_token, "yes"),
            ),
            404,
            "unknown_election",
        ),
        (
            "closed election",
            case(
                "POST",
                "/v1/elections/closed/votes",
                json,
                &body("closed", &token("closed", NOW + 100, &authority()), "yes"),
            ),
            403,
            "election_closed",
        ),
        (
            "invalid choice",
            case("POST", vote, json, &body("open", &good_token, "maybe")),
            422,
            "invalid_choice",
        ),
        (
            "forged token",
            case("POST", vote, json, &body("open", &forged, "yes")),
            401,
            "unknown_key_id",
        ),
        (
            "expired token",
            case(
                "POST",
                vote,
                json,
                &body("open", &token("open", NOW - 1, &authority()), "yes"),
            ),
            403,
            "token_expired",
        ),
        (
            "token for another election",
            case(
                "POST",
                vote,
                json,
                &body("open", &token("other", NOW + 100, &authority()), "yes"),
            ),
            403,
            "wrong_election",
        ),
        (
            "ballot for another election",
            case("POST", vote, json, &body("other", &good_token, "yes")),
            403,
            "wrong_election",
        ),
        (
            "deep JSON",
            case(
                "POST",
                vote,
                json,
                format!("{}{}", "[".repeat(40), "]".repeat(40)).as_bytes(),
            ),
            400,
            "too_deep",
        ),
        (
            "wrong method",
            case("PUT", vote, json, b""),
            405,
            "method_not_allowed",
        ),
        (
            "wrong path",
            case("GET", "/admin", None, b""),
            404,
            "not_found",
        ),
    ];
    let (local, component, host) = (edge(), keyless_edge(), edge());
    let platform = platform_edge();
    for (name, case, status, code) in cases {
        for (sealing, outcome) in [
            ("local", local.handle(case.request(), NOW_MS)),
            ("host", through_host(&component, &host, case.request())),
            (
                "platform",
                through_platform(&platform, case.request(), platform_verdict),
            ),
        ] {
            let response = refused(outcome);
            assert_eq!(response.status, status, "{name} ({sealing} sealing)");
            assert_eq!(
                response.error_code().as_deref(),
                Some(code),
                "{name} ({sealing} sealing)"
            );
        }
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
fn platform_sealing_accepts_what_local_sealing_accepts_and_signs_on_the_platform() {
    let (local, platform) = (edge(), platform_edge());
    let vote = case(
        "POST",
        "/v1/elections/open/votes",
        Some("application/json"),
        &body("open", &token("open", NOW + 100, &authority()), "yes"),
    );
    let Outcome::Enqueue(expected) = local.handle(vote.request(), NOW_MS) else {
        panic!("local sealing refused the vote");
    };
    let Outcome::Enqueue(accepted) = through_platform(&platform, vote.request(), platform_verdict)
    else {
        panic!("platform sealing refused the vote");
    };
    assert_eq!(
        (&accepted.admitted, &accepted.vote),
        (&expected.admitted, &expected.vote)
    );
    // The platform signs what the edge prepares; the documents verify with the key set.
    let unsigned = platform
        .envelopes_to_sign(&[*accepted.clone()], NOW_MS)
        .unwrap();
    let [unsigned] = <[_; 1]>::try_from(unsigned).expect("one vote, one envelope");
    let signature = edge_key().sign_message(unsigned.message());
    let envelope = unsigned.finish(&signature).unwrap();
    let sealed = verify::<QueueEnvelope>(&envelope, &keys()).unwrap().doc;
    assert_eq!(sealed.votes, vec![expected.vote.clone()]);
    assert_eq!(
        vec![envelope],
        local.seal_batch(&[*expected.clone()], NOW_MS).unwrap()
    );
    let receipt = platform.receipt_to_sign(&accepted).unwrap();
    let signature = edge_key().sign_message(receipt.message());
    let response = receipt.respond(&signature);
    assert_eq!(response.status, 202);
    assert_eq!(response.body, local.receipt_response(&expected).body);
    // The platform edge holds no key of its own: it cannot sign behind the platform's back.
    assert!(platform.seal_single(&accepted, NOW_MS).is_err());
    assert_eq!(platform.receipt_response(&accepted).status, 500);
}

#[test]
fn a_platform_that_says_yes_to_anything_still_admits_no_forgery_it_is_not_asked_about() {
    let platform = platform_edge();
    let genuine = token("open", NOW + 100, &authority());
    let lax = |_: &[u8; 32], _: &[u8], _: &[u8; 64]| true;
    // Signatures no strict verifier accepts, whatever the platform says of the equation.
    for (name, forged) in [
        (
            "non-canonical S",
            edgevote_shared::forgery::with_non_canonical_s(&genuine),
        ),
        (
            "small-order R",
            edgevote_shared::forgery::with_small_order_signature(&genuine),
        ),
    ] {
        let request = case(
            "POST",
            "/v1/elections/open/votes",
            Some("application/json"),
            &body("open", &forged, "yes"),
        );
        let refusal = refused(through_platform(&platform, request.request(), lax));
        assert_eq!(
            (refusal.status, refusal.error_code().as_deref()),
            (401, Some("bad_signature")),
            "{name}"
        );
    }
    // A token of a key outside the key set never reaches the platform.
    let stranger = SigningIdentity::from_seed(&[7; 32], Role::Authority);
    let request = case(
        "POST",
        "/v1/elections/open/votes",
        Some("application/json"),
        &body("open", &token("open", NOW + 100, &stranger), "yes"),
    );
    let asked = std::cell::Cell::new(false);
    let refusal = refused(through_platform(&platform, request.request(), |_, _, _| {
        asked.set(true);
        true
    }));
    assert_eq!(refusal.error_code().as_deref(), Some("unknown_key_id"));
    assert!(!asked.get());
}

/// Voter `voter`'s token for the open election (id `t{voter}`), signed by `signer`.
fn voter_token(voter: u32, signer: &SigningIdentity) -> String {
    let claims = VoteToken {
        jti: format!("t{voter}"),
        sub: format!("v{voter}"),
        aud: "open".into(),
        iat: 0,
        nbf: 0,
        exp: NOW + 100,
    };
    sign(signer, &claims).unwrap()
}

/// The body of a vote for "yes" by voter `voter` (a token of its own).
fn voter_body(voter: u8) -> Vec<u8> {
    body("open", &voter_token(voter.into(), &authority()), "yes")
}

/// A vote request with `body` for the open election.
fn vote_request(body: &[u8]) -> Case {
    case(
        "POST",
        "/v1/elections/open/votes",
        Some("application/json"),
        body,
    )
}

#[test]
fn host_sealing_accepts_what_local_sealing_accepts_and_seals_batches() {
    let (local, component, host) = (edge(), keyless_edge(), edge());
    let mut handed = Vec::new();
    for voter in 0..=255u8 {
        let case = vote_request(&voter_body(voter));
        let Outcome::Enqueue(expected) = local.handle(case.request(), NOW_MS) else {
            panic!("local sealing refused voter {voter}");
        };
        let Outcome::HandToHost(h) = component.handle(case.request(), NOW_MS) else {
            panic!("the keyless edge did not hand voter {voter} over");
        };
        let checked = host.check_handed(&h.election, &h.body, NOW_MS).unwrap();
        handed.push((checked, expected));
    }
    // One more voter, a forged token among them: the batch fails, only the culprit is refused.
    let stranger = SigningIdentity::from_seed(&[7; 32], Role::Authority);
    let forged = body("open", &token("open", NOW + 100, &stranger), "yes");
    let Outcome::HandToHost(h) = component.handle(vote_request(&forged).request(), NOW_MS) else {
        panic!("the keyless edge cannot see a signature and should hand it over");
    };
    let mut votes: Vec<_> = handed.iter().map(|(v, _)| v.clone()).collect();
    votes.push(host.check_handed(&h.election, &h.body, NOW_MS).unwrap());
    let results = host.verify_handed(votes);
    assert_eq!(results.len(), 257);
    let refusal = results.last().unwrap().as_ref().unwrap_err();
    assert_eq!(refusal.error_code().as_deref(), Some("unknown_key_id"));
    let accepted: Vec<_> = results.into_iter().take(256).map(Result::unwrap).collect();
    for (got, (_, expected)) in accepted.iter().zip(&handed) {
        assert_eq!(got.admitted, expected.admitted);
        assert_eq!(got.vote, expected.vote);
    }
    // 256 votes fit one envelope; 257 take two (the envelope's vote bound), every vote once.
    let one = host.seal_batch(&accepted, NOW_MS).unwrap();
    assert_eq!(one.len(), 1);
    let mut more = accepted.clone();
    more.push(accepted[0].clone());
    let two = host.seal_batch(&more, NOW_MS).unwrap();
    assert_eq!(two.len(), 2);
    let sealed: Vec<QueueEnvelope> = two
        .iter()
        .map(|e| verify::<QueueEnvelope>(e, &keys()).unwrap().doc)
        .collect();
    assert_ne!(sealed[0].batch_id, sealed[1].batch_id);
    assert_eq!(sealed.iter().map(|e| e.votes.len()).sum::<usize>(), 257);
    // The same votes sealed again keep their batch id (a retry is recognisable).
    let again = host.seal_batch(&accepted, NOW_MS + 5).unwrap();
    assert_eq!(
        verify::<QueueEnvelope>(&again[0], &keys())
            .unwrap()
            .doc
            .batch_id,
        verify::<QueueEnvelope>(&one[0], &keys())
            .unwrap()
            .doc
            .batch_id
    );
    // The host signs the receipt, naming the bundle it was given; the keyless edge cannot.
    let bundle = Some(edgevote_shared::Digest32::of(b"bundle"));
    let response = host.receipt_response_for(&accepted[0], bundle);
    let value: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    let receipt = verify::<Receipt>(value["receipt"].as_str().unwrap(), &keys())
        .unwrap()
        .doc;
    assert_eq!(receipt.bundle_sha256, bundle);
    assert_eq!(receipt.vote_id, accepted[0].admitted.vote_id);
    assert_eq!(component.receipt_response(&accepted[0]).status, 500);
    assert!(component.seal_batch(&accepted, NOW_MS).is_err());
}

#[test]
fn platform_sealing_seals_a_batch_under_one_signature_as_local_sealing_does() {
    let (local, platform) = (edge(), platform_edge());
    let accepted: Vec<_> = (0..=255u8)
        .map(|voter| {
            let case = vote_request(&voter_body(voter));
            match through_platform(&platform, case.request(), platform_verdict) {
                Outcome::Enqueue(accepted) => *accepted,
                _ => panic!("platform sealing refused voter {voter}"),
            }
        })
        .collect();
    let signatures = std::cell::Cell::new(0);
    let sign_on_platform = |votes: &[_]| -> Vec<String> {
        let unsigned = platform.envelopes_to_sign(votes, NOW_MS).unwrap();
        unsigned
            .into_iter()
            .map(|envelope| {
                signatures.set(signatures.get() + 1);
                let signature = edge_key().sign_message(envelope.message());
                envelope.finish(&signature).unwrap()
            })
            .collect()
    };
    // 256 votes, one signature: the very envelope local sealing makes of them.
    let one = sign_on_platform(&accepted);
    assert_eq!(signatures.get(), 1);
    assert_eq!(one, local.seal_batch(&accepted, NOW_MS).unwrap());
    let sealed = verify::<QueueEnvelope>(&one[0], &keys()).unwrap().doc;
    let votes: Vec<_> = accepted.iter().map(|a| a.vote.clone()).collect();
    assert_eq!(sealed.votes, votes);
    // 257 votes: over the envelope's vote bound, two envelopes, every vote once.
    let mut more = accepted.clone();
    more.push(accepted[0].clone());
    let two = sign_on_platform(&more);
    assert_eq!(two, local.seal_batch(&more, NOW_MS).unwrap());
    assert_eq!(signatures.get(), 3);
    // The estimate group commit packs by bounds what each vote takes in the envelope.
    let estimated = ENVELOPE_OVERHEAD_BYTES
        + accepted
            .iter()
            .map(|a| a.envelope_bytes() + 1)
            .sum::<usize>();
    assert!(one[0].len() <= estimated, "{} > {estimated}", one[0].len());
    // An edge whose platform holds no key prepares nothing to sign.
    assert!(local.envelopes_to_sign(&accepted, NOW_MS).is_err());
}

#[test]
fn host_seal_paths() {
    use edgevote_edge_core::{host_seal_election, host_seal_url};
    let url = host_seal_url("ref-2026");
    assert_eq!(
        url,
        "http://sealer.edgevote.invalid/v1/elections/ref-2026/seal"
    );
    assert_eq!(
        host_seal_election("/v1/elections/ref-2026/seal"),
        Some("ref-2026")
    );
    for bad in [
        "/v1/elections//seal",
        "/v1/elections/a/b/seal",
        "/v1/elections/a/votes",
        "/seal",
    ] {
        assert_eq!(host_seal_election(bad), None, "{bad}");
    }
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
        other => panic!("GET enqueued: {other:?}"),
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

/// A group commit of 256 votes, one carrying a token whose payload was changed under its valid
/// signature (an attacker holding one token; its key id is known, so the batch itself fails):
/// only that vote is refused, with the code strict verification gives it; every other vote is
/// accepted, wherever the culprit sits.
#[test]
fn one_forged_token_in_a_group_commit_of_256_refuses_only_itself() {
    let host = edge();
    for culprit in [0, 100, 255] {
        let votes: Vec<_> = (0..256)
            .map(|voter| {
                let mut token = voter_token(voter, &authority());
                if voter == culprit {
                    let parts: Vec<&str> = token.split('.').collect();
                    let claims = json!({"jti": "forged", "sub": "mallory", "aud": "open",
                        "iat": 0, "nbf": 0, "exp": NOW + 100});
                    token = format!(
                        "{}.{}.{}",
                        parts[0],
                        b64::encode(claims.to_string()),
                        parts[2]
                    );
                }
                host.check_handed("open", &body("open", &token, "yes"), NOW_MS)
                    .unwrap()
            })
            .collect();
        let results = host.verify_handed(votes);
        assert_eq!(results.len(), 256);
        for (voter, result) in results.iter().enumerate() {
            if voter as u32 == culprit {
                let refusal = result.as_ref().unwrap_err();
                assert_eq!(refusal.error_code().as_deref(), Some("bad_signature"));
            } else {
                assert!(result.is_ok(), "culprit {culprit}: voter {voter} refused");
            }
        }
    }
}

/// Every refusal, whoever answers it (the core, the host's front, its admin endpoint, the
/// Spin component, the Worker), has one body: these exact bytes.
#[test]
fn one_refusal_body_for_every_answer() {
    use edgevote_edge_core::Refusal;
    let refusal = Refusal::new(429, "rate_limited", "too many requests for this vote token");
    let bytes = br#"{"detail":"too many requests for this vote token","error":"rate_limited"}"#;
    assert_eq!(refusal.body(), bytes);
    let response = Response::from(refusal.clone());
    assert_eq!(response.status, 429);
    assert_eq!(response.content_type, "application/json");
    assert_eq!(response.body, bytes);
    assert_eq!(response.error_code().as_deref(), Some("rate_limited"));
    assert_eq!(
        Response::error(429, "rate_limited", &refusal.detail),
        response
    );
    let outcome = edge().handle(case("GET", "/nowhere", None, b"").request(), NOW_MS);
    assert_eq!(
        refused(outcome).body,
        br#"{"detail":"/nowhere","error":"not_found"}"#
    );
}

/// The adapters' bounded body read: chunks are kept up to the limit, then the body is full;
/// a failed chunk is its error's text.
#[test]
fn bodies_are_read_up_to_their_limit() {
    use edgevote_edge_core::append_bounded;
    let mut body = Vec::new();
    let ok = |chunk: &'static [u8]| Ok::<_, String>(chunk);
    assert_eq!(append_bounded(&mut body, ok(b"abc"), 5), Ok(false));
    assert_eq!(append_bounded(&mut body, ok(b"defg"), 5), Ok(true));
    assert_eq!(body, b"abcde");
    assert_eq!(
        append_bounded(&mut body, Err::<&[u8], _>("reset"), 5),
        Err("reset".to_owned())
    );
}
