//! Edge benchmark (run: `cargo bench -p edgevote-edge-host`). Prints:
//! 1. the core vote handler natively vs the same vote through the real component in the host,
//!    in votes per CPU-second (per core; the ratio, target >= 0.7x), for both sealing modes
//!    (`edgevote_bench::handler`, the same measurement `edgevote bench` makes);
//! 2. honest votes per CPU-second with half the requests malformed, and a read's cost;
//! 3. the host's requests/s over HTTP on loopback with the real component (2 shared cores,
//!    client in the same process), in both modes.
//!
//! A queue that accepts instantly stands in for the regional queue, so the figures are the
//! edge's own cost. Figures only: nothing here fails on speed.

// A benchmark binary: panicking on a broken setup is the right outcome.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use edgevote_bench::cpu::{Spread, spread};
use edgevote_bench::fixture::Fixture;
use edgevote_bench::handler::{
    ComponentBench, Hosts, InstantQueue, host_config, measure_handlers, read_request, vote_request,
};
use edgevote_edge_host::SealingMode;
use http_body_util::{BodyExt, Full};

const VOTES: usize = 4000;

/// Rounds of each measurement, interleaved so that the machine's drift hits all alike.
const ROUNDS: usize = 7;

/// Native Ed25519 on this machine, microseconds per sign and per verify (the floor under the
/// native handler's one verify and two signs per vote).
fn native_ed25519_us() -> (f64, f64) {
    let limit = edgevote_bench::crypto::crypto_limit(256, 128, 1);
    (limit.sign_us, limit.verify_us)
}

/// Requests/s over HTTP on loopback, `clients` concurrent keep-alive connections.
fn http_requests_per_sec(s: &Fixture, sealing: SealingMode, clients: usize) -> f64 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (host, _background) = edgevote_edge_host::start_with_queue(
            &host_config(s, sealing, &s.signed_component()).unwrap(),
            Arc::new(InstantQueue),
        )
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
                    let request: hyper::Request<Full<Bytes>> = vote_request(body);
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
fn malformed_traffic(s: &Fixture, hosts: &Hosts) {
    println!(
        "honest votes per CPU-second with 50% of the requests malformed (8 kinds, round robin), median of {ROUNDS} rounds (range):"
    );
    for (name, bench) in [
        ("host sealing", &hosts.host_sealed),
        ("component sealing", &hosts.component_sealed),
    ] {
        let created_before = bench.instances_created();
        let (mut clean, mut mixed) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            clean.push(bench.run_mixed(&s.bodies, vote_request, 202, 0).unwrap());
            mixed.push(bench.run_mixed(&s.bodies, vote_request, 202, 1).unwrap());
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

fn reads(bench: &ComponentBench, s: &Fixture) {
    let reads = bench.run(&s.bodies, read_request, 200).unwrap();
    println!(
        "  a read through the component (GET /v1/elections/bench, no signatures): {:.0} us of CPU each",
        1e6 / reads.per_cpu_sec
    );
}

fn main() {
    let component = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm32-wasip2/release/edgevote_edge_spin.wasm");
    let s = Fixture::new(VOTES, &component)
        .expect("the fixture (build the component first: scripts/build-wasm.sh spin)");
    // The wide-arithmetic build, when scripts/build-wasm.sh wide made it.
    let wide = component.with_file_name("edgevote_edge_wide.wasm");
    let wide = wide
        .exists()
        .then(|| s.sign_component(&wide, "wide").unwrap());
    let (figures, hosts) = measure_handlers(&s, wide.as_ref(), ROUNDS, |_| {}).unwrap();
    println!(
        "edge vote handler, {VOTES} votes (admission + envelope + receipt), votes per CPU-second, median of {ROUNDS} rounds (range):"
    );
    let native = figures.native;
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
    row("component, host sealing (default)", &figures.host_sealing);
    row(
        "component, component sealing (as on Spin)",
        &figures.component_sealing,
    );
    if let Some(wide) = &figures.wide_component_sealing {
        row("component sealing, wide-arithmetic build", wide);
    }
    println!(
        "  votes per queue message: {:.1} (host sealing), {:.1} (component sealing)",
        figures.votes_per_message_host, figures.votes_per_message_component
    );
    let (sign_us, verify_us) = native_ed25519_us();
    println!(
        "  native Ed25519: sign {sign_us:.1} us, verify {verify_us:.1} us; a native vote takes {:.0} us of CPU",
        1e6 / native.median
    );
    malformed_traffic(&s, &hosts);
    reads(&hosts.host_sealed, &s);
    drop(hosts);
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
