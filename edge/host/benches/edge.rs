//! Edge benchmark (run: `cargo bench -p edgevote-edge-host`). Prints:
//! 1. the core vote handler natively vs the same vote through the real component in the host,
//!    in votes per CPU-second (per core; the ratio, target >= 0.7x), for both sealing modes:
//!    - host sealing (the host's default): the component checks the ballot in Wasm, the host
//!      verifies the tokens of a group commit in one batch, seals one envelope and signs each
//!      receipt natively;
//!    - component sealing (as on Spin): all of it in Wasm;
//! 2. the host's requests/s over HTTP on loopback with the real component (2 shared cores,
//!    client in the same process), in both modes.
//!
//! A queue that accepts instantly stands in for the regional queue, so the figures are the
//! edge's own cost. CPU time is the whole process's (`CLOCK_PROCESS_CPUTIME_ID`), so work the
//! host moves to other threads is counted. Figures only: nothing here fails on speed.

// A benchmark binary: panicking on a broken setup is the right outcome.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use edgevote_edge_core::{Edge, Outcome, Request, ServedElection};
use edgevote_edge_host::SealingMode;
use edgevote_edge_host::config::HostConfig;
use edgevote_queue::{DeadLetter, Queue, QueueError, QueueStats, Received};
use edgevote_shared::{
    BundleManifest, Digest32, ElectionManifest, ElectionOption, Limits, Platform, Policy, Role,
    VoteToken, b64, sign,
};
use edgevote_signer::KeyStore;
use http_body_util::{BodyExt, Full};

const VOTES: usize = 4000;

/// Accepts every send at once (the edge's own cost is what is measured).
struct InstantQueue;

#[async_trait]
impl Queue for InstantQueue {
    async fn send_batch(&self, bodies: Vec<String>) -> Result<Vec<String>, QueueError> {
        Ok(bodies.iter().map(|_| "m".to_owned()).collect())
    }
    async fn receive(
        &self,
        _: usize,
        _: Duration,
        _: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        Ok(vec![])
    }
    async fn delete_batch(&self, _: Vec<String>) -> Result<(), QueueError> {
        Ok(())
    }
    async fn change_visibility(&self, _: Vec<String>, _: Duration) -> Result<(), QueueError> {
        Ok(())
    }
    async fn dead_letter(&self, _: &Received, _: &str) -> Result<(), QueueError> {
        Ok(())
    }
    async fn peek_dead_letters(&self, _: usize) -> Result<Vec<DeadLetter>, QueueError> {
        Ok(vec![])
    }
    async fn stats(&self) -> Result<QueueStats, QueueError> {
        Ok(QueueStats::default())
    }
}

struct Setup {
    dir: tempfile::TempDir,
    store: KeyStore,
    manifest: ElectionManifest,
    signed_manifest: String,
    bodies: Vec<Vec<u8>>,
}

fn now() -> u64 {
    edgevote_signer::clock::now_ms() / 1000
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::open_or_create(dir.path().join("keys")).unwrap();
    for role in [Role::Authority, Role::Ops] {
        store.generate(role, now() - 60).unwrap();
    }
    store.generate_edge("edge-b", "r1", now() - 60).unwrap();
    let authority = store.signing_identity(Role::Authority, None).unwrap();
    let manifest = ElectionManifest {
        v: 1,
        id: "bench".into(),
        title: "Bench".into(),
        options: vec![ElectionOption {
            id: "yes".into(),
            label: "Yes".into(),
        }],
        opens_at: now() - 60,
        closes_at: now() + 3600,
        policy: Policy::FirstVoteWins,
        limits: Limits::default(),
        created_at: now() - 60,
    };
    let signed_manifest = sign(&authority, &manifest).unwrap();
    std::fs::write(dir.path().join("election.jws"), &signed_manifest).unwrap();
    let wasm_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm32-wasip2/release/edgevote_edge_spin.wasm");
    let wasm =
        std::fs::read(&wasm_path).expect("build the component first: scripts/build-wasm.sh spin");
    let bundle = BundleManifest {
        v: 1,
        name: "edge".into(),
        version: "1".into(),
        serial: 1,
        platform: Platform::WasiHttp,
        wasm_sha256: Digest32::of(&wasm),
        wasm_bytes: wasm.len() as u64,
        config_schema: vec![],
        created_at: now() - 30,
    };
    let ops = store.signing_identity(Role::Ops, None).unwrap();
    std::fs::write(dir.path().join("bundle.jws"), sign(&ops, &bundle).unwrap()).unwrap();
    let bodies = (0..VOTES)
        .map(|i| {
            let token = VoteToken {
                jti: format!("t{i}"),
                sub: format!("v{i}"),
                aud: "bench".into(),
                iat: now() - 30,
                nbf: now() - 30,
                exp: now() + 3600,
            };
            serde_json::json!({
                "election": "bench",
                "token": sign(&authority, &token).unwrap(),
                "choice": "yes",
                "nonce": b64::encode((i as u128).to_le_bytes()),
            })
            .to_string()
            .into_bytes()
        })
        .collect();
    Setup {
        dir,
        store,
        manifest,
        signed_manifest,
        bodies,
    }
}

