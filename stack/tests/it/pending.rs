//! What `audit publish` refuses to sign over: votes still queued, dead-lettered or spilled, and
//! regions whose stores differ. Each is found in a stopped stack's files, and a clean stack has
//! nothing pending.

use std::path::Path;
use std::time::Duration;

use edgevote_queue::Queue;
use edgevote_queue::embedded::{EmbeddedQueue, EmbeddedQueueConfig};
use edgevote_shared::{
    Ballot, Digest32, EnvelopeVote, Policy, QueueEnvelope, Role, SigningIdentity, sign,
};
use edgevote_stack::pending::pending;
use edgevote_stack::{RegionInfo, StackInfo};
use edgevote_store::embedded::{EmbeddedStore, EmbeddedStoreConfig};
use edgevote_store::{ElectionRules, Store, StoredBallot};

const ELECTION: &str = "ref";

fn info(regions: &[&str]) -> StackInfo {
    StackInfo {
        election: ELECTION.into(),
        keys_dir: "keys".into(),
        election_path: "election.jws".into(),
        aws: None,
        regions: regions
            .iter()
            .map(|name| RegionInfo {
                name: (*name).into(),
                edge_url: "http://127.0.0.1:1".into(),
                collector_url: "http://127.0.0.1:1".into(),
            })
            .collect(),
    }
}

fn ballot(voter: &str) -> StoredBallot {
    StoredBallot {
        election: ELECTION.into(),
        voter: voter.into(),
        vote_id: Digest32::of(voter.as_bytes()),
        choice: "yes".into(),
        token_id: format!("tok-{voter}"),
        nonce: format!("nonce-{voter}"),
        received_at_ms: 1_000,
        edge: "edge-r1".into(),
        region: "r1".into(),
        batch_id: "b1".into(),
    }
}

async fn store(dir: &Path, voters: &[&str]) {
    let store = EmbeddedStore::open(&EmbeddedStoreConfig {
        path: dir.join("store.redb"),
    })
    .unwrap();
    let rules = ElectionRules {
        id: ELECTION.into(),
        policy: Policy::FirstVoteWins,
        max_votes_per_voter: 10,
    };
    let ballots = voters.iter().map(|v| ballot(v)).collect();
    store.record(&rules, "r1", ballots).await.unwrap();
}

fn queue(path: &Path) -> EmbeddedQueue {
    EmbeddedQueue::open(&EmbeddedQueueConfig {
        path: path.to_owned(),
        max_receives: 5,
    })
    .unwrap()
}

/// A queue message holding one envelope with one vote of the election (signed by some edge key:
/// the check reads envelopes, it does not trust them).
fn message() -> String {
    let envelope = QueueEnvelope {
        v: 1,
        batch_id: "edge-r1.b1".into(),
        edge: "edge-r1".into(),
        region: "r1".into(),
        created_at_ms: 1_000,
        votes: vec![EnvelopeVote {
            ballot: Ballot {
                election: ELECTION.into(),
                token: "x.y.z".into(),
                choice: "yes".into(),
                nonce: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            },
            received_at_ms: 1_000,
        }],
    };
    sign(&SigningIdentity::from_seed(&[5; 32], Role::Edge), &envelope).unwrap()
}

fn whats(items: &[edgevote_stack::pending::PendingItem]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

#[tokio::test]
async fn a_clean_stopped_stack_has_nothing_pending() {
    let dir = tempfile::tempdir().unwrap();
    for region in ["r1", "r2"] {
        let d = dir.path().join(region);
        store(&d, &["v1", "v2"]).await;
        queue(&d.join("queue.redb"));
    }
    let found = pending(dir.path(), &info(&["r1", "r2"]), ELECTION)
        .await
        .unwrap();
    assert!(found.is_empty(), "{found:?}");
}

#[tokio::test]
async fn queued_dead_lettered_spilled_and_unreplicated_votes_are_pending() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, r2) = (dir.path().join("r1"), dir.path().join("r2"));
    store(&r1, &["v1", "v2"]).await;
    store(&r2, &["v1"]).await;
    // r1: one message still queued, one in the edge's spill log.
    queue(&r1.join("queue.redb"))
        .send_batch(vec![message()])
        .await
        .unwrap();
    queue(&r1.join("spill.redb"))
        .send_batch(vec![message()])
        .await
        .unwrap();
    // r2: a message the collector dead-lettered.
    let q2 = queue(&r2.join("queue.redb"));
    q2.send_batch(vec![message()]).await.unwrap();
    let received = q2
        .receive(1, Duration::ZERO, Duration::from_secs(60))
        .await
        .unwrap();
    q2.dead_letter(&received[0], "unknown_key_id: test")
        .await
        .unwrap();
    drop(q2);
    let found = whats(
        &pending(dir.path(), &info(&["r1", "r2"]), ELECTION)
            .await
            .unwrap(),
    );
    assert_eq!(
        found,
        [
            "r1: 1 messages in the queue, not yet stored",
            "r1: 1 messages in the edge's spill log, not yet forwarded",
            "r2: 1 votes of ref in the dead-letter queue (see docs/runbooks/alerts.md)",
            "r2: holds 1 ballots, r1 holds 2, or other ones: replication has not converged",
        ]
    );
    // Reading changed nothing: the same is pending when asked again.
    let again = whats(
        &pending(dir.path(), &info(&["r1", "r2"]), ELECTION)
            .await
            .unwrap(),
    );
    assert_eq!(again, found);
    // A dead letter of another election is not this election's business.
    let other = whats(&pending(dir.path(), &info(&["r2"]), "other").await.unwrap());
    assert!(
        other.iter().all(|w| !w.contains("dead-letter")),
        "{other:?}"
    );
}

