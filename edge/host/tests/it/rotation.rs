//! Edge key rotation while votes flow: the promise is that rotation loses nothing. Every vote
//! answered 202 has a receipt and an envelope that verify against the key set published after
//! the rotation; a host that cannot sign validly refuses (503 `edge_key_expired`) instead of
//! acknowledging a vote collectors would dead-letter.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use edgevote_shared::{KeySet, QueueEnvelope, Receipt, Role, verify, verify_many};

use crate::fixture::{Deployment, Running, now_secs};
use crate::http::{Reply, ballot, vote};

/// The edge of the fixture.
const EDGE: (&str, &str) = ("edge-t1", "r1");

/// The host configuration with the edge's key read from the store's stable current file (the
/// one `keys rotate` rewrites), and no per-IP limit (every voter here is 127.0.0.1).
fn following_config(d: &Deployment) -> edgevote_edge_host::HostConfig {
    let mut config = d.config(false);
    config.edge_key_path = d.store.write_current_edge_key(EDGE.0, EDGE.1).unwrap();
    config.rate_limit.enabled = false;
    config
}

fn kid_of(compact: &str) -> String {
    edgevote_shared::jws::peek_header(compact).unwrap().kid
}

/// Votes from `clients` concurrent voters' loops until `until`; every reply, with its voter.
async fn flow(d: &Deployment, edge: &Running, clients: usize, until: Instant) -> Vec<Reply> {
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let addr = edge.addr;
        // Tokens made up front: the loop only votes.
        let tokens: Vec<String> = (0..700)
            .map(|i| d.token("open", &format!("c{client}-{i}"), now_secs() + 3600))
            .collect();
        tasks.spawn(async move {
            let mut replies = Vec::new();
            for (i, token) in tokens.iter().enumerate() {
                if Instant::now() >= until {
                    break;
                }
                replies.push(vote(addr, "open", &ballot("open", token, "yes", i as u8)).await);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            replies
        });
    }
    let mut replies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        replies.extend(done.unwrap());
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_with_grace_while_votes_flow_loses_no_acknowledged_vote() {
    let d = Deployment::new();
    let edge = Running::start_with(&d, following_config(&d)).await;
    let old = d
        .store
        .edge_identity(EDGE.0, EDGE.1)
        .unwrap()
        .kid()
        .to_owned();
    // Grace: longer than the host's switch (a 2 s re-read, the successor settling 5 s).
    let grace = 9;
    let started = Instant::now();
    let until = started + Duration::from_secs(1 + grace + 4);
    let store = d.store.clone();
    let rotate = {
        let old = old.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let at = now_secs();
            let new = store.rotate(&old, at, grace).unwrap();
            (at, new.kid)
        })
    };
    let replies = flow(&d, &edge, 4, until).await;
    let (rotated_at, new) = rotate.await.unwrap();
    let keys: KeySet = d.keyset(); // the final, published key set
    assert_eq!(
        keys.get(&old).unwrap().0.valid_until,
        Some(rotated_at + grace)
    );

    // Every 202 has a receipt that verifies against the final key set.
    let mut receipts = Vec::new();
    let mut by_kid = std::collections::BTreeMap::<String, usize>::new();
    let mut refused = 0;
    for reply in &replies {
        if reply.status != 202 {
            refused += 1;
            continue;
        }
        let compact = reply.json()["receipt"].as_str().unwrap().to_owned();
        let receipt = verify::<Receipt>(&compact, &keys)
            .unwrap_or_else(|e| panic!("receipt refused after rotation: {e} ({})", e.code()))
            .doc;
        *by_kid.entry(kid_of(&compact)).or_default() += 1;
        receipts.push(receipt);
    }
    // And its vote is in an envelope in the queue that verifies against the final key set.
    let envelopes = edge.queue.envelopes().await;
    let lines: Vec<&str> = envelopes.iter().map(String::as_str).collect();
    let mut queued = std::collections::BTreeSet::new();
    let mut envelopes_by_kid = std::collections::BTreeMap::<String, usize>::new();
    for (line, verified) in lines
        .iter()
        .zip(verify_many::<QueueEnvelope>(&lines, &keys))
    {
        let envelope = verified
            .unwrap_or_else(|e| panic!("envelope refused after rotation: {e} ({})", e.code()))
            .doc;
        *envelopes_by_kid.entry(kid_of(line)).or_default() += 1;
        for v in envelope.votes {
            let token =
                edgevote_shared::decode_unverified::<edgevote_shared::VoteToken>(&v.ballot.token)
                    .unwrap();
            queued.insert(v.ballot.vote_id(&token.jti));
        }
    }
    for receipt in &receipts {
        assert!(
            queued.contains(&receipt.vote_id),
            "a receipt's vote is not in the queue"
        );
    }
    let switches = edge.host.metrics.key_switches.load(Ordering::Relaxed);
    println!(
        "rotation under load: {} votes, {} receipts ({by_kid:?}), {refused} refused, {} envelopes ({envelopes_by_kid:?}), {switches} key switch",
        replies.len(),
        receipts.len(),
        envelopes.len()
    );
    assert_eq!(
        refused, 0,
        "a grace period longer than the switch refuses nothing"
    );
    assert!(receipts.len() > 100, "votes flowed: {}", receipts.len());
    assert_eq!(switches, 1);
    // Both keys signed: the old one before the switch, the successor after.
    assert!(by_kid.get(&old).is_some_and(|n| *n > 0), "{by_kid:?}");
    assert!(by_kid.get(&new).is_some_and(|n| *n > 0), "{by_kid:?}");
    assert_eq!(queued.len(), receipts.len());
    // The edge publishes the key set it follows: the successor is in it.
    let published = crate::http::request(edge.addr, "GET", "/v1/keys", None, b"").await;
    assert_eq!(published.status, 200);
    assert_eq!(KeySet::parse(published.body.as_bytes()).unwrap(), keys);
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_holding_only_a_retired_key_refuses_instead_of_acknowledging() {
    let d = Deployment::new();
    // This host reads its key from the old key's own file: rotation never reaches it.
    let mut config = d.config(false);
    config.rate_limit.enabled = false;
    let edge = Running::start_with(&d, config).await;
    let token = |voter: &str| d.token("open", voter, now_secs() + 3600);
    let before = vote(edge.addr, "open", &ballot("open", &token("k1"), "yes", 1)).await;
    assert_eq!(before.status, 202, "{}", before.body);
    let old = d.store.active_kid(Role::Edge, None).unwrap();
    let grace = 2;
    let rotated_at = now_secs();
    d.store.rotate(&old, rotated_at, grace).unwrap();
    // Past the grace period, and past a re-read of the key set.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    while now_secs() < rotated_at + grace {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = vote(edge.addr, "open", &ballot("open", &token("k2"), "yes", 2)).await;
    println!(
        "after the grace period, a host with only the old key answers {} {}",
        after.status, after.body
    );
    assert_eq!(after.status, 503, "{}", after.body);
    assert_eq!(after.json()["error"], "edge_key_expired");
    assert!(after.header("retry-after").is_some());
    // Nothing was made durable for it: the queue holds the first vote only, and that
    // envelope verifies against the final key set.
    let keys = d.keyset();
    let envelopes = edge.queue.envelopes().await;
    assert_eq!(envelopes.len(), 1);
    verify::<QueueEnvelope>(&envelopes[0], &keys).unwrap();
    verify::<Receipt>(before.json()["receipt"].as_str().unwrap(), &keys).unwrap();
    assert_eq!(
        edge.host
            .metrics
            .votes_refused_key_expired
            .load(Ordering::Relaxed),
        1
    );
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_never_switches_to_a_key_that_fails_the_check() {
    let d = Deployment::new();
    let config = following_config(&d);
    let key_path = config.edge_key_path.clone();
    let edge = Running::start_with(&d, config).await;
    let old = d.store.edge_identity(EDGE.0, EDGE.1).unwrap();
    // Another edge's key lands in this edge's key file (a botched copy): the host keeps its own.
    d.store
        .generate_edge("edge-other", "r1", now_secs() - 60)
        .unwrap();
    let stranger = d.store.edge_identity("edge-other", "r1").unwrap();
    edgevote_signer::keyfile::write(&key_path, &stranger).unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let reply = vote(
        edge.addr,
        "open",
        &ballot("open", &d.token("open", "s1", now_secs() + 3600), "yes", 1),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let compact = reply.json()["receipt"].as_str().unwrap().to_owned();
    assert_eq!(kid_of(&compact), old.kid());
    verify::<Receipt>(&compact, &d.keyset()).unwrap();
    assert_eq!(edge.host.metrics.key_switches.load(Ordering::Relaxed), 0);
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_sealing_past_the_grace_period_commits_nothing() {
    let d = Deployment::new();
    let mut config = d.config(false);
    config.sealing = edgevote_edge_host::SealingMode::Component;
    config.rate_limit.enabled = false;
    let edge = Running::start_with(&d, config).await;
    let token = |voter: &str| d.token("open", voter, now_secs() + 3600);
    let before = vote(edge.addr, "open", &ballot("open", &token("m1"), "yes", 1)).await;
    assert_eq!(before.status, 202, "{}", before.body);
    // The component holds the key it was loaded with; the rotation ends it 2 s later.
    let old = d.store.active_kid(Role::Edge, None).unwrap();
    let rotated_at = now_secs();
    d.store.rotate(&old, rotated_at, 2).unwrap();
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    while now_secs() < rotated_at + 2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = vote(edge.addr, "open", &ballot("open", &token("m2"), "yes", 2)).await;
    println!(
        "component sealing after the grace period: {} {}",
        after.status, after.body
    );
    assert_eq!(after.status, 503, "{}", after.body);
    assert!(!after.body.contains("receipt"), "{}", after.body);
    let envelopes = edge.queue.envelopes().await;
    assert_eq!(envelopes.len(), 1, "only the vote from before the rotation");
    verify::<QueueEnvelope>(&envelopes[0], &d.keyset()).unwrap();
    assert_eq!(
        edge.host
            .metrics
            .votes_refused_key_expired
            .load(Ordering::Relaxed),
        1
    );
    edge.shutdown().await;
}