/// Native Ed25519 on this machine, microseconds per sign and per verify (the floor under the
/// native handler's one verify and two signs per vote).
fn native_ed25519_us() -> (f64, f64) {
    const N: u32 = 2000;
    let id = edgevote_shared::SigningIdentity::from_seed(&[7; 32], Role::Edge);
    let key = id.verifying_key();
    let message = [42u8; 600];
    let started = Instant::now();
    let mut signature = [0u8; 64];
    for _ in 0..N {
        signature = std::hint::black_box(id.sign_message(&message));
    }
    let sign = started.elapsed().as_secs_f64() * 1e6 / f64::from(N);
    let started = Instant::now();
    for _ in 0..N {
        assert!(edgevote_shared::keys::verify_message(
            &key, &message, &signature
        ));
    }
    (sign, started.elapsed().as_secs_f64() * 1e6 / f64::from(N))
}

/// CPU time this process has used so far, all threads (also those that exited), from
/// `/proc/self/stat` (user + system, in clock ticks of 10 ms: runs last long enough).
fn cpu_seconds() -> f64 {
    const TICKS_PER_SEC: f64 = 100.0; // USER_HZ on Linux
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat (Linux)");
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / TICKS_PER_SEC
}

/// A measured run: wall-clock and CPU rates of `count` operations.
struct Rate {
    per_wall_sec: f64,
    per_cpu_sec: f64,
}

fn measure(count: usize, run: impl FnOnce()) -> Rate {
    let (wall, cpu) = (Instant::now(), cpu_seconds());
    run();
    Rate {
        per_wall_sec: count as f64 / wall.elapsed().as_secs_f64(),
        per_cpu_sec: count as f64 / (cpu_seconds() - cpu),
    }
}

/// The native path: admission, envelope sealing and receipt signing, one vote after another.
fn native_votes(s: &Setup) -> Rate {
    let signer = s.store.signing_identity(Role::Edge, None).unwrap();
    let edge = Edge::new(
        vec![ServedElection {
            manifest: s.manifest.clone(),
            signed: s.signed_manifest.clone(),
        }],
        s.store.keyset().unwrap(),
        signer,
        "edge-b",
        "r1",
        None,
    );
    measure(VOTES, || native_loop(s, &edge))
}

fn native_loop(s: &Setup, edge: &Edge) {
    for body in &s.bodies {
        let request = Request {
            method: "POST",
            path: "/v1/elections/bench/votes",
            content_type: Some("application/json"),
            body,
        };
        let Outcome::Enqueue(accepted) = edge.handle(request, edgevote_signer::clock::now_ms())
        else {
            panic!("refused")
        };
        let envelope = edge
            .seal(
                "edge-b.1",
                vec![accepted.vote.clone()],
                edgevote_signer::clock::now_ms(),
            )
            .unwrap();
        std::hint::black_box(envelope);
        assert_eq!(edge.receipt_response(&accepted).status, 202);
    }
}

