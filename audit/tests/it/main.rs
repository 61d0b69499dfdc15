//! edgevote-audit integration tests: a log published from a real (embedded) store, verified
//! whole and tampered with, and served over HTTP.

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used)]

mod fixture;
mod live;
mod publish;
mod serve;
mod tiles;
mod trust;
mod verify;
mod witness;
