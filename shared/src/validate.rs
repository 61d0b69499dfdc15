//! Field rules shared by the wire types. Every string on the wire is bounded and, where it is an
//! identifier, restricted to a small alphabet so it is safe in URLs, file names and logs.

use crate::error::WireError;

/// Longest identifier (election id, option id, token id, voter ref, edge id, region).
pub const MAX_ID_LEN: usize = 64;
/// Longest human-readable label (titles, option labels).
pub const MAX_LABEL_LEN: usize = 200;

/// An identifier: 1..=64 characters of `A-Z a-z 0-9 . _ -`.
pub fn check_id(field: &'static str, value: &str) -> Result<(), WireError> {
    if value.is_empty() || value.len() > MAX_ID_LEN {
        return Err(WireError::invalid(
            field,
            format!("length {} outside 1..={MAX_ID_LEN}", value.len()),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(WireError::invalid(
            field,
            format!("character {c:?} not allowed (use A-Z a-z 0-9 . _ -)"),
        ));
    }
    Ok(())
}

/// A label: 1..=200 characters without control characters.
pub fn check_label(field: &'static str, value: &str) -> Result<(), WireError> {
    let chars = value.chars().count();
    if chars == 0 || chars > MAX_LABEL_LEN {
        return Err(WireError::invalid(
            field,
            format!("length {chars} outside 1..={MAX_LABEL_LEN} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(WireError::invalid(field, "control characters not allowed"));
    }
    Ok(())
}

/// Requires format version 1, the only one this build reads.
pub fn check_version(v: u32) -> Result<(), WireError> {
    if v != 1 {
        return Err(WireError::invalid("v", format!("version {v} unsupported")));
    }
    Ok(())
}

/// Requires `value` within `range`: "`{value}` outside `{range}`" otherwise.
pub fn check_within(
    field: &'static str,
    value: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<(), WireError> {
    if !range.contains(&value) {
        return Err(WireError::invalid(
            field,
            format!("{value} outside {}..={}", range.start(), range.end()),
        ));
    }
    Ok(())
}

/// Requires `start < end`.
pub fn check_window(field: &'static str, start: u64, end: u64) -> Result<(), WireError> {
    if start >= end {
        return Err(WireError::invalid(
            field,
            format!("window start {start} is not before its end {end}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bounded_and_plain() {
        assert!(check_id("id", "e-2026.yes_1").is_ok());
        assert_eq!(check_id("id", "").unwrap_err().code(), "invalid_field");
        assert!(check_id("id", &"a".repeat(65)).is_err());
        assert!(check_id("id", "a/b").is_err());
        assert!(check_id("id", "ü").is_err());
    }

    #[test]
    fn labels_refuse_control_characters() {
        assert!(check_label("title", "Référendum 2026").is_ok());
        assert!(check_label("title", "a\u{0}b").is_err());
    }
}