fn host_config(s: &Setup, sealing: SealingMode) -> HostConfig {
    let edge_kid = s.store.active_kid(Role::Edge, None).unwrap();
    let d = s.dir.path().display();
    let wasm = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm32-wasip2/release/edgevote_edge_spin.wasm");
    HostConfig::parse(&format!(
        r#"edge_id = "edge-b"
region = "r1"
component_path = "{}"
bundle_manifest_path = "{d}/bundle.jws"
keyset_path = "{d}/keys/keyset.json"
election_paths = ["{d}/election.jws"]
edge_key_path = "{d}/keys/private/{edge_kid}.jwk"
sealing = "{sealing}"
max_concurrent_requests = 256
[group_commit]
max_wait_ms = 0
[rate_limit]
enabled = false   # one client address sends the whole load
[queue]
backend = "embedded"
path = "{d}/unused.redb"
"#,
        wasm.display(),
        sealing = match sealing {
            SealingMode::Host => "host",
            SealingMode::Component => "component",
        }
    ))
    .unwrap()
}

type BenchRequest = hyper::Request<Full<Bytes>>;

fn vote_request(body: &[u8]) -> BenchRequest {
    hyper::Request::builder()
        .method("POST")
        .uri("/v1/elections/bench/votes")
        .header("host", "edge")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_vec())))
        .unwrap()
}

