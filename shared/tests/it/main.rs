//! Integration tests of the wire formats: one binary, a module per area.

mod common;
mod kat;
mod proptests;
mod rejections;
mod round_trip;
