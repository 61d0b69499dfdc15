//! The Spin build as on Spin: its outbound SigV4 `SendMessage` goes to a real SQS-API server
//! (moto on 127.0.0.1, started by the test), with failover to the next configured queue.

use std::sync::Arc;
use std::time::Duration;

use edgevote_aws::moto::MotoServer;
use edgevote_aws::{SqsQueue, create_queue_pair};
use edgevote_queue::Queue;
use edgevote_shared::{QueueEnvelope, Receipt, verify};

use crate::fixture::{Deployment, now_secs};
use crate::http::{ballot, vote};

/// A host in forwarding mode whose component sends to `queues` (`region=url` pairs).
async fn forwarding_host(
    d: &Deployment,
    name: &str,
    queues: Vec<String>,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let mut config = d.config(false);
    config.forward_outbound = true;
    config.sealing = edgevote_edge_host::SealingMode::Component;
    config.forward_queues = queues;
    // Unused in forwarding mode, but each host holds its own file.
    config.queue = edgevote_aws::backends::QueueBackendConfig::Embedded(
        edgevote_queue::embedded::EmbeddedQueueConfig {
            path: d.path(&format!("{name}.redb")),
            max_receives: 5,
        },
    );
    let (host, _background) = edgevote_edge_host::start(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(edgevote_edge_host::server::serve(
        listener,
        Arc::clone(&host),
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_sends_to_sqs_and_fails_over() {
    let server = MotoServer::shared().expect("moto server (run scripts/bootstrap.sh python)");
    let sqs = server.sqs_client();
    let (url, dlq) = create_queue_pair(&sqs, &MotoServer::unique_name("spin"), 5, 30)
        .await
        .unwrap();
    let d = Deployment::new();
    let dead = "r-dead=http://127.0.0.1:9/000000000000/nowhere".to_owned();
    let (addr, stop) =
        forwarding_host(&d, "first", vec![dead.clone(), format!("us-east-1={url}")]).await;
    let token = d.token("open", "spin-1", now_secs() + 3600);
    let reply = vote(addr, "open", &ballot("open", &token, "yes", 1)).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let receipt = verify::<Receipt>(reply.json()["receipt"].as_str().unwrap(), &d.keyset())
        .unwrap()
        .doc;
    let queue = SqsQueue::with_client(sqs, &url, &dlq);
    let messages = queue
        .receive(10, Duration::from_secs(2), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);
    let envelope = verify::<QueueEnvelope>(&messages[0].body, &d.keyset())
        .unwrap()
        .doc;
    assert_eq!(
        envelope.votes[0].ballot.vote_id(&receipt.token_id),
        receipt.vote_id
    );
    let _ = stop.send(());

    // Every queue unreachable: 503, Retry-After, no receipt.
    let (addr, stop) = forwarding_host(&d, "second", vec![dead]).await;
    let token = d.token("open", "spin-2", now_secs() + 3600);
    let reply = vote(addr, "open", &ballot("open", &token, "yes", 2)).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.header("retry-after").is_some());
    assert!(reply.json().get("receipt").is_none());
    let _ = stop.send(());
}
