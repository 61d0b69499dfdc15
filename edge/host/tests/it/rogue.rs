//! An attacker who got one bundle past review: the hostile component (`tests/rogue`, built by
//! `scripts/build-wasm.sh rogue`) flips choices, replays another voter's ballot kept in guest
//! memory, hands over two ballots, traps and spins. Under host sealing none of that may yield a
//! receipt or a stored ballot the voter did not send, and no instance that failed is reused.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use edgevote_edge_host::metrics::{Discard, Stage};
use edgevote_shared::Role;

use crate::fixture::{Deployment, Running, now_secs, rogue_component};
use crate::http::{Reply, ballot, request_with};

/// A host running the rogue component (signed by the deployment's ops key, as a bundle that got
/// past review would be).
async fn rogue_edge(d: &Deployment, request_timeout_ms: u64) -> Running {
    let wasm = rogue_component();
    d.sign_bundle(&std::fs::read(&wasm).unwrap(), Role::Ops);
    let mut config = d.config(false);
    config.component_path = wasm;
    config.http.request_timeout_ms = request_timeout_ms;
    Running::start_with(d, config).await
}

async fn send(edge: &Running, mode: &str, body: &[u8]) -> Reply {
    let headers = [("Content-Type", "application/json"), ("x-rogue", mode)];
    request_with(
        edge.addr,
        "POST",
        "/v1/elections/open/votes",
        &headers,
        body,
    )
    .await
}

/// A request for a mode that needs no ballot: a read, which the host leaves to the component.
async fn poke(edge: &Running, mode: &str) -> Reply {
    request_with(edge.addr, "GET", "/v1/rogue", &[("x-rogue", mode)], b"").await
}

fn code(reply: &Reply) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(&reply.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_cannot_swap_the_voters_ballot() {
    let d = Deployment::new();
    let edge = rogue_edge(&d, 5_000).await;
    let honest = ballot("open", &d.token("open", "r1", now_secs() + 600), "yes", 1);
    // The rogue passes its hand-over through honestly once: the path works.
    assert_eq!(send(&edge, "", &honest).await.status, 202);

    // Flipped choice: refused, no receipt.
    let voter = ballot("open", &d.token("open", "r2", now_secs() + 600), "yes", 2);
    let flipped = send(&edge, "flip", &voter).await;
    assert_eq!(
        (flipped.status, code(&flipped).as_deref()),
        (403, Some("ballot_mismatch")),
        "{}",
        flipped.body
    );
    assert!(!flipped.body.contains("receipt"));

    // Another voter's ballot, kept in guest memory from an earlier request, instead of this one.
    let first = ballot("open", &d.token("open", "r3", now_secs() + 600), "no", 3);
    assert_eq!(
        send(&edge, "replay", &first).await.status,
        202,
        "nothing kept yet: its own ballot"
    );
    let second = ballot("open", &d.token("open", "r4", now_secs() + 600), "yes", 4);
    let replayed = send(&edge, "replay", &second).await;
    assert_eq!(
        (replayed.status, code(&replayed).as_deref()),
        (403, Some("ballot_mismatch")),
        "{}",
        replayed.body
    );

    // Two hand-overs in one request: the first is the voter's, the second is refused.
    let voter = ballot("open", &d.token("open", "r5", now_secs() + 600), "no", 5);
    let doubled = send(&edge, "double", &voter).await;
    assert_eq!(
        doubled.json(),
        serde_json::json!({"first": 202, "second": 403})
    );

    // The queue holds exactly the three ballots the voters sent, as sent.
    let mut stored: Vec<(String, String)> = edge
        .queue
        .votes()
        .await
        .into_iter()
        .map(|v| (v.ballot.token.clone(), v.ballot.choice.clone()))
        .collect();
    stored.sort();
    let mut sent: Vec<(String, String)> = [&honest, &first, &voter]
        .iter()
        .map(|b| {
            let b: edgevote_shared::Ballot = serde_json::from_slice(b).unwrap();
            (b.token, b.choice)
        })
        .collect();
    sent.sort();
    assert_eq!(stored, sent);
    assert_eq!(
        edge.host
            .metrics
            .handover_mismatches
            .load(Ordering::Relaxed),
        3
    );
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapped_or_overdue_instance_is_never_reused() {
    let d = Deployment::new();
    let edge = rogue_edge(&d, 300).await;
    let metrics = &edge.host.metrics;
    let served = |reply: Reply| reply.json()["served"].as_u64().unwrap();
    // Reuse is the rule: one instance serves requests in turn and its memory carries over.
    assert_eq!(served(poke(&edge, "count").await), 1);
    assert_eq!(served(poke(&edge, "count").await), 2);

    let trapped = poke(&edge, "trap").await;
    assert_eq!(
        (trapped.status, code(&trapped).as_deref()),
        (500, Some("component_failed"))
    );
    assert_eq!(metrics.discarded(Discard::Trap), 1);
    assert_eq!(
        served(poke(&edge, "count").await),
        1,
        "a fresh instance after the trap"
    );

    // A guest that never returns is interrupted at the deadline and answered 503.
    let started = Instant::now();
    let spun = poke(&edge, "spin").await;
    assert_eq!(
        (spun.status, code(&spun).as_deref()),
        (503, Some("deadline_exceeded")),
        "{}",
        spun.body
    );
    assert!(spun.header("retry-after").is_some());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the deadline must end the request"
    );
    assert_eq!(metrics.discarded(Discard::Deadline), 1);
    assert_eq!(
        served(poke(&edge, "count").await),
        1,
        "a fresh instance after the deadline"
    );
    // A failure of ours is a server error; nothing here was the client's fault.
    assert_eq!(metrics.server_errors_at(Stage::Host), 2);
    edge.shutdown().await;
}
