//! The simulation's own tests: it replays, it catches a broken design, it injects every fault,
//! and edgevote's design passes a batch of seeds (CI runs 500 more through `edgevote-sim`).
#![allow(clippy::unwrap_used)]

use edgevote_sim::{Design, SimConfig, Summary, ViolationKind, run_seed};

fn run(config: &SimConfig, seeds: std::ops::Range<u64>) -> Summary {
    let mut summary = Summary::default();
    for seed in seeds {
        summary.add(&run_seed(config, seed));
    }
    summary
}

#[test]
fn a_seed_replays_exactly() {
    let config = SimConfig::default();
    let a = run_seed(&config, 42);
    let b = run_seed(&config, 42);
    assert_eq!(a, b, "same seed, same run");
    assert_ne!(a.trace_digest, run_seed(&config, 43).trace_digest);
}

#[test]
fn edgevote_holds_its_invariants_and_every_fault_is_exercised() {
    let summary = run(&SimConfig::default(), 1000..1060);
    println!("{summary}");
    assert!(
        summary.failed.is_empty(),
        "failing seeds: {:?}",
        summary.failed
    );
    let kinds = [
        "network partition between regions",
        "replication delay",
        "partition collector-store",
        "partition edge-queue",
        "duplicate delivery",
        "lost delete (redelivery)",
        "collector down",
        "store throttling",
        "store write with lost reply",
        "collector crash between store write and delete",
        "collector crash before store write",
        "edge crash after enqueue, before reply",
        "edge crash before enqueue",
        "clock skew jump",
        "forged message",
    ];
    for kind in kinds {
        assert!(
            summary.faults.get(kind).copied().unwrap_or(0) > 0,
            "{kind} never injected"
        );
    }
    assert!(
        summary.counts.redeliveries > 0 && summary.counts.forged > 0 && summary.counts.receipts > 0
    );
    // The edges run the host's group-commit core with bounds drawn per seed: both bounds must
    // close messages, and the vote that did not fit must be carried into the next one.
    assert!(
        summary.counts.cut_by_votes > 0 && summary.counts.cut_by_bytes > 0,
        "group commit bounds never hit: {:?}",
        summary.counts
    );
    assert_eq!(
        summary.faults.len(),
        kinds.len(),
        "a fault kind is missing from this list"
    );
}

#[test]
fn the_naive_conditional_put_canary_is_caught() {
    let config = SimConfig {
        design: Design::NaiveConditionalPut,
        ..SimConfig::default()
    };
    let summary = run(&config, 0..20);
    assert_eq!(
        summary.failed.len(),
        20,
        "every canary run must fail: {:?}",
        summary.failed
    );
    assert!(
        summary
            .violations
            .contains_key(&ViolationKind::OneVoterOneVote),
        "the canary must be caught counting a voter twice: {:?}",
        summary.violations
    );
}

#[test]
fn without_faults_every_ballot_is_counted_on_the_first_try() {
    let config = SimConfig {
        fault_per_mille: 0,
        attack_per_mille: 0,
        ..SimConfig::default()
    };
    let summary = run(&config, 0..10);
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    assert_eq!(summary.faults_total(), 0);
    assert_eq!(summary.counts.dead_lettered, 0);
}
