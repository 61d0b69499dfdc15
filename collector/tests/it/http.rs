//! The HTTP endpoints, served on port 0 and stopped cleanly.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use edgevote_collector::Collector;
use edgevote_collector::http::HttpOptions;
use edgevote_queue::embedded::{EmbeddedQueue, EmbeddedQueueConfig};
use edgevote_shared::Digest32;
use edgevote_store::embedded::{EmbeddedStore, EmbeddedStoreConfig};
use edgevote_store::{
    ElectionRules, LiveTally, PutOutcome, ScanPage, Store, StoreError, StoredBallot,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fixture;

pub(crate) async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = get_with(addr, path, &[]).await;
    (status, body)
}

/// GET with extra header lines; returns status, head and body.
async fn get_with(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[&str],
) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// GET owning its path (for spawned requests).
async fn fetch(addr: std::net::SocketAddr, path: String) -> (u16, String, String) {
    get_with(addr, &path, &[]).await
}

/// A collector's router served on port 0 until the returned sender fires.
pub(crate) struct Served {
    pub(crate) addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Served {
    pub(crate) async fn start(router: axum::Router) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(edgevote_collector::http::serve(
            listener,
            router,
            async move {
                let _ = stopped.await;
            },
        ));
        Served { addr, stop, server }
    }

    pub(crate) async fn stop(self) {
        self.stop.send(()).unwrap();
        self.server.await.unwrap().unwrap();
    }
}

fn queue(dir: &std::path::Path) -> Arc<EmbeddedQueue> {
    Arc::new(
        EmbeddedQueue::open(&EmbeddedQueueConfig {
            path: dir.join("q.redb"),
            max_receives: 5,
        })
        .unwrap(),
    )
}

fn store(dir: &std::path::Path) -> Arc<EmbeddedStore> {
    Arc::new(
        EmbeddedStore::open(&EmbeddedStoreConfig {
            path: dir.join("s.redb"),
        })
        .unwrap(),
    )
}

