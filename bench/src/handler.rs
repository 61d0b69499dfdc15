//! The edge's vote handler, natively and through the real component in the host, in votes per
//! CPU-second: admission, envelope and receipt for each vote.
//!
//! - native: `edge/core`'s `Edge`, one vote after another (one token verified, envelope and
//!   receipt signed per vote);
//! - host sealing (the host's default): the component checks the ballot in Wasm, the host
//!   verifies the tokens of a group commit in one batch, seals one envelope and signs each
//!   receipt natively;
//! - component sealing (as on Spin and Workers): all of it in Wasm.
//!
//! A queue that accepts at once ([`InstantQueue`]) stands in for the regional queue, so the
//! figures are the edge's own cost. CPU time is the whole process's, so work the host moves to
//! other threads is counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use edgevote_edge_core::{Edge, Outcome, Request, ServedElection};
use edgevote_edge_host::SealingMode;
use edgevote_edge_host::config::HostConfig;
use edgevote_queue::{DeadLetter, Queue, QueueError, QueueStats, Received};
use edgevote_shared::Role;
use http_body_util::{BodyExt, Full};

use crate::cpu::{Rate, Stopwatch, measure};
use crate::fixture::{EDGE, ELECTION, Fixture, SignedComponent};
use crate::{BenchError, BoxError};

/// Requests in flight at once through the host (the bench's concurrent voters).
pub const LANES: usize = 32;

/// A queue that accepts every send at once (the edge's own cost is what is measured).
#[derive(Debug, Default)]
pub struct InstantQueue;

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

/// The sealing's name, as in the host's configuration.
pub fn sealing_name(sealing: SealingMode) -> &'static str {
    match sealing {
        SealingMode::Host => "host",
        SealingMode::Component => "component",
    }
}

/// The native path over every vote body of `fixture`: admission, envelope sealing and receipt
/// signing, one vote after another.
pub fn native_votes(fixture: &Fixture) -> Result<Rate, BenchError> {
    let signer = fixture.store.signing_identity(Role::Edge, None)?;
    let edge = Edge::new(
        vec![ServedElection {
            manifest: fixture.manifest.clone(),
            signed: fixture.signed_manifest.clone(),
        }],
        fixture.store.keyset()?,
        signer,
        EDGE.0,
        EDGE.1,
        None,
    );
    let mut outcome = Ok(());
    let rate = measure(fixture.bodies.len(), || {
        outcome = native_loop(fixture, &edge);
    });
    outcome.map(|()| rate)
}

fn native_loop(fixture: &Fixture, edge: &Edge) -> Result<(), BenchError> {
    let unexpected = |status: u16, detail: String| BenchError::Unexpected {
        path: "native handler",
        status,
        detail,
    };
    let path = format!("/v1/elections/{ELECTION}/votes");
    for body in &fixture.bodies {
        let request = Request {
            method: "POST",
            path: &path,
            content_type: Some("application/json"),
            body,
        };
        let accepted = match edge.handle(request, edgevote_signer::clock::now_ms()) {
            Outcome::Enqueue(accepted) => accepted,
            Outcome::Respond(response) => return Err(unexpected(response.status, String::new())),
            Outcome::HandToHost(_) => return Err(unexpected(0, "handed to a host".into())),
            Outcome::VerifyOnPlatform(_) => {
                return Err(unexpected(0, "handed to a platform".into()));
            }
        };
        let envelope = edge
            .seal(
                "edge-b.1",
                vec![accepted.vote.clone()],
                edgevote_signer::clock::now_ms(),
            )
            .map_err(|e| unexpected(0, format!("sealing: {e}")))?;
        std::hint::black_box(envelope);
        let receipt = edge.receipt_response(&accepted);
        if receipt.status != 202 {
            return Err(unexpected(receipt.status, "receipt".into()));
        }
    }
    Ok(())
}