/// A read the component answers without any signature work (the election's manifest): the
/// cost of a request's trip through the host and the component alone.
fn read_request(_: &[u8]) -> BenchRequest {
    hyper::Request::builder()
        .method("GET")
        .uri("/v1/elections/bench")
        .header("host", "edge")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Malformed requests, one kind after another (the hostile catalogue's common shapes): some
/// the host's front refuses before any Wasm runs, some the component refuses after parsing.
fn malformed_request(i: usize, body: &[u8]) -> BenchRequest {
    let vote = || {
        hyper::Request::builder()
            .method("POST")
            .uri("/v1/elections/bench/votes")
            .header("content-type", "application/json")
    };
    let (request, bytes) = match i % 8 {
        0 => (vote(), body.to_vec()), // no Host (HTTP/1.1): 400 missing_host
        1 => (
            vote().header("host", "a").header("host", "b"),
            body.to_vec(),
        ), // 400 bad_host
        2 => (
            vote()
                .header("host", "edge")
                .header("content-length", "10000000")
                .header("expect", "100-continue"),
            Vec::new(),
        ), // 413 too_large
        3 => (
            vote()
                .header("host", "edge")
                .header("content-encoding", "gzip"),
            body.to_vec(),
        ), // 415
        4 => (vote().header("host", "edge"), b"{nope".to_vec()), // component: 400 malformed_json
        5 => (
            hyper::Request::builder()
                .method("POST")
                .uri("/v1/elections/bench/votes")
                .header("host", "edge")
                .header("content-type", "text/plain"),
            body.to_vec(),
        ), // component: 415 unsupported_media_type
        6 => (
            vote().header("host", "edge"),
            body[..body.len() / 2].to_vec(),
        ), // component: 400
        _ => (
            hyper::Request::builder()
                .method("POST")
                .uri("/v2/nowhere")
                .header("host", "edge"),
            body.to_vec(),
        ), // component: 404 not_found
    };
    request.body(Full::new(Bytes::from(bytes))).unwrap()
}

/// A host with the real component, driven without network on a single-threaded runtime.
struct ComponentBench {
    runtime: tokio::runtime::Runtime,
    host: Arc<edgevote_edge_host::EdgeHost>,
    _background: edgevote_edge_host::Background,
}

impl ComponentBench {
    fn new(s: &Setup, sealing: SealingMode) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (host, background) = runtime
            .block_on(edgevote_edge_host::start_with_queue(
                &host_config(s, sealing),
                Arc::new(InstantQueue),
            ))
            .unwrap();
        let bench = ComponentBench {
            runtime,
            host,
            _background: background,
        };
        // Warm up the pool and the component.
        bench.run(&s.bodies[..64], vote_request, 202);
        bench
    }

    /// Rates of `make` (one request per body), 32 in flight, each answered `status`, through
    /// the host's production front ([`edgevote_edge_host::server::answer`]) without sockets.
    fn run(&self, bodies: &[Vec<u8>], make: fn(&[u8]) -> BenchRequest, status: u16) -> Rate {
        self.run_mixed(bodies, make, status, 0)
    }

    /// [`Self::run`], with `malformed` malformed requests sent beside each honest one (all
    /// refused with a 4xx); the rate counts the honest requests only.
    fn run_mixed(
        &self,
        bodies: &[Vec<u8>],
        make: fn(&[u8]) -> BenchRequest,
        status: u16,
        malformed: usize,
    ) -> Rate {
        self.runtime.block_on(async {
            let bodies = Arc::new(bodies.to_vec());
            let (wall, cpu) = (Instant::now(), cpu_seconds());
            let mut tasks = tokio::task::JoinSet::new();
            for lane in 0..32 {
                let (host, bodies) = (Arc::clone(&self.host), Arc::clone(&bodies));
                tasks.spawn(async move {
                    let peer = std::net::IpAddr::from([127, 0, 0, 1]);
                    for (i, body) in bodies.iter().enumerate().skip(lane).step_by(32) {
                        for k in 0..malformed {
                            let kind = i * malformed + k;
                            let bad = malformed_request(kind, body);
                            let (response, _) =
                                edgevote_edge_host::server::answer(&host, peer, bad).await;
                            assert!(
                                response.status().is_client_error(),
                                "malformed kind {}: {}",
                                kind % 8,
                                response.status()
                            );
                            std::hint::black_box(response.into_body().collect().await.unwrap());
                        }
                        let (response, _) =
                            edgevote_edge_host::server::answer(&host, peer, make(body)).await;
                        assert_eq!(response.status(), status);
                        std::hint::black_box(response.into_body().collect().await.unwrap());
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
            Rate {
                per_wall_sec: bodies.len() as f64 / wall.elapsed().as_secs_f64(),
                per_cpu_sec: bodies.len() as f64 / (cpu_seconds() - cpu),
            }
        })
    }

    /// Component instances created so far.
    fn instances_created(&self) -> u64 {
        self.host
            .metrics
            .instances_created
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Votes per queue message so far.
    fn votes_per_message(&self) -> f64 {
        let metric =
            |m: &std::sync::atomic::AtomicU64| m.load(std::sync::atomic::Ordering::Relaxed);
        let metrics = &self.host.metrics;
        metric(&metrics.votes_committed) as f64 / metric(&metrics.group_commits).max(1) as f64
    }
}

/// The median and the range of some rates (per CPU-second).
struct Spread {
    median: f64,
    min: f64,
    max: f64,
    /// Median wall-clock rate (equal to the CPU rate when the work stays on one core).
    wall_median: f64,
}

fn spread(rates: &[Rate]) -> Spread {
    let sorted = |pick: fn(&Rate) -> f64| {
        let mut sorted: Vec<f64> = rates.iter().map(pick).collect();
        sorted.sort_by(f64::total_cmp);
        sorted
    };
    let cpu = sorted(|r| r.per_cpu_sec);
    Spread {
        median: cpu[cpu.len() / 2],
        min: cpu[0],
        max: cpu[cpu.len() - 1],
        wall_median: sorted(|r| r.per_wall_sec)[rates.len() / 2],
    }
}

/// Requests/s over HTTP on loopback, `clients` concurrent keep-alive connections.
fn http_requests_per_sec(s: &Setup, sealing: SealingMode, clients: usize) -> f64 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (host, _background) =
            edgevote_edge_host::start_with_queue(&host_config(s, sealing), Arc::new(InstantQueue))
                .await
                .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(edgevote_edge_host::server::serve(
            listener,
            host,
            async move {
                let _ = stopped.await;
            },
        ));
        let bodies = Arc::new(s.bodies.clone());
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..clients {
            let bodies = Arc::clone(&bodies);
            tasks.spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                        .await
                        .unwrap();
                tokio::spawn(connection);
                for body in bodies.iter().skip(c).step_by(clients) {
                    let request = hyper::Request::builder()
                        .method("POST")
                        .uri("/v1/elections/bench/votes")
                        .header("host", "edge")
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body.clone())))
                        .unwrap();
                    let response = sender.send_request(request).await.unwrap();
                    assert_eq!(response.status(), 202);
                    response.into_body().collect().await.unwrap();
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        let rate = VOTES as f64 / started.elapsed().as_secs_f64();
        let _ = stop.send(());
        let _ = server.await;
        rate
    })
}

/// Honest votes per CPU-second with half the traffic malformed (one malformed request beside
/// each vote) against the clean figure, under both sealings, and the instances that cost.
fn malformed_traffic(s: &Setup, host_sealed: &ComponentBench, component_sealed: &ComponentBench) {
    println!(
        "honest votes per CPU-second with 50% of the requests malformed (8 kinds, round robin), median of {ROUNDS} rounds (range):"
    );
    for (name, bench) in [
        ("host sealing", host_sealed),
        ("component sealing", component_sealed),
    ] {
        let created_before = bench.instances_created();
        let (mut clean, mut mixed) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            clean.push(bench.run_mixed(&s.bodies, vote_request, 202, 0));
            mixed.push(bench.run_mixed(&s.bodies, vote_request, 202, 1));
        }
        let (clean, mixed) = (spread(&clean), spread(&mixed));
        println!(
            "  {name:<18} clean {:>7.0} ({:.0}..{:.0}), 50% malformed {:>7.0} ({:.0}..{:.0}): ratio {:.2}x (target >= 0.90x); instances created meanwhile: {}",
            clean.median,
            clean.min,
            clean.max,
            mixed.median,
            mixed.min,
            mixed.max,
            mixed.median / clean.median,
            bench.instances_created() - created_before
        );
    }
}

/// Rounds of each measurement, interleaved so that the machine's drift hits all alike.
const ROUNDS: usize = 7;

fn main() {
    let s = setup();
    let host_sealed = ComponentBench::new(&s, SealingMode::Host);
    let component_sealed = ComponentBench::new(&s, SealingMode::Component);
    let (mut native, mut host, mut component) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        native.push(native_votes(&s));
        host.push(host_sealed.run(&s.bodies, vote_request, 202));
        component.push(component_sealed.run(&s.bodies, vote_request, 202));
    }
    println!(
        "edge vote handler, {VOTES} votes (admission + envelope + receipt), votes per CPU-second, median of {ROUNDS} rounds (range):"
    );
    let native = spread(&native);
    let row = |name: &str, rate: &Spread| {
        println!(
            "  {name:<40} {:>7.0} votes/s ({:.0}..{:.0})   ratio {:.2}x (target >= 0.70x); wall {:.0}/s",
            rate.median,
            rate.min,
            rate.max,
            rate.median / native.median,
            rate.wall_median
        );
    };
    row("native core handler", &native);
    row("component, host sealing (default)", &spread(&host));
    row(
        "component, component sealing (as on Spin)",
        &spread(&component),
    );
    println!(
        "  votes per queue message: {:.1} (host sealing), {:.1} (component sealing)",
        host_sealed.votes_per_message(),
        component_sealed.votes_per_message()
    );
    let (sign_us, verify_us) = native_ed25519_us();
    println!(
        "  native Ed25519: sign {sign_us:.1} us, verify {verify_us:.1} us; a native vote takes {:.0} us of CPU",
        1e6 / native.median
    );
    malformed_traffic(&s, &host_sealed, &component_sealed);
    let reads = host_sealed.run(&s.bodies, read_request, 200);
    println!(
        "  a read through the component (GET /v1/elections/bench, no signatures): {:.0} us of CPU each",
        1e6 / reads.per_cpu_sec
    );
    drop((host_sealed, component_sealed));
    for (name, sealing) in [
        ("host sealing", SealingMode::Host),
        ("component sealing", SealingMode::Component),
    ] {
        for clients in [16, 64] {
            let rate = http_requests_per_sec(&s, sealing, clients);
            println!(
                "host over HTTP, {name} (loopback, 2 shared cores, {clients} client connections): {rate:>8.0} votes/s"
            );
        }
    }
}