/// A collector whose store holds, for voter `v1`, two ballots in each of the first-vote-wins
/// and the last-vote-wins election (a vote, then a re-vote 10 ms later), and nothing of `v2`.
/// Returns the collector and, per election, the two vote ids in casting order.
async fn revoted(dir: &std::path::Path) -> (Arc<Collector>, [[Digest32; 2]; 2]) {
    let queue = queue(dir);
    let collector = fixture::collector(Arc::clone(&queue) as _, store(dir) as _);
    let now = fixture::now_ms();
    let mut ids = Vec::new();
    let mut votes = Vec::new();
    for election in [fixture::FIRST, fixture::LAST] {
        let first = fixture::ballot(election, "v1", "yes", 1);
        let second = fixture::ballot(election, "v1", "no", 2);
        ids.push([first.vote_id("tok-v1"), second.vote_id("tok-v1")]);
        votes.push((election, vec![(first, now - 10), (second, now)]));
    }
    for (election, votes) in votes {
        let body = fixture::envelope(&format!("h.{election}"), votes);
        edgevote_queue::Queue::send_batch(queue.as_ref(), vec![body])
            .await
            .unwrap();
    }
    fixture::drain(&collector, Duration::from_secs(30)).await;
    (collector, [ids[0], ids[1]])
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
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
    // The embedded queue reports its commits: the send, receives and deletes made some.
    let commits = metrics
        .lines()
        .find_map(|l| l.strip_prefix("edgevote_collector_queue_commits_total{region=\"r1\"} "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no queue commits in\n{metrics}"));
    assert!(commits >= 2.0, "{commits} commits");
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

/// A coercer who knows the voter but holds no receipt learns nothing: the voter listing (which
/// showed every vote id and the counted one, so whether the voter re-voted) is gone without the
/// auditor token, and a lookup with a guessed vote id answers exactly as for a voter who never
/// voted. Before: the listing answered 200 with both vote ids and the counted one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coercer_without_the_vote_id_learns_nothing_about_a_voters_ballots() {
    let dir = tempfile::tempdir().unwrap();
    let (collector, ids) = revoted(dir.path()).await;
    let served = Served::start(edgevote_collector::http::router(collector)).await;
    for election in [fixture::FIRST, fixture::LAST] {
        let (status, body) = get(
            served.addr,
            &format!("/v1/elections/{election}/voters/v1/ballots"),
        )
        .await;
        assert_eq!(status, 404, "{election}: the voter listing answered {body}");
        for id in ids.iter().flatten() {
            assert!(!body.contains(&id.to_b64()), "{body}");
        }
        let guess = Digest32::of(b"a guess").to_b64();
        let voted = get_with(
            served.addr,
            &format!("/v1/elections/{election}/votes/{guess}?voter=v1"),
            &[],
        )
        .await;
        let never = get_with(
            served.addr,
            &format!("/v1/elections/{election}/votes/{guess}?voter=v2"),
            &[],
        )
        .await;
        assert_eq!(voted.0, 404, "{election}: {voted:?}");
        assert_eq!(
            (voted.0, &voted.2),
            (never.0, &never.2),
            "{election}: a voter who voted and one who did not must look the same"
        );
        assert!(voted.1.contains("cache-control: no-store"), "{}", voted.1);
    }
    served.stop().await;
}

/// The receipt holder learns that their ballot is stored. Under last-vote-wins nothing says
/// which of their ballots counts: the answers for the superseded and the counted ballot have
/// the same members, and no "counted"/"superseded". Under first-vote-wins (harmless: a later
/// ballot cannot change the result) the answer says whether it counts. Before: no such
/// endpoint (404), and the only one there was told everybody which ballot counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_proves_storage_but_not_which_ballot_counts_under_last_vote_wins() {
    let dir = tempfile::tempdir().unwrap();
    let (collector, [first_wins, last_wins]) = revoted(dir.path()).await;
    let served = Served::start(edgevote_collector::http::router(collector)).await;
    let lookup = |election: &'static str, id: Digest32| {
        let path = format!("/v1/elections/{election}/votes/{}?voter=v1", id.to_b64());
        let addr = served.addr;
        async move {
            let (status, body) = get(addr, &path).await;
            assert_eq!(status, 200, "{path}: {body}");
            json(&body)
        }
    };
    let superseded = lookup(fixture::LAST, last_wins[0]).await;
    let counted = lookup(fixture::LAST, last_wins[1]).await;
    for (answer, id) in [(&superseded, last_wins[0]), (&counted, last_wins[1])] {
        assert_eq!(answer["stored"], true, "{answer}");
        assert_eq!(answer["vote_id"], id.to_b64(), "{answer}");
        let text = answer.to_string();
        for word in ["counted", "superseded", "latest", "current"] {
            assert!(
                !text.contains(word),
                "last-vote-wins answer reveals {word}: {text}"
            );
        }
    }
    let members =
        |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(members(&superseded), members(&counted));
    assert_eq!(superseded["edge"], counted["edge"]);

    let earliest = lookup(fixture::FIRST, first_wins[0]).await;
    let later = lookup(fixture::FIRST, first_wins[1]).await;
    assert_eq!(earliest["counted"], true, "{earliest}");
    assert_eq!(later["counted"], false, "{later}");

    // Malformed lookups are refused with a code and reveal nothing.
    let id = last_wins[0].to_b64();
    for (path, code) in [
        (
            format!("/v1/elections/{}/votes/{id}", fixture::LAST),
            "invalid_field",
        ),
        (
            format!("/v1/elections/{}/votes/{id}?voter=v%31", fixture::LAST),
            "invalid_field",
        ),
        (
            format!("/v1/elections/{}/votes/nope?voter=v1", fixture::LAST),
            "invalid_field",
        ),
        (
            format!("/v1/elections/{}/votes/no*pe?voter=v1", fixture::LAST),
            "malformed_base64",
        ),
        (
            format!("/v1/elections/nope/votes/{id}?voter=v1"),
            "unknown_election",
        ),
    ] {
        let (status, body) = get(served.addr, &path).await;
        assert!(status == 400 || status == 404, "{path}: {status} {body}");
        assert!(!body.contains("\"stored\""), "{path}: {body}");
        assert!(body.contains(&format!("\"{code}\"")), "{path}: {body}");
    }
    served.stop().await;
}