/// The host configuration of the measurements: the production defaults but no wait in group
/// commit (votes are in flight together anyway) and no rate limit (one client address sends
/// the whole load).
pub fn host_config(
    fixture: &Fixture,
    sealing: SealingMode,
    component: &SignedComponent,
) -> Result<HostConfig, BenchError> {
    let edge_kid = fixture.store.active_kid(Role::Edge, None)?;
    let d = fixture.dir.path().display();
    HostConfig::parse(&format!(
        r#"edge_id = "{edge}"
region = "{region}"
component_path = "{component}"
bundle_manifest_path = "{bundle}"
keyset_path = "{d}/keys/keyset.json"
election_paths = ["{d}/election.jws"]
edge_key_path = "{d}/keys/private/{edge_kid}.jwk"
sealing = "{sealing}"
max_concurrent_requests = 256
[group_commit]
max_wait_ms = 0
[rate_limit]
enabled = false
[queue]
backend = "embedded"
path = "{d}/unused.redb"
"#,
        edge = EDGE.0,
        region = EDGE.1,
        component = component.wasm.display(),
        bundle = component.bundle.display(),
        sealing = sealing_name(sealing),
    ))
    .map_err(|source| BenchError::StartHost {
        sealing: sealing_name(sealing),
        source: source.into(),
    })
}

/// A request of the measurements.
pub type BenchRequest = hyper::Request<Full<Bytes>>;

/// A vote (POST of `body` to the fixture's election).
pub fn vote_request(body: &[u8]) -> BenchRequest {
    request("POST", &format!("/v1/elections/{ELECTION}/votes"))
        .header("host", "edge")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_vec())))
        .unwrap_or_default()
}

/// A read the component answers without any signature work (the election's manifest): the
/// cost of a request's trip through the host and the component alone.
pub fn read_request(_: &[u8]) -> BenchRequest {
    request("GET", &format!("/v1/elections/{ELECTION}"))
        .header("host", "edge")
        .body(Full::new(Bytes::new()))
        .unwrap_or_default()
}

fn request(method: &str, path: &str) -> hyper::http::request::Builder {
    hyper::Request::builder().method(method).uri(path)
}

/// Malformed requests, eight kinds round robin (the hostile catalogue's common shapes): some
/// the host's front refuses before any Wasm runs, some the component refuses after parsing.
pub fn malformed_request(i: usize, body: &[u8]) -> BenchRequest {
    let votes = format!("/v1/elections/{ELECTION}/votes");
    let vote = || request("POST", &votes).header("content-type", "application/json");
    let (builder, bytes) = match i % 8 {
        // No Host (HTTP/1.1): 400 missing_host.
        0 => (vote(), body.to_vec()),
        // 400 bad_host.
        1 => (
            vote().header("host", "a").header("host", "b"),
            body.to_vec(),
        ),
        // 413 too_large.
        2 => (
            vote()
                .header("host", "edge")
                .header("content-length", "10000000")
                .header("expect", "100-continue"),
            Vec::new(),
        ),
        // 415.
        3 => (
            vote()
                .header("host", "edge")
                .header("content-encoding", "gzip"),
            body.to_vec(),
        ),
        // Component: 400 malformed_json.
        4 => (vote().header("host", "edge"), b"{nope".to_vec()),
        // Component: 415 unsupported_media_type.
        5 => (
            request("POST", &votes)
                .header("host", "edge")
                .header("content-type", "text/plain"),
            body.to_vec(),
        ),
        // Component: 400 (half a body).
        6 => (
            vote().header("host", "edge"),
            body[..body.len() / 2].to_vec(),
        ),
        // Component: 404 not_found.
        _ => (
            request("POST", "/v2/nowhere").header("host", "edge"),
            body.to_vec(),
        ),
    };
    builder
        .body(Full::new(Bytes::from(bytes)))
        .unwrap_or_default()
}

