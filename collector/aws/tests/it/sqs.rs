//! SqsQueue on moto.

use std::collections::BTreeSet;
use std::time::Duration;

use edgevote_aws::moto::MotoServer;
use edgevote_aws::sqs::REDRIVE_REASON;
use edgevote_aws::{SqsQueue, create_queue_pair};
use edgevote_queue::{MAX_REASON_BYTES, Queue, QueueStats, Received};

use crate::moto;

const SECOND: Duration = Duration::from_secs(1);

async fn queue(server: &MotoServer, max_receives: u32, visibility_secs: u32) -> SqsQueue {
    let client = server.sqs_client();
    let name = MotoServer::unique_name("votes");
    let (url, dlq) = create_queue_pair(&client, &name, max_receives, visibility_secs)
        .await
        .unwrap();
    assert_ne!(url, dlq);
    SqsQueue::with_client(client, &url, &dlq)
}

fn bodies(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Receives until `n` messages came (at most 10 tries).
async fn receive_n(queue: &SqsQueue, n: usize, visibility: Duration) -> Vec<Received> {
    let mut got = Vec::new();
    for _ in 0..10 {
        if got.len() >= n {
            break;
        }
        got.extend(queue.receive(10, SECOND, visibility).await.unwrap());
    }
    assert_eq!(got.len(), n, "{got:?}");
    got
}

#[tokio::test]
async fn send_receive_delete_round_trip() {
    let server = moto();
    let queue = queue(&server, 5, 30).await;
    let ids = queue.send_batch(bodies(&["a", "b", "c"])).await.unwrap();
    assert_eq!(ids.len(), 3);
    let before = edgevote_signer::clock::now_ms();

    let got = receive_n(&queue, 3, Duration::from_secs(30)).await;
    let got_bodies: BTreeSet<&str> = got.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(got_bodies, BTreeSet::from(["a", "b", "c"]));
    let got_ids: BTreeSet<&String> = got.iter().map(|m| &m.id).collect();
    assert_eq!(got_ids, ids.iter().collect());
    for m in &got {
        assert_eq!(m.receive_count, 1);
        assert!(
            m.sent_at_ms.abs_diff(before) < 60_000,
            "sent_at_ms {}",
            m.sent_at_ms
        );
    }
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats.visible, stats.in_flight, stats.dead_letters),
        (0, 3, 0)
    );

    queue
        .delete_batch(got.iter().map(|m| m.handle.clone()).collect())
        .await
        .unwrap();
    assert_eq!(queue.stats().await.unwrap(), QueueStats::default());
    assert!(
        queue
            .receive(10, Duration::ZERO, SECOND)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn send_refuses_out_of_bounds_batches() {
    let server = moto();
    let queue = queue(&server, 5, 30).await;
    assert!(queue.send_batch(Vec::new()).await.is_err());
    assert!(queue.send_batch(vec!["x".to_string(); 11]).await.is_err());
    assert!(queue.send_batch(vec![String::new()]).await.is_err());
}

#[tokio::test]
async fn expired_visibility_redelivers_with_receive_count_two() {
    let server = moto();
    let queue = queue(&server, 5, 30).await;
    queue.send_batch(bodies(&["again"])).await.unwrap();
    let first = receive_n(&queue, 1, SECOND).await.remove(0);
    assert_eq!(first.receive_count, 1);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = receive_n(&queue, 1, Duration::from_secs(30))
        .await
        .remove(0);
    assert_eq!(
        (second.id.as_str(), second.body.as_str()),
        (first.id.as_str(), "again")
    );
    assert_eq!(second.receive_count, 2);
    assert_ne!(second.handle, first.handle);
    queue.delete_batch(vec![second.handle]).await.unwrap();
    assert_eq!(queue.stats().await.unwrap(), QueueStats::default());
}

#[tokio::test]
async fn change_visibility_releases_at_once() {
    let server = moto();
    let queue = queue(&server, 5, 30).await;
    queue.send_batch(bodies(&["slow"])).await.unwrap();
    let first = receive_n(&queue, 1, Duration::from_secs(60))
        .await
        .remove(0);
    assert!(
        queue
            .receive(1, Duration::ZERO, SECOND)
            .await
            .unwrap()
            .is_empty()
    );
    queue
        .change_visibility(vec![first.handle], Duration::ZERO)
        .await
        .unwrap();
    let again = receive_n(&queue, 1, Duration::from_secs(60))
        .await
        .remove(0);
    assert_eq!((again.id, again.receive_count), (first.id, 2));
}

#[tokio::test]
async fn dead_letter_keeps_the_reason() {
    let server = moto();
    let queue = queue(&server, 5, 30).await;
    queue.send_batch(bodies(&["poison", "long"])).await.unwrap();
    let mut got = receive_n(&queue, 2, Duration::from_secs(30)).await;
    got.sort_by(|a, b| a.body.cmp(&b.body));
    let (long, poison) = (&got[0], &got[1]);
    queue
        .dead_letter(poison, "bad_signature: envelope e-7")
        .await
        .unwrap();
    queue
        .dead_letter(long, &"é".repeat(MAX_REASON_BYTES))
        .await
        .unwrap();

    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats.visible, stats.in_flight, stats.dead_letters),
        (0, 0, 2)
    );
    for _ in 0..2 {
        // Peeking leaves the dead letters in place.
        let mut letters = queue.peek_dead_letters(10).await.unwrap();
        letters.sort_by(|a, b| a.body.cmp(&b.body));
        assert_eq!(letters.len(), 2, "{letters:?}");
        assert_eq!(letters[1].body, "poison");
        assert_eq!(letters[1].reason, "bad_signature: envelope e-7");
        assert_eq!(letters[1].id, poison.id);
        assert_eq!(letters[1].receive_count, 1);
        assert_eq!(letters[0].reason, "é".repeat(MAX_REASON_BYTES / 2));
    }
    assert_eq!(queue.peek_dead_letters(1).await.unwrap().len(), 1);
}

#[tokio::test]
async fn redrive_after_max_receives_lands_in_the_dead_letter_queue() {
    let server = moto();
    let queue = queue(&server, 2, 1).await;
    queue.send_batch(bodies(&["unlucky"])).await.unwrap();
    for expected in 1..=2 {
        let m = receive_n(&queue, 1, SECOND).await.remove(0);
        assert_eq!(m.receive_count, expected);
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    // The third receive finds the message over its limit and SQS moves it.
    assert!(queue.receive(10, SECOND, SECOND).await.unwrap().is_empty());
    let letters = queue.peek_dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(
        (letters[0].body.as_str(), letters[0].reason.as_str()),
        ("unlucky", REDRIVE_REASON)
    );
    assert_eq!(queue.stats().await.unwrap().dead_letters, 1);
}
