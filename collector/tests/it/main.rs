//! Collector integration tests: one suite of behaviours ([`suite`]) run against every backend
//! pair, plus the pieces that do not depend on the backend.

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used)]

mod aws;
mod embedded;
mod fixture;
mod http;
mod live_log;
mod rotation;
mod suite;