/// A host running the real component with an [`InstantQueue`], driven through its production
/// front ([`edgevote_edge_host::server::answer`]) without sockets, on a single-threaded runtime.
pub struct ComponentBench {
    runtime: tokio::runtime::Runtime,
    host: Arc<edgevote_edge_host::EdgeHost>,
    sealing: SealingMode,
    _background: edgevote_edge_host::Background,
}

impl ComponentBench {
    /// Starts the host on `component` under `sealing` and warms up its pool with the first
    /// votes.
    pub fn new(
        fixture: &Fixture,
        sealing: SealingMode,
        component: &SignedComponent,
    ) -> Result<Self, BenchError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(BenchError::Runtime)?;
        let config = host_config(fixture, sealing, component)?;
        let (host, background) = runtime
            .block_on(edgevote_edge_host::start_with_queue(
                &config,
                Arc::new(InstantQueue),
            ))
            .map_err(|source| BenchError::StartHost {
                sealing: sealing_name(sealing),
                source: source.into(),
            })?;
        let bench = ComponentBench {
            runtime,
            host,
            sealing,
            _background: background,
        };
        let warm = fixture.bodies.len().min(64);
        bench.run(&fixture.bodies[..warm], vote_request, 202)?;
        Ok(bench)
    }

    /// Rates of `make` (one request per body), [`LANES`] in flight, each answered `status`.
    pub fn run(
        &self,
        bodies: &[Vec<u8>],
        make: fn(&[u8]) -> BenchRequest,
        status: u16,
    ) -> Result<Rate, BenchError> {
        self.run_mixed(bodies, make, status, 0)
    }

    /// [`Self::run`], with `malformed` malformed requests sent beside each honest one (each
    /// must get a 4xx); the rate counts the honest requests only.
    pub fn run_mixed(
        &self,
        bodies: &[Vec<u8>],
        make: fn(&[u8]) -> BenchRequest,
        status: u16,
        malformed: usize,
    ) -> Result<Rate, BenchError> {
        let path = match self.sealing {
            SealingMode::Host => "component under host sealing",
            SealingMode::Component => "component under component sealing",
        };
        self.runtime.block_on(async {
            let bodies = Arc::new(bodies.to_vec());
            let watch = Stopwatch::start();
            let mut tasks = tokio::task::JoinSet::new();
            for lane in 0..LANES {
                let (host, bodies) = (Arc::clone(&self.host), Arc::clone(&bodies));
                tasks.spawn(lane_requests(host, bodies, lane, make, status, malformed));
            }
            while let Some(joined) = tasks.join_next().await {
                let outcome = joined.unwrap_or_else(|e| Err((0, e.to_string())));
                if let Err((got, detail)) = outcome {
                    return Err(BenchError::Unexpected {
                        path,
                        status: got,
                        detail,
                    });
                }
            }
            Ok(watch.rate(bodies.len()))
        })
    }

    /// Component instances created so far.
    pub fn instances_created(&self) -> u64 {
        self.host.metrics.instances_created.load(Ordering::Relaxed)
    }

    /// Votes per queue message so far.
    pub fn votes_per_message(&self) -> f64 {
        let metric = |m: &AtomicU64| m.load(Ordering::Relaxed);
        let metrics = &self.host.metrics;
        metric(&metrics.votes_committed) as f64 / metric(&metrics.group_commits).max(1) as f64
    }
}

/// One lane's requests: every [`LANES`]th body from `lane`. The first answer that is not the
/// one expected ends the lane: (status, body).
async fn lane_requests(
    host: Arc<edgevote_edge_host::EdgeHost>,
    bodies: Arc<Vec<Vec<u8>>>,
    lane: usize,
    make: fn(&[u8]) -> BenchRequest,
    status: u16,
    malformed: usize,
) -> Result<(), (u16, String)> {
    let peer = std::net::IpAddr::from([127, 0, 0, 1]);
    for (i, body) in bodies.iter().enumerate().skip(lane).step_by(LANES) {
        for k in 0..malformed {
            let (response, _) = edgevote_edge_host::server::answer(
                &host,
                peer,
                malformed_request(i * malformed + k, body),
            )
            .await;
            let got = response.status();
            let text = body_text(response).await;
            if !got.is_client_error() {
                return Err((
                    got.as_u16(),
                    format!("malformed kind {}: {text}", (i * malformed + k) % 8),
                ));
            }
        }
        let (response, _) = edgevote_edge_host::server::answer(&host, peer, make(body)).await;
        let got = response.status().as_u16();
        let text = body_text(response).await;
        if got != status {
            return Err((got, text));
        }
    }
    Ok(())
}

