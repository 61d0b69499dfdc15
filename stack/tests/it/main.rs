//! The reconciliation against real collectors serving crafted stores: what it must find, and
//! what it must never pass.

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used)]

mod pending;
mod reconcile;
