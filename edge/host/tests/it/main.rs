//! The edge host running the REAL built component (edge/spin, wasm32-wasip2): votes in over
//! HTTP, receipts out, envelopes in the queue; refusals; group commit; spill; bundle checks.

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used)]

mod bundle;
mod deploy;
mod fixture;
mod front;
mod hostile;
mod http;
mod rogue;
mod rotation;
mod spin_sqs;
mod votes;