async fn body_text<B>(response: hyper::Response<B>) -> String
where
    B: hyper::body::Body,
    B::Error: Into<BoxError>,
{
    match response.into_body().collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        Err(e) => format!("(body unreadable: {})", Into::<BoxError>::into(e)),
    }
}

/// The handler figures of one run: the native handler and the component under each sealing,
/// `rounds` interleaved rounds each, in votes per CPU-second.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HandlerFigures {
    /// Votes per round.
    pub votes: usize,
    /// Rounds per path.
    pub rounds: usize,
    /// The native core handler.
    pub native: crate::cpu::Spread,
    /// The component, host sealing (the host's default).
    pub host_sealing: crate::cpu::Spread,
    /// The component, component sealing (as on Spin and Workers).
    pub component_sealing: crate::cpu::Spread,
    /// The wide-arithmetic build of the component (our host only), component sealing; `None`
    /// when that build was not given.
    pub wide_component_sealing: Option<crate::cpu::Spread>,
    /// Votes per queue message under host sealing.
    pub votes_per_message_host: f64,
    /// Votes per queue message under component sealing.
    pub votes_per_message_component: f64,
}

/// The started hosts of [`measure_handlers`], kept for further measurements (the cargo bench's
/// malformed traffic and reads).
pub struct Hosts {
    /// Host sealing.
    pub host_sealed: ComponentBench,
    /// Component sealing.
    pub component_sealed: ComponentBench,
    /// The wide-arithmetic build, component sealing, when given.
    pub wide_sealed: Option<ComponentBench>,
}

/// The native handler and the component under each sealing (and the `wide` build of the
/// component under component sealing, when given), `rounds` interleaved rounds over every vote
/// body of `fixture`; `on_round` is told of each finished round.
pub fn measure_handlers(
    fixture: &Fixture,
    wide: Option<&SignedComponent>,
    rounds: usize,
    mut on_round: impl FnMut(usize),
) -> Result<(HandlerFigures, Hosts), BenchError> {
    let portable = fixture.signed_component();
    let hosts = Hosts {
        host_sealed: ComponentBench::new(fixture, SealingMode::Host, &portable)?,
        component_sealed: ComponentBench::new(fixture, SealingMode::Component, &portable)?,
        wide_sealed: wide
            .map(|wide| ComponentBench::new(fixture, SealingMode::Component, wide))
            .transpose()?,
    };
    let (mut native, mut host, mut component, mut wide) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds.max(1) {
        native.push(native_votes(fixture)?);
        host.push(hosts.host_sealed.run(&fixture.bodies, vote_request, 202)?);
        component.push(
            hosts
                .component_sealed
                .run(&fixture.bodies, vote_request, 202)?,
        );
        if let Some(bench) = &hosts.wide_sealed {
            wide.push(bench.run(&fixture.bodies, vote_request, 202)?);
        }
        on_round(round + 1);
    }
    let figures = HandlerFigures {
        votes: fixture.bodies.len(),
        rounds: rounds.max(1),
        native: crate::cpu::spread(&native),
        host_sealing: crate::cpu::spread(&host),
        component_sealing: crate::cpu::spread(&component),
        wide_component_sealing: (!wide.is_empty()).then(|| crate::cpu::spread(&wide)),
        votes_per_message_host: hosts.host_sealed.votes_per_message(),
        votes_per_message_component: hosts.component_sealed.votes_per_message(),
    };
    Ok((figures, hosts))
}
