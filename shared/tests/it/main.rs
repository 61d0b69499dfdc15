//! Integration tests of the wire formats: one binary, a module per area.

// Test helpers panic on failure by design.
#![allow(clippy::unwrap_used)]

mod common;
mod external;
mod kat;
mod proptests;
mod rejections;
mod round_trip;
mod strict;
