//! Deterministic simulation of edgevote across regions, under faults and attack.
//!
//! A run wires the real components (the platform-free edge handler, the collector's
//! `process`, the embedded store and its replication) to simulated queues, links and a
//! virtual clock, then drives them from one seed. See [`world`] for the model, [`check`] for the
//! invariants, and [`store::Design::NaiveConditionalPut`] for the canary that must fail them.
//!
//! Architecture Invariant: nothing here reads the wall clock or the OS random source; a seed
//! replays exactly (the run's trace digest is the witness).

pub mod check;
pub mod queue;
pub mod rng;
pub mod store;
pub mod summary;
pub mod world;

pub use check::{Violation, ViolationKind};
pub use store::Design;
pub use summary::Summary;
pub use world::{Counts, Report, SimConfig, run_seed};
