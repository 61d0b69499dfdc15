//! Integration tests of the signer: key store, key files, issuing.

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used)]

mod issuing;
mod key_files;
mod key_store;