#[tokio::test]
async fn stores_with_as_many_but_other_ballots_have_not_converged() {
    let dir = tempfile::tempdir().unwrap();
    store(&dir.path().join("r1"), &["v1", "v2"]).await;
    store(&dir.path().join("r2"), &["v1", "v3"]).await;
    let found = whats(
        &pending(dir.path(), &info(&["r1", "r2"]), ELECTION)
            .await
            .unwrap(),
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("replication has not converged"),
        "{found:?}"
    );
}

/// A stand-in edge that serves only `/metrics`, with the spill counters given.
async fn edge_metrics(spilled: u64, forwarded: u64) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let body = format!(
        "# TYPE edgevote_edge_votes_spilled_total counter\n\
         edgevote_edge_votes_spilled_total{{edge=\"e\",region=\"r\"}} {spilled}\n\
         edgevote_edge_votes_forwarded_total{{edge=\"e\",region=\"r\"}} {forwarded}\n"
    );
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    url
}

/// The same checks on an AWS-backed stack, read while it runs: SQS queues and dead-letter
/// queues, the running edges' spill counters, and the regions' DynamoDB tables.
#[tokio::test]
async fn an_aws_stack_has_its_queued_dead_lettered_spilled_and_unreplicated_votes_pending() {
    let moto = edgevote_aws::moto::MotoServer::shared().unwrap();
    let regions = ["eu-west-1".to_owned(), "us-east-1".to_owned()];
    let services = edgevote_stack::backend::AwsServices::start(
        Some(moto.endpoint_url()),
        edgevote_aws::Consistency::Eventual,
        &regions,
        5,
    )
    .await
    .unwrap();
    let aws = services.info.clone();
    let mut stack = info(&["eu-west-1", "us-east-1"]);
    stack.regions[0].edge_url = edge_metrics(3, 1).await;
    stack.regions[1].edge_url = edge_metrics(4, 4).await;
    stack.aws = Some(aws.clone());
    let dir = tempfile::tempdir().unwrap();
    // A fresh election id: moto's tables and queues are shared with the other tests.
    let election = format!("aws-{}", std::process::id());
    let found = whats(&pending(dir.path(), &stack, &election).await.unwrap());
    assert_eq!(
        found,
        ["eu-west-1: 2 votes in the edge's spill log, not yet forwarded"]
    );

    let rules = ElectionRules {
        id: election.clone(),
        policy: Policy::FirstVoteWins,
        max_votes_per_voter: 10,
    };
    let with_election = |voter: &str| StoredBallot {
        election: election.clone(),
        ..ballot(voter)
    };
    let r1 = edgevote_stack::backend::aws_store(&aws.regions[0]).await;
    r1.record(
        &rules,
        "eu-west-1",
        vec![with_election("v1"), with_election("v2")],
    )
    .await
    .unwrap();
    let found = whats(&pending(dir.path(), &stack, &election).await.unwrap());
    assert!(
        found.contains(
            &"us-east-1: holds 0 ballots, eu-west-1 holds 2, or other ones: replication has not converged"
                .to_owned()
        ),
        "{found:?}"
    );
    let q1 = edgevote_stack::backend::aws_queue(&aws.regions[0]).await;
    q1.send_batch(vec![message()]).await.unwrap();
    let found = whats(&pending(dir.path(), &stack, &election).await.unwrap());
    assert!(
        found
            .iter()
            .any(|w| w.starts_with("eu-west-1: ") && w.contains("messages in the queue")),
        "{found:?}"
    );
    // Drain it, so other tests sharing the queue see it empty again.
    let received = q1
        .receive(10, Duration::from_secs(1), Duration::from_secs(60))
        .await
        .unwrap();
    let handles = received.iter().map(|r| r.handle.clone()).collect();
    q1.delete_batch(handles).await.unwrap();
}
