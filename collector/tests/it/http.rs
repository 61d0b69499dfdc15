//! The HTTP endpoints, served on port 0 and stopped cleanly.

use std::sync::Arc;

use edgevote_queue::embedded::{EmbeddedQueue, EmbeddedQueueConfig};
use edgevote_store::embedded::{EmbeddedStore, EmbeddedStoreConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fixture;

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_results() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(
        EmbeddedQueue::open(&EmbeddedQueueConfig {
            path: dir.path().join("q.redb"),
            max_receives: 5,
        })
        .unwrap(),
    );
    let store = Arc::new(
        EmbeddedStore::open(&EmbeddedStoreConfig {
            path: dir.path().join("s.redb"),
        })
        .unwrap(),
    );
    let body = fixture::envelope(
        "h.1",
        vec![(
            fixture::ballot(fixture::FIRST, "v1", "yes", 1),
            fixture::now_ms(),
        )],
    );
    edgevote_queue::Queue::send_batch(queue.as_ref(), vec![body, "junk".into()])
        .await
        .unwrap();
    let collector = fixture::collector(queue, store);
    fixture::drain(&collector, std::time::Duration::from_secs(30)).await;
    collector.refresh_queue_stats().await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(edgevote_collector::http::serve(
        listener,
        edgevote_collector::http::router(Arc::clone(&collector)),
        async move {
            let _ = stopped.await;
        },
    ));
    let (status, metrics) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        "edgevote_collector_votes_stored_total{region=\"r1\"} 1",
        "edgevote_collector_messages_dead_lettered_total{region=\"r1\",reason=\"malformed_jws\"} 1",
        "edgevote_collector_dead_letter_messages{region=\"r1\"} 1",
        "edgevote_collector_store_latency_seconds_count",
        "edgevote_collector_queue_lag_seconds",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }
    assert_eq!(get(addr, "/healthz").await.0, 200);
    let (status, live) = get(addr, "/v1/results/first-wins").await;
    assert_eq!(status, 200);
    let live: serde_json::Value = serde_json::from_str(&live).unwrap();
    assert_eq!(live["overall"]["yes"], 1);
    assert_eq!(live["regions"]["r1"]["yes"], 1);
    let (status, fin) = get(addr, "/v1/results/first-wins/final").await;
    assert_eq!(status, 200);
    let fin: serde_json::Value = serde_json::from_str(&fin).unwrap();
    assert_eq!(fin["counts"]["yes"], 1);
    assert_eq!(get(addr, "/v1/results/nope").await.0, 404);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
