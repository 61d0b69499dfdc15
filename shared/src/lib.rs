//! edgevote's domain types and wire formats.
//!
//! Everything a voter, an edge, a collector or an auditor exchanges is defined here: election
//! manifests, vote tokens, ballots, receipts, queue envelopes, bundle manifests and key sets.
//! Signed documents are JWS compact serializations with EdDSA/Ed25519 (RFC 7515, RFC 8037) and
//! keys are JWKs, so third parties verify them with stock JOSE libraries.
//!
//! This crate does no I/O, reads no clock and draws no randomness: callers pass time in and get
//! bytes out. That is what lets it build for `wasm32-wasip2` and `wasm32-unknown-unknown`.
//! Every parser bounds input size and JSON nesting and fails with a [`WireError`] whose
//! [`WireError::code`] is stable and machine-readable.

pub mod admission;
pub mod b64;
pub mod ballot;
pub mod bundle;
pub mod checkpoint;
pub mod cosignature;
pub mod digest;
pub mod envelope;
pub mod error;
pub mod forgery;
pub mod histogram;
pub mod json;
pub mod jws;
pub mod keys;
pub mod manifest;
pub mod merkle;
pub mod message;
pub mod receipt;
pub mod strict;
pub mod tally;
pub mod tiles;
pub mod token;
pub mod validate;

pub use admission::{
    AdmissionError, AdmittedBallot, CheckedBallot, admit, check as check_ballot, verify_checked,
};
pub use ballot::Ballot;
pub use bundle::{BundleManifest, ConfigVar, Platform, Release};
pub use digest::Digest32;
pub use envelope::{EnvelopeVote, QueueEnvelope};
pub use error::WireError;
pub use jws::{Document, Verified, decode_unverified, sign, verify, verify_many};
pub use keys::{KeySet, PublicJwk, Role, SigningIdentity};
pub use manifest::{ElectionManifest, ElectionOption, Limits, Policy};
pub use receipt::Receipt;
pub use token::VoteToken;
