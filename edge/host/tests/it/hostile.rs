//! The hostile-input catalogue against the HTTP edge: the real component in the host, each
//! case a request an attacker or a broken client could send. Every case must get its expected
//! 4xx and error code (or, for slow heads, a closed connection), and nothing may be enqueued.
//! The queue-consumer half of the catalogue is in the collector's tests.

use std::sync::atomic::Ordering;
use std::time::Duration;

use edgevote_shared::forgery::{
    sign_raw as forge, with_non_canonical_s as non_canonical,
    with_small_order_signature as small_order_signature,
};
use edgevote_shared::{Role, SigningIdentity, VoteToken, b64, sign};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use edgevote_edge_host::SealingMode;

use crate::fixture::{Deployment, Running, now_secs};
use crate::http::{Reply, ballot, parse_reply, request, vote};

/// How a case is sent.
enum Send {
    /// A vote body to `POST /v1/elections/{election}/votes` as JSON.
    Vote(&'static str, Vec<u8>),
    /// Method, path, content type, body.
    Request(&'static str, String, Option<&'static str>, Vec<u8>),
    /// Raw bytes; then the connection's write side is closed.
    Raw(Vec<u8>),
    /// Raw bytes, then silence with the connection held open (a slow client).
    Stall(Vec<u8>),
}

/// What must come back.
enum Expect {
    /// Status and error code.
    Refused(u16, &'static str),
    /// Status only (refused by the HTTP layer, before any JSON).
    Status(u16),
    /// The connection is closed without a response (or with 408).
    Closed,
    /// This status, or the connection closed without a response (framing the HTTP layer may
    /// refuse outright or answer and then close).
    StatusOrClosed(u16),
}

/// A raw request line and headers (no body), then a blank line.
fn raw_head(lines: &str) -> Send {
    Send::Raw(format!("{lines}\r\n\r\n").into_bytes())
}

struct Case {
    name: &'static str,
    send: Send,
    expect: Expect,
}

fn case(name: &'static str, send: Send, expect: Expect) -> Case {
    Case { name, send, expect }
}

fn claims(voter: &str, election: &str) -> VoteToken {
    VoteToken {
        jti: format!("t-{voter}"),
        sub: voter.into(),
        aud: election.into(),
        iat: now_secs() - 30,
        nbf: now_secs() - 30,
        exp: now_secs() + 600,
    }
}

fn token_header(kid: &str) -> serde_json::Value {
    serde_json::json!({"alg": "EdDSA", "kid": kid, "typ": "edgevote-token+jwt"})
}

fn json_ballot(token: &str, choice: serde_json::Value) -> Vec<u8> {
    serde_json::json!({
        "election": "open",
        "token": token,
        "choice": choice,
        "nonce": b64::encode([1u8; 16]),
    })
    .to_string()
    .into_bytes()
}

fn head(method: &str, path: &str, extra: &str, body_len: usize) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n{extra}Content-Length: {body_len}\r\n\r\n"
    )
    .into_bytes()
}