/// The voter listing exists only behind the configured auditor token, compared in constant
/// time: no token, a wrong one, or one of another length get 401; the right one gets the
/// listing with the counted vote id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_voter_listing_needs_the_auditor_token() {
    let dir = tempfile::tempdir().unwrap();
    let (collector, [_, last_wins]) = revoted(dir.path()).await;
    let token = "t".repeat(40);
    assert!(HttpOptions::default().with_auditor_token("short").is_err());
    let options = HttpOptions::default().with_auditor_token(&token).unwrap();
    assert!(
        !format!("{options:?}").contains(&token),
        "the token leaks into logs"
    );
    let served = Served::start(edgevote_collector::http::router_with(collector, options)).await;
    let path = format!("/v1/elections/{}/voters/v1/ballots", fixture::LAST);
    let wrong_same_length = format!("Authorization: Bearer {}", "u".repeat(40));
    let right = format!("Authorization: Bearer {token}");
    for headers in [
        vec![],
        vec![wrong_same_length.as_str()],
        vec!["Authorization: Bearer t"],
        vec!["Authorization: Basic dDp0"],
    ] {
        let (status, head, body) = get_with(served.addr, &path, &headers).await;
        assert_eq!(status, 401, "{headers:?}: {body}");
        assert!(head.contains("www-authenticate: bearer"), "{head}");
        assert!(!body.contains(&last_wins[0].to_b64()), "{body}");
    }
    let (status, _, body) = get_with(served.addr, &path, &[&right]).await;
    assert_eq!(status, 200, "{body}");
    let listing = json(&body);
    assert_eq!(listing["ballots"].as_array().unwrap().len(), 2, "{listing}");
    assert_eq!(listing["counted"], last_wins[1].to_b64(), "{listing}");
    served.stop().await;
}

/// A store whose scans are slow, counting scans (first pages) and the most running at once.
struct SlowScans {
    inner: Arc<dyn Store>,
    delay: Duration,
    scans: AtomicUsize,
    running: AtomicUsize,
    most_running: AtomicUsize,
}

impl SlowScans {
    fn new(inner: Arc<dyn Store>, delay: Duration) -> Arc<Self> {
        Arc::new(SlowScans {
            inner,
            delay,
            scans: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            most_running: AtomicUsize::new(0),
        })
    }
}

#[async_trait::async_trait]
impl Store for SlowScans {
    async fn record(
        &self,
        rules: &ElectionRules,
        region: &str,
        ballots: Vec<StoredBallot>,
    ) -> Result<Vec<PutOutcome>, StoreError> {
        self.inner.record(rules, region, ballots).await
    }

    async fn voter_ballots(
        &self,
        election: &str,
        voter: &str,
    ) -> Result<Vec<StoredBallot>, StoreError> {
        self.inner.voter_ballots(election, voter).await
    }

    async fn live_tally(&self, election: &str) -> Result<LiveTally, StoreError> {
        self.inner.live_tally(election).await
    }

