//! One handler path of `edgevote bench` (b, c), over and over, to profile it alone:
//!
//! ```sh
//! cargo build --release -p edgevote-bench --example profile_handler
//! EDGEVOTE_WASM_PERFMAP=1 target/release/examples/profile_handler wide 30 &
//! perf record -g -p $! -- sleep 20
//! ```
//!
//! PATH is `native`, `host` (the portable component under host sealing), `component` (it under
//! component sealing) or `wide` (the wide-arithmetic build under component sealing; build it
//! with `scripts/build-wasm.sh wide`). It runs the same functions as `edgevote bench` for
//! SECONDS (default 30) and prints the CPU per vote of each round. `EDGEVOTE_WASM_PERFMAP=1`
//! makes the host write a perf map of the compiled Wasm, so `perf report` names its functions
//! (build the component with `CARGO_PROFILE_RELEASE_STRIP=false` to keep their names).

// A developer's tool: a broken setup should stop it with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use edgevote_bench::fixture::Fixture;
use edgevote_bench::handler::{ComponentBench, native_votes, vote_request};
use edgevote_edge_host::SealingMode;

/// Votes per round: long enough that a round's CPU time is well above the clock's resolution.
const VOTES: usize = 2000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().map_or("wide", String::as_str);
    let seconds: u64 = args
        .get(1)
        .map_or(30, |s| s.parse().expect("SECONDS: a number"));
    let release = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release");
    let fixture = Fixture::new(VOTES, &release.join("edgevote_edge_spin.wasm"))
        .expect("the fixture (build the component first: scripts/build-wasm.sh spin)");
    let bench = match path {
        "native" => None,
        "host" => Some((SealingMode::Host, fixture.signed_component())),
        "component" => Some((SealingMode::Component, fixture.signed_component())),
        "wide" => {
            let wide = fixture
                .sign_component(&release.join("edgevote_edge_wide.wasm"), "wide")
                .expect("the wide build (scripts/build-wasm.sh wide)");
            Some((SealingMode::Component, wide))
        }
        other => panic!("unknown path {other:?}: native, host, component or wide"),
    }
    .map(|(sealing, component)| ComponentBench::new(&fixture, sealing, &component).unwrap());
    eprintln!("profile_handler: {path}, {VOTES} votes a round, for {seconds} s");
    let end = Instant::now() + Duration::from_secs(seconds);
    // Bounded by the deadline.
    while Instant::now() < end {
        let rate = match &bench {
            None => native_votes(&fixture).unwrap(),
            Some(bench) => bench.run(&fixture.bodies, vote_request, 202).unwrap(),
        };
        println!("{path}: {:.1} us of CPU per vote", 1e6 / rate.per_cpu_sec);
    }
}