fn cases(d: &Deployment) -> Vec<Case> {
    use Expect::{Closed, Refused, Status, StatusOrClosed};
    use Send::{Raw, Request, Stall, Vote};
    let token = d.token("open", "h1", now_secs() + 3600);
    let authority_kid = d.authority.kid().to_owned();
    let edge_key = d.store.signing_identity(Role::Edge, None).unwrap();
    let stranger = SigningIdentity::from_seed(&[9; 32], Role::Authority);
    let good = ballot("open", &token, "yes", 1);
    let votes = "/v1/elections/open/votes".to_owned();
    let mut deep = "[".repeat(2000).into_bytes();
    deep.extend("]".repeat(2000).into_bytes());
    let huge_exp = br#"{"jti":"t-h9","sub":"h9","aud":"open","iat":1,"nbf":1,"exp":1e400}"#;
    let with_crit = serde_json::json!({"alg": "EdDSA", "kid": authority_kid, "typ": "edgevote-token+jwt", "crit": ["exp"]});
    let alg_none =
        serde_json::json!({"alg": "none", "kid": authority_kid, "typ": "edgevote-token+jwt"});
    let claims_json = serde_json::to_vec(&claims("h2", "open")).unwrap();
    let mut body_then_stall = head("POST", &votes, "", 400);
    body_then_stall.extend_from_slice(&good[..20]);
    let mut short_body = head("POST", &votes, "", 400);
    short_body.extend_from_slice(&good[..20]);
    vec![
        // Body: JSON shape and encoding.
        case("bad JSON", Vote("open", b"{nope".to_vec()), Refused(400, "malformed_json")),
        case("empty body", Vote("open", Vec::new()), Refused(400, "malformed_json")),
        case("malformed UTF-8", Vote("open", b"{\"election\":\"op\xffen\"}".to_vec()), Refused(400, "malformed_json")),
        case("JSON array instead of object", Vote("open", b"[1,2,3]".to_vec()), Refused(400, "malformed_json")),
        case("nesting 2000 levels deep", Vote("open", deep), Refused(400, "too_deep")),
        case("huge number as the choice", Vote("open", json_ballot(&token, serde_json::json!(1e300))), Refused(400, "malformed_json")),
        case("number literal beyond f64", Vote("open", br#"{"election":"open","token":"x","choice":1e999999,"nonce":"x"}"#.to_vec()), Refused(400, "malformed_json")),
        case("missing token", Vote("open", br#"{"election":"open","choice":"yes","nonce":"AAAAAAAAAAAAAAAAAAAAAA"}"#.to_vec()), Refused(400, "malformed_json")),
        case("unknown field", Vote("open", { let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap(); v["admin"] = true.into(); v.to_string().into_bytes() }), Refused(400, "malformed_json")),
        case("duplicate field", Vote("open", format!(r#"{{"election":"open","token":"{token}","choice":"yes","choice":"no","nonce":"AAAAAAAAAAAAAAAAAAAAAA"}}"#).into_bytes()), Refused(400, "malformed_json")),
        case("NUL byte in the choice", Vote("open", json_ballot(&token, "ye\u{0}s".into())), Refused(400, "invalid_field")),
        case("nonce too short", Vote("open", { let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap(); v["nonce"] = "AAAA".into(); v.to_string().into_bytes() }), Refused(400, "invalid_field")),
        case("oversized ballot (8000 bytes)", Vote("open", vec![b' '; 8000]), Refused(413, "too_large")),
        case("oversized body (100 KiB)", Vote("open", vec![b'x'; 100 * 1024]), Refused(413, "too_large")),
        // Election and choice.
        case("unknown election", Vote("nope", ballot("nope", &token, "yes", 1)), Refused(404, "unknown_election")),
        case("closed election", Vote("closed", ballot("closed", &d.token("closed", "h1", now_secs() + 60), "yes", 1)), Refused(403, "election_closed")),
        case("ballot election differs from the URL", Vote("other", good.clone()), Refused(403, "wrong_election")),
        case("invalid choice", Vote("open", ballot("open", &token, "maybe", 1)), Refused(422, "invalid_choice")),
        // Tokens. (The truncated one loses 21 of its 86 signature characters: 65 is never a
        // valid base64url length, so the refusal does not depend on the random key.)
        case("token from an unknown authority", Vote("open", ballot("open", &sign(&stranger, &claims("h3", "open")).unwrap(), "yes", 1)), Refused(401, "unknown_key_id")),
        case("expired token", Vote("open", ballot("open", &d.token("open", "h4", now_secs() - 1), "yes", 1)), Refused(403, "token_expired")),
        case("token not yet valid", Vote("open", ballot("open", &sign(&d.authority, &VoteToken { nbf: now_secs() + 3600, exp: now_secs() + 7200, ..claims("h5", "open") }).unwrap(), "yes", 1)), Refused(403, "token_not_yet_valid")),
        case("token for another election", Vote("open", ballot("open", &d.token("other", "h1", now_secs() + 60), "yes", 1)), Refused(403, "wrong_election")),
        case("token signed by an edge key", Vote("open", ballot("open", &forge(&token_header(edge_key.kid()), &claims_json, &edge_key), "yes", 1)), Refused(401, "key_role_mismatch")),
        case("token with alg none", Vote("open", ballot("open", &forge(&alg_none, &claims_json, &d.authority), "yes", 1)), Refused(400, "unsupported_alg")),
        case("token with a crit header", Vote("open", ballot("open", &forge(&with_crit, &claims_json, &d.authority), "yes", 1)), Refused(400, "unsupported_header")),
        case("token with non-canonical S", Vote("open", ballot("open", &non_canonical(&token), "yes", 1)), Refused(401, "bad_signature")),
        case("token with a small-order forged signature", Vote("open", ballot("open", &small_order_signature(&token), "yes", 1)), Refused(401, "bad_signature")),
        case("token with a tampered payload", Vote("open", ballot("open", &forge(&token_header(&authority_kid), &serde_json::to_vec(&claims("h6", "open")).unwrap(), &stranger), "yes", 1)), Refused(401, "bad_signature")),
        case("truncated token", Vote("open", ballot("open", &token[..token.len() - 21], "yes", 1)), Refused(400, "malformed_base64")),
        case("token with a huge number", Vote("open", ballot("open", &forge(&token_header(&authority_kid), huge_exp, &d.authority), "yes", 1)), Refused(400, "malformed_json")),
        // HTTP: methods, paths, headers, framing, slowness.
        case("wrong content type", Request("POST", votes.clone(), Some("text/plain"), good.clone()), Refused(415, "unsupported_media_type")),
        case("no content type", Request("POST", votes.clone(), None, good.clone()), Refused(415, "unsupported_media_type")),
        case("DELETE on votes", Request("DELETE", votes.clone(), None, Vec::new()), Refused(405, "method_not_allowed")),
        case("GET on votes", Request("GET", votes.clone(), None, Vec::new()), Refused(405, "method_not_allowed")),
        case("unknown path", Request("POST", "/v2/ballots".into(), Some("application/json"), good.clone()), Refused(404, "not_found")),
        case("path traversal", Request("POST", "/v1/elections/../keys/votes".into(), Some("application/json"), good.clone()), Refused(404, "not_found")),
        case("path of 6000 characters", Request("POST", format!("/v1/elections/{}/votes", "a".repeat(6000)), Some("application/json"), good.clone()), Refused(404, "unknown_election")),
        case("oversized headers (40 KiB)", Raw(head("POST", &votes, &format!("X-Junk: {}\r\n", "j".repeat(40 * 1024)), 0)), Status(431)),
        case("non-UTF-8 bytes in the path", Raw(b"POST /v1/elections/op\xffen/votes HTTP/1.1\r\nHost: e\r\nContent-Length: 0\r\n\r\n".to_vec()), Status(400)),
        case("garbage request line", Raw(b"\x16\x03\x01\x02\x00 hello\r\n\r\n".to_vec()), Status(400)),
        case("Content-Length and chunked together", Raw([head("POST", &votes, "Transfer-Encoding: chunked\r\n", 5), b"0\r\n\r\n".to_vec()].concat()), StatusOrClosed(400)),
        case("malformed chunked body", Raw([b"POST /v1/elections/open/votes HTTP/1.1\r\nHost: e\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nxx\r\n".to_vec()].concat()), Refused(400, "incomplete_body")),
        case("body shorter than Content-Length", Raw(short_body), Refused(400, "incomplete_body")),
        case("slow body (stalls mid-body)", Stall(body_then_stall), Refused(408, "request_timeout")),
        case("slow head (stalls mid-headers)", Stall(b"POST /v1/elections/open/votes HTTP/1.1\r\nHost: e\r\nContent-Ty".to_vec()), Closed),
        // The head as the host's front screens it: Host, methods, targets, Expect, encodings.
        case("HTTP/1.1 read without Host", raw_head("GET /v1/keys HTTP/1.1"), Refused(400, "missing_host")),
        case("HTTP/1.1 vote without Host", Raw([b"POST /v1/elections/open/votes HTTP/1.1\r\nContent-Type: application/json\r\n".to_vec(), format!("Content-Length: {}\r\n\r\n", good.len()).into_bytes(), good.clone()].concat()), Refused(400, "missing_host")),
        case("two Host headers", raw_head("GET /v1/keys HTTP/1.1\r\nHost: a\r\nHost: b"), Refused(400, "bad_host")),
        case("Host with user info", raw_head("GET /v1/keys HTTP/1.1\r\nHost: user@edge"), Refused(400, "bad_host")),
        case("Host with a non-ASCII byte", Raw(b"GET /v1/keys HTTP/1.1\r\nHost: ed\xffge\r\n\r\n".to_vec()), Refused(400, "bad_host")),
        case("empty Host", raw_head("GET /v1/keys HTTP/1.1\r\nHost: "), Refused(400, "bad_host")),
        case("Expect: 100-continue with a 1 GB Content-Length", Raw(head("POST", &votes, "Expect: 100-continue\r\n", 1 << 30)), Refused(413, "too_large")),
        case("Content-Length over the ballot limit, no Expect", Raw(head("POST", &votes, "", 20_000)), Refused(413, "too_large")),
        case("unknown expectation", Raw([head("POST", &votes, "Expect: 200-ok\r\n", good.len()), good.clone()].concat()), Refused(417, "expectation_failed")),
        case("two Content-Type headers", Raw([head("POST", &votes, "Content-Type: text/plain\r\n", good.len()), good.clone()].concat()), Refused(400, "duplicate_header")),
        case("gzip Content-Encoding", Raw([head("POST", &votes, "Content-Encoding: gzip\r\n", good.len()), good.clone()].concat()), Refused(415, "unsupported_encoding")),
        case("gzip then chunked Transfer-Encoding", Raw(b"POST /v1/elections/open/votes HTTP/1.1\r\nHost: e\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n".to_vec()), Refused(415, "unsupported_encoding")),
        case("Transfer-Encoding without chunked", Raw(b"POST /v1/elections/open/votes HTTP/1.1\r\nHost: e\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip\r\n\r\nxx".to_vec()), StatusOrClosed(400)),
        case("CONNECT", raw_head("CONNECT edge:443 HTTP/1.1\r\nHost: edge:443"), Refused(405, "method_not_allowed")),
        case("TRACE", raw_head("TRACE /v1/keys HTTP/1.1\r\nHost: edge"), Refused(405, "method_not_allowed")),
        case("extension method", raw_head("BREW /v1/keys HTTP/1.1\r\nHost: edge"), Refused(405, "method_not_allowed")),
        case("lower-case method", raw_head("post /v1/elections/open/votes HTTP/1.1\r\nHost: edge"), Refused(405, "method_not_allowed")),
        case("asterisk target on GET", raw_head("GET * HTTP/1.1\r\nHost: edge"), Refused(400, "bad_target")),
        case("authority target on GET", raw_head("GET edge:80 HTTP/1.1\r\nHost: edge"), Refused(400, "bad_target")),
        case("OPTIONS *", raw_head("OPTIONS * HTTP/1.1\r\nHost: edge"), Refused(404, "not_found")),
        // The head as the HTTP layer parses it: a bare 4xx and a close (no JSON is possible).
        // HTTP/2 is served with prior knowledge: broken frames after the preface close the connection.
        case("HTTP/2 preface, then a truncated SETTINGS frame", Raw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00".to_vec()), Closed),
        case("HTTP/2 preface, then a SETTINGS frame of a bad size", Raw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x03\x04\x00\x00\x00\x00\x00abc".to_vec()), Closed),
        case("HTTP/2 preface, then HTTP/1 text", Raw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nGET /v1/keys HTTP/1.1\r\nHost: edge\r\n\r\n".to_vec()), Closed),
        case("half an HTTP/2 preface, then silence", Stall(b"PRI * HTTP/2.0\r\n".to_vec()), Closed),
        case("HTTP/2.0 in the request line", raw_head("GET /v1/keys HTTP/2.0\r\nHost: edge"), StatusOrClosed(400)),
        case("HTTP/1.2 in the request line", raw_head("GET /v1/keys HTTP/1.2\r\nHost: edge"), StatusOrClosed(400)),
        case("HTTP/0.9 request line", Raw(b"GET /v1/keys\r\n".to_vec()), StatusOrClosed(400)),
        case("two different Content-Lengths", Raw([head("POST", &votes, "Content-Length: 3\r\n", good.len()), good.clone()].concat()), StatusOrClosed(400)),
        case("negative Content-Length", raw_head("POST /v1/elections/open/votes HTTP/1.1\r\nHost: edge\r\nContent-Length: -1"), StatusOrClosed(400)),
        case("header line without a colon", raw_head("GET /v1/keys HTTP/1.1\r\nHost: edge\r\nno colon here"), StatusOrClosed(400)),
        case("obsolete folded header", raw_head("GET /v1/keys HTTP/1.1\r\nHost: edge\r\nX-A: 1\r\n  folded"), StatusOrClosed(400)),
        case("NUL in a header value", Raw(b"GET /v1/keys HTTP/1.1\r\nHost: edge\r\nX-A: a\x00b\r\n\r\n".to_vec()), StatusOrClosed(400)),
        case("120 headers", raw_head(&format!("GET /v1/keys HTTP/1.1\r\nHost: edge{}", (0..120).map(|i| format!("\r\nX-{i}: v")).collect::<String>())), StatusOrClosed(431)),
        case("request line of 20 KiB", raw_head(&format!("GET /v1/{} HTTP/1.1\r\nHost: edge", "a".repeat(20 * 1024))), StatusOrClosed(431)),
    ]
}

async fn send(addr: std::net::SocketAddr, send: &Send) -> Reply {
    match send {
        Send::Vote(election, body) => vote(addr, election, body).await,
        Send::Request(method, path, ct, body) => request(addr, method, path, *ct, body).await,
        Send::Raw(bytes) => raw(addr, bytes, false).await,
        Send::Stall(bytes) => raw(addr, bytes, true).await,
    }
}

async fn raw(addr: std::net::SocketAddr, bytes: &[u8], stall: bool) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before reading everything (e.g. 431): ignore write errors.
    let _ = stream.write_all(bytes).await;
    if !stall {
        let _ = stream.shutdown().await;
    }
    let mut reply = Vec::new();
    // The server must answer or close well within this bound, even for a stalled client.
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply))
        .await
        .expect("the edge neither answered nor closed a stalled connection")
        .ok();
    parse_reply(&reply)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_are_refused_and_enqueue_nothing() {
    catalogue(SealingMode::Host, Build::Portable).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_are_refused_and_enqueue_nothing_under_component_sealing() {
    catalogue(SealingMode::Component, Build::Portable).await;
}

/// The wide-arithmetic build does every signature check in Wasm with other field arithmetic
/// (64-bit limbs on 128-bit products): forged, non-canonical and small-order signatures must
/// be refused exactly as in the portable build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_are_refused_and_enqueue_nothing_in_the_wide_arithmetic_build() {
    catalogue(SealingMode::Component, Build::Wide).await;
}

/// Which build of the component a catalogue runs against.
#[derive(Debug, Clone, Copy)]
enum Build {
    /// scripts/build-wasm.sh spin (Spin, wasmtime serve, our host).
    Portable,
    /// scripts/build-wasm.sh wide (our host only).
    Wide,
}

/// Every case, then an honest vote, on a host with `sealing` running `build`.
async fn catalogue(sealing: SealingMode, build: Build) {
    let d = Deployment::new();
    let mut config = d.config(false);
    if let Build::Wide = build {
        d.use_component(&mut config, crate::fixture::wide_component());
    }
    config.sealing = sealing;
    config.http.header_read_timeout_ms = 500;
    config.http.body_read_timeout_ms = 500;
    // Many cases reuse one token; the per-token limit has its own test.
    config.rate_limit.per_token_burst = 1000;
    let edge = Running::start_with(&d, config).await;
    let cases = cases(&d);
    let mut failures = Vec::new();
    for case in &cases {
        let reply = send(edge.addr, &case.send).await;
        let code = serde_json::from_str::<serde_json::Value>(&reply.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned));
        let ok = match case.expect {
            Expect::Refused(status, expected) => {
                reply.status == status && code.as_deref() == Some(expected)
            }
            Expect::Status(status) => reply.status == status,
            Expect::Closed => reply.status == 0 || reply.status == 408,
            Expect::StatusOrClosed(status) => reply.status == 0 || reply.status == status,
        };
        if !ok {
            failures.push(format!(
                "{}: got {} {:?} ({})",
                case.name,
                reply.status,
                code,
                reply.body.chars().take(160).collect::<String>()
            ));
        }
    }
    let metrics = &edge.host.metrics;
    // A malformed request is the client's mistake: never a 5xx, never a failed or dropped
    // instance (each would page operators or cost a fresh instance per attack request).
    use edgevote_edge_host::metrics::{Discard, Stage};
    let server_errors =
        metrics.server_errors_at(Stage::Host) + metrics.server_errors_at(Stage::Component);
    let discarded = metrics.discarded(Discard::Trap) + metrics.discarded(Discard::Deadline);
    let client_errors: u64 = [Stage::Protocol, Stage::Host, Stage::Component]
        .iter()
        .map(|s| metrics.client_errors_at(*s))
        .sum();
    assert_eq!(
        (server_errors, discarded),
        (0, 0),
        "5xx answers, discarded instances"
    );
    assert!(
        client_errors as usize >= cases.len() - 2,
        "client errors counted: {client_errors} of {} cases (a close after EOF may go uncounted)",
        cases.len()
    );
    let enqueued = edge.queue.envelopes().await.len();
    let committed = edge
        .host
        .metrics
        .envelopes_committed
        .load(Ordering::Relaxed);
    println!(
        "hostile-input catalogue, HTTP edge ({sealing:?} sealing, {build:?} build): {} cases, {} refused as expected, {} envelopes enqueued",
        cases.len(),
        cases.len() - failures.len(),
        enqueued
    );
    assert!(
        failures.is_empty(),
        "unexpected answers:\n{}",
        failures.join("\n")
    );
    assert_eq!((enqueued, committed), (0, 0), "nothing may be enqueued");
    // The edge still serves honest voters after all that.
    let after = vote(
        edge.addr,
        "open",
        &ballot(
            "open",
            &d.token("open", "h-after", now_secs() + 600),
            "yes",
            7,
        ),
    )
    .await;
    assert_eq!(after.status, 202, "{}", after.body);
    edge.shutdown().await;
}