    async fn scan(
        &self,
        election: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        if cursor.is_none() {
            self.scans.fetch_add(1, Ordering::SeqCst);
        }
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_running.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let page = self.inner.scan(election, cursor, limit).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        page
    }
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name) && l.contains("region=\"r1\""))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// N concurrent requests for the final tally share one scan of the store (single flight and a
/// cache), and the scan count is exported. Before: every request scanned the whole store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_tally_is_computed_once_for_concurrent_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (collector, _) = revoted(dir.path()).await;
    let slow = SlowScans::new(Arc::clone(&collector.store), Duration::from_millis(300));
    let collector = fixture::collector(Arc::clone(&collector.queue), Arc::clone(&slow) as _);
    let served = Served::start(edgevote_collector::http::router(collector)).await;
    let path = format!("/v1/results/{}/final", fixture::LAST);
    let requests: Vec<_> = (0..16)
        .map(|_| tokio::spawn(fetch(served.addr, path.clone())))
        .collect();
    let mut answers = Vec::new();
    for request in requests {
        let (status, _, body) = request.await.unwrap();
        assert_eq!(status, 200, "{body}");
        answers.push(json(&body));
    }
    assert_eq!(answers[0]["counts"]["no"], 1, "{}", answers[0]);
    assert_eq!(answers[0]["ballots"], 2, "{}", answers[0]);
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    assert_eq!(
        slow.scans.load(Ordering::SeqCst),
        1,
        "16 requests, one scan"
    );
    let (_, metrics) = get(served.addr, "/metrics").await;
    assert_eq!(
        metric(&metrics, "edgevote_collector_final_tally_scans_total"),
        1
    );
    assert_eq!(
        metric(&metrics, "edgevote_collector_final_tally_scans_running"),
        0
    );
    served.stop().await;
}

/// Scans of different elections do not pile up: at most `final_max_scans` (default 1) run at
/// once; a request that would wait longer than `final_wait` is answered 503 `busy` with
/// `Retry-After` instead of starting another scan. Before: one scan per request, unbounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_tally_scans_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (collector, _) = revoted(dir.path()).await;
    let slow = SlowScans::new(Arc::clone(&collector.store), Duration::from_millis(300));
    let collector = fixture::collector(Arc::clone(&collector.queue), Arc::clone(&slow) as _);
    let served = Served::start(edgevote_collector::http::router(Arc::clone(&collector))).await;
    let requests: Vec<_> = [fixture::FIRST, fixture::LAST, fixture::FIRST, fixture::LAST]
        .iter()
        .map(|e| tokio::spawn(fetch(served.addr, format!("/v1/results/{e}/final"))))
        .collect();
    for request in requests {
        let (status, _, body) = request.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        slow.most_running.load(Ordering::SeqCst),
        1,
        "scans ran side by side"
    );
    assert_eq!(
        slow.scans.load(Ordering::SeqCst),
        2,
        "one scan per election"
    );
    served.stop().await;

    let options = HttpOptions {
        final_wait: Duration::from_millis(50),
        final_cache: Duration::from_secs(3),
        ..HttpOptions::default()
    };
    let served = Served::start(edgevote_collector::http::router_with(collector, options)).await;
    let final_of = |e: &str| format!("/v1/results/{e}/final");
    let scans_before = slow.scans.load(Ordering::SeqCst);
    let first = tokio::spawn(fetch(served.addr, final_of(fixture::FIRST)));
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The scan slot is taken by the first election's scan: the second waits 50 ms, then 503.
    let (status, head, body) = get_with(served.addr, &final_of(fixture::LAST), &[]).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"busy\""), "{body}");
    assert!(head.contains("retry-after: 3"), "{head}");
    // The first request's own scan outlasts its 50 ms wait too; the scan goes on without it.
    let (status, head, body) = first.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(head.contains("retry-after: 3"), "{head}");
    // Both scans finish, one after the other, and their tallies are then served from the cache.
    // (Bounded wait: 10 s.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while slow.scans.load(Ordering::SeqCst) < scans_before + 2
        || slow.running.load(Ordering::SeqCst) > 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the scans did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    for election in [fixture::FIRST, fixture::LAST] {
        let (status, body) = get(served.addr, &final_of(election)).await;
        assert_eq!(status, 200, "{election}: {body}");
        assert_eq!(json(&body)["ballots"], 2, "{body}");
    }
    assert_eq!(slow.scans.load(Ordering::SeqCst), scans_before + 2);
    assert_eq!(
        slow.most_running.load(Ordering::SeqCst),
        1,
        "scans ran side by side"
    );
    let (_, metrics) = get(served.addr, "/metrics").await;
    assert_eq!(
        metric(&metrics, "edgevote_collector_final_tally_busy_total"),
        2
    );
    assert_eq!(
        metric(&metrics, "edgevote_collector_final_tally_scans_total"),
        2
    );
    served.stop().await;
}
