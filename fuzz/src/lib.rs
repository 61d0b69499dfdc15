//! Shared pieces of the edgevote fuzz targets: a fixed key set with deterministic keys, one
//! valid sample of every document type, and the checks every signed document goes through.
//!
//! Nothing here is random: keys come from fixed seeds and documents carry fixed times, so a
//! crash found on one machine reproduces on every other one.
//!
//! The checks panic only when a property is broken (that is what the fuzzer reports). Refusing
//! malformed input with a `WireError` is the expected outcome and never panics.

pub mod fixture;
pub mod jws_doc;

/// The input as UTF-8 text, or `None` (every wire format here is text).
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// Asserts that `code` is one of the stable, documented error codes.
pub fn assert_stable_code(code: &str) {
    assert!(
        edgevote_shared::error::ALL_CODES.contains(&code),
        "error code {code:?} is not in error::ALL_CODES"
    );
}
