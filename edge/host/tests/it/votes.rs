//! Votes through the real component in the host.

use std::sync::atomic::Ordering;

use edgevote_edge_host::SealingMode;
use edgevote_shared::{Digest32, QueueEnvelope, Receipt, VoteToken, decode_unverified, verify};

use crate::fixture::{Deployment, Running, now_secs, until, vote_ids_in};
use crate::http::{ballot, request, vote};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vote_gets_receipt_and_its_envelope_is_in_the_queue() {
    let d = Deployment::new();
    let edge = Running::start(&d, false).await;
    let token = d.token("open", "v1", now_secs() + 3600);
    let reply = vote(edge.addr, "open", &ballot("open", &token, "yes", 1)).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let receipt = verify::<Receipt>(reply.json()["receipt"].as_str().unwrap(), &d.keyset())
        .unwrap()
        .doc;
    assert_eq!(
        (receipt.edge.as_str(), receipt.region.as_str()),
        ("edge-t1", "r1")
    );
    assert_eq!(
        receipt.bundle_sha256,
        Some(edge.host.bundles.active().manifest.wasm_sha256)
    );
    let envelopes = edge.queue.envelopes().await;
    assert_eq!(envelopes.len(), 1);
    let envelope = verify::<QueueEnvelope>(&envelopes[0], &d.keyset())
        .unwrap()
        .doc;
    let token_id = receipt.token_id.clone();
    assert_eq!(envelope.votes[0].ballot.vote_id(&token_id), receipt.vote_id);
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_votes_share_queue_messages_and_host_envelopes() {
    let d = Deployment::new();
    let edge = Running::start(&d, false).await;
    let envelopes = concurrent_votes(&d, &edge, 40).await;
    // Host sealing: the host sealed each group commit into one envelope of its own.
    assert_eq!(
        envelopes.len() as u64,
        edge.host.metrics.group_commits.load(Ordering::Relaxed)
    );
    for envelope in &envelopes {
        let sealed = verify::<QueueEnvelope>(envelope, &d.keyset()).unwrap().doc;
        assert_eq!(sealed.edge, "edge-t1");
    }
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_sealing_packs_one_component_envelope_per_vote() {
    let d = Deployment::new();
    let mut config = d.config(false);
    config.sealing = SealingMode::Component;
    let edge = Running::start_with(&d, config).await;
    assert_eq!(concurrent_votes(&d, &edge, 20).await.len(), 20);
    edge.shutdown().await;
}

/// The wide-arithmetic build (our host only) signs in Wasm with other field arithmetic: its
/// receipts and envelopes must verify against the key set like the portable build's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wide_arithmetic_build_seals_votes_that_verify() {
    let d = Deployment::new();
    let mut config = d.config(false);
    let wide = crate::fixture::wide_component();
    d.use_component(&mut config, wide.clone());
    config.sealing = SealingMode::Component;
    let edge = Running::start_with(&d, config).await;
    // The host runs the wide build, not the portable one.
    let wide_sha256 = edgevote_shared::Digest32::of(&std::fs::read(&wide).unwrap());
    assert_eq!(edge.host.bundles.active().manifest.wasm_sha256, wide_sha256);
    for envelope in concurrent_votes(&d, &edge, 20).await {
        verify::<QueueEnvelope>(&envelope, &d.keyset()).unwrap();
    }
    edge.shutdown().await;
}

/// `count` voters at once: every one gets a receipt, fewer queue messages than votes, every
/// vote in the queue exactly once. Returns the queue's envelopes.
async fn concurrent_votes(d: &Deployment, edge: &Running, count: u8) -> Vec<String> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let token = d.token("open", &format!("g{i}"), now_secs() + 3600);
        let addr = edge.addr;
        tasks.spawn(async move { vote(addr, "open", &ballot("open", &token, "no", i)).await });
    }
    let mut receipts = std::collections::BTreeSet::new();
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.unwrap();
        assert_eq!(reply.status, 202, "{}", reply.body);
        let receipt = verify::<Receipt>(reply.json()["receipt"].as_str().unwrap(), &d.keyset())
            .unwrap()
            .doc;
        receipts.insert(receipt.vote_id);
    }
    assert_eq!(receipts.len(), usize::from(count));
    let metric = |m: &std::sync::atomic::AtomicU64| m.load(Ordering::Relaxed);
    let commits = metric(&edge.host.metrics.group_commits);
    assert_eq!(metric(&edge.host.metrics.votes_committed), u64::from(count));
    // Every message's window closed once, for one reason.
    use edgevote_edge_host::metrics::CommitClose;
    let closes: u64 = [
        CommitClose::Window,
        CommitClose::Full,
        CommitClose::BacklogFell,
    ]
    .into_iter()
    .map(|why| edge.host.metrics.commit_closes(why))
    .sum();
    assert_eq!(closes, commits, "windows closed against messages written");
    assert!(
        commits < u64::from(count),
        "group commit packed votes: {commits} messages for {count} votes"
    );
    let envelopes = edge.queue.envelopes().await;
    let queued = vote_ids_in(&envelopes);
    assert_eq!(queued.len(), usize::from(count), "every vote queued once");
    let queued: std::collections::BTreeSet<_> = queued.into_iter().collect();
    assert_eq!(queued, receipts, "every receipt's vote is queued");
    envelopes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_down_without_spill_is_503_and_no_receipt() {
    let d = Deployment::new();
    let edge = Running::start(&d, false).await;
    edge.queue.down.store(true, Ordering::SeqCst);
    let token = d.token("open", "v5", now_secs() + 3600);
    let reply = vote(edge.addr, "open", &ballot("open", &token, "yes", 1)).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.header("retry-after").is_some(), "Retry-After present");
    assert!(reply.json().get("receipt").is_none());
    edge.queue.down.store(false, Ordering::SeqCst);
    assert!(edge.queue.envelopes().await.is_empty());
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_down_with_spill_acknowledges_then_forwards() {
    let d = Deployment::new();
    let edge = Running::start(&d, true).await;
    edge.queue.down.store(true, Ordering::SeqCst);
    for i in 0..3u8 {
        let token = d.token("open", &format!("s{i}"), now_secs() + 3600);
        let reply = vote(edge.addr, "open", &ballot("open", &token, "yes", i)).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
    }
    assert_eq!(edge.host.metrics.votes_spilled.load(Ordering::Relaxed), 3);
    edge.queue.down.store(false, Ordering::SeqCst);
    // The forwarder retries every 500 ms; wait (bounded) for it.
    for _ in 0..50 {
        if edge.host.metrics.votes_forwarded.load(Ordering::Relaxed) == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(edge.host.metrics.votes_forwarded.load(Ordering::Relaxed), 3);
    assert_eq!(edge.queue.votes().await.len(), 3);
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_metrics_and_health() {
    let d = Deployment::new();
    let edge = Running::start(&d, false).await;
    let keys = request(edge.addr, "GET", "/v1/keys", None, b"").await;
    assert_eq!(keys.status, 200);
    assert_eq!(
        edgevote_shared::KeySet::parse(keys.body.as_bytes()).unwrap(),
        d.keyset()
    );
    let manifest = request(edge.addr, "GET", "/v1/elections/open", None, b"").await;
    assert_eq!(manifest.json()["manifest"]["id"], "open");
    assert_eq!(
        request(edge.addr, "GET", "/healthz", None, b"")
            .await
            .status,
        200
    );
    let metrics = request(edge.addr, "GET", "/metrics", None, b"").await;
    assert!(
        metrics
            .body
            .contains("edgevote_edge_requests_total{edge=\"edge-t1\",region=\"r1\",class=\"2xx\"}"),
        "{}",
        metrics.body
    );
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    let d = Deployment::new();
    let mut config = d.config(false);
    config.rate_limit.per_token_burst = 2;
    config.rate_limit.per_token_per_min = 1;
    // A small per-address budget, so the test does not depend on how fast requests go out.
    config.rate_limit.per_ip_per_sec = 1;
    config.rate_limit.per_ip_burst = 10;
    let edge = Running::start_with(&d, config).await;
    let addr = edge.addr;
    // Per token: two votes pass (a retry, a re-vote), the third is refused before any Wasm runs.
    let token = d.token("open", "busy", now_secs() + 3600);
    for nonce in 1..=2 {
        assert_eq!(
            vote(addr, "open", &ballot("open", &token, "yes", nonce))
                .await
                .status,
            202
        );
    }
    let refused = vote(addr, "open", &ballot("open", &token, "yes", 3)).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.json()["error"], "rate_limited");
    assert!(
        refused
            .header("retry-after")
            .is_some_and(|s| s.parse::<u64>().unwrap() >= 1)
    );
    // Per address: past the burst, 429 as well.
    let mut limited = 0;
    for _ in 0..30 {
        if request(addr, "GET", "/v1/keys", None, b"").await.status == 429 {
            limited += 1;
        }
    }
    assert!(limited > 0, "per-IP limit never applied");
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_token_among_concurrent_votes_is_refused_alone() {
    let d = Deployment::new();
    let edge = Running::start(&d, false).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16u8 {
        let mut token = d.token("open", &format!("f{i}"), now_secs() + 3600);
        if i == 7 {
            // One signature character changed, away from the end (whose low bits are padding).
            let at = token.len() - 10;
            let other = if &token[at..=at] == "A" { "B" } else { "A" };
            token.replace_range(at..=at, other);
        }
        let addr = edge.addr;
        tasks.spawn(async move {
            (
                i,
                vote(addr, "open", &ballot("open", &token, "yes", i)).await,
            )
        });
    }
    while let Some(answer) = tasks.join_next().await {
        let (i, reply) = answer.unwrap();
        if i == 7 {
            assert_eq!(reply.status, 401, "{}", reply.body);
            assert_eq!(reply.json()["error"], "bad_signature");
            assert!(reply.json().get("receipt").is_none());
        } else {
            assert_eq!(reply.status, 202, "{}", reply.body);
        }
    }
    let refusals = edge
        .host
        .metrics
        .votes_refused_by_sealer
        .load(Ordering::Relaxed);
    assert_eq!(refusals, 1);
    assert_eq!(edge.queue.votes().await.len(), 15);
    edge.shutdown().await;
}

/// How long a batch is left waiting for a commit slot in the test below: well past the 5 ms
/// after which the next batch commits alone.
const SLOT_WAIT: std::time::Duration = std::time::Duration::from_millis(30);

/// Past its saturation knee the edge commits a batch alone (after one waited 5 ms or more for
/// a commit slot): it waits for every commit in flight, taking arrivals in, and holds every
/// slot while it writes. Someone who can make the region's queue slow and then refuse must not
/// get a receipt for a vote that is not in the queue, nor a vote in it twice: every 202's vote is
/// queued once, and no 503's vote is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_alone_under_a_slow_then_failing_queue_answer_only_durable_votes() {
    let d = Deployment::new();
    let edge = Running::start(&d, false).await;
    let alone = || {
        edge.host
            .metrics
            .group_commits_alone
            .load(Ordering::Relaxed)
    };
    let mut answers = Vec::new();
    edge.queue.hold_sends();
    // Two commits hold both slots; the next batch waits for one, taking in its arrivals.
    let first = spawn_votes(&d, &edge, "a", 1);
    edge.queue.until_sends_held(1).await;
    let second = spawn_votes(&d, &edge, "b", 1);
    edge.queue.until_sends_held(2).await;
    let waiting = spawn_votes(&d, &edge, "c", 4);
    until_in_group_commit(&edge, 6).await;
    tokio::time::sleep(SLOT_WAIT).await;
    assert_eq!(alone(), 0, "no batch got its slot late yet");
    edge.queue.release_sends();
    for votes in [first, second, waiting] {
        answers.extend(votes.join_all().await);
    }
    // That batch waited: the next one commits alone. Hold it in its send, every slot its own.
    edge.queue.hold_sends();
    let lone = spawn_votes(&d, &edge, "d", 2);
    edge.queue.until_sends_held(1).await;
    assert_eq!(alone(), 1, "the batch after a late slot commits alone");
    // Arrivals wait behind it (nothing starts beside it); then the queue refuses both.
    let behind = spawn_votes(&d, &edge, "e", 3);
    until_in_group_commit(&edge, 5).await;
    tokio::time::sleep(SLOT_WAIT).await;
    assert_eq!(
        edge.queue.sends_held(),
        1,
        "nothing commits beside a batch alone"
    );
    edge.queue.down.store(true, Ordering::SeqCst);
    edge.queue.release_sends();
    let mut refused_answers = Vec::new();
    for votes in [lone, behind] {
        refused_answers.extend(votes.join_all().await);
    }
    assert!(
        refused_answers.iter().all(|(_, reply)| reply.status == 503),
        "a refused message answers every vote in it 503"
    );
    // The batch behind waited for its slot, so the next commits alone too, on a queue back up.
    edge.queue.down.store(false, Ordering::SeqCst);
    answers.extend(spawn_votes(&d, &edge, "f", 2).join_all().await);
    assert_eq!(alone(), 2);
    let acknowledged: std::collections::BTreeSet<Digest32> = answers
        .iter()
        .map(|(vote_id, reply)| {
            assert_eq!(reply.status, 202, "{}", reply.body);
            let receipt = reply.json()["receipt"].as_str().unwrap().to_owned();
            let receipt = verify::<Receipt>(&receipt, &d.keyset()).unwrap().doc;
            assert_eq!(&receipt.vote_id, vote_id, "the receipt names the vote sent");
            receipt.vote_id
        })
        .collect();
    let queued = vote_ids_in(&edge.queue.envelopes().await);
    assert_eq!(queued.len(), acknowledged.len(), "every queued vote once");
    let queued: std::collections::BTreeSet<Digest32> = queued.into_iter().collect();
    assert_eq!(
        queued, acknowledged,
        "queued exactly the acknowledged votes"
    );
    edge.shutdown().await;
}

/// `count` votes of new voters `{prefix}{i}`, sent at once; each answer with its vote id.
fn spawn_votes(
    d: &Deployment,
    edge: &Running,
    prefix: &str,
    count: u8,
) -> tokio::task::JoinSet<(Digest32, crate::http::Reply)> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let token = d.token("open", &format!("{prefix}{i}"), now_secs() + 3600);
        let jti = decode_unverified::<VoteToken>(&token).unwrap().jti;
        let body = ballot("open", &token, "yes", i);
        let vote_id = serde_json::from_slice::<edgevote_shared::Ballot>(&body)
            .unwrap()
            .vote_id(&jti);
        let addr = edge.addr;
        tasks.spawn(async move { (vote_id, vote(addr, "open", &body).await) });
    }
    tasks
}

/// Waits (bounded: 10 s) until `count` votes are in the host's group commit.
async fn until_in_group_commit(edge: &Running, count: u64) {
    let gauge = &edge.host.metrics.votes_in_group_commit;
    until(&format!("{count} votes in group commit at once"), || {
        gauge.load(Ordering::Relaxed) == count
    })
    .await;
}
