//! Bounded JSON decoding: every wire parser goes through [`parse_bounded`], which checks the
//! byte length and the nesting depth before serde sees the input, so hostile input cannot make
//! a parser allocate or recurse without bound.

use serde::de::DeserializeOwned;

use crate::error::WireError;

/// Deepest object/array nesting any edgevote document needs (an envelope is 4 levels deep).
pub const MAX_JSON_DEPTH: usize = 6;

/// Parses `bytes` as JSON into `T` after checking `max_bytes` and [`MAX_JSON_DEPTH`].
pub fn parse_bounded<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
    max_bytes: usize,
) -> Result<T, WireError> {
    check_len(what, bytes.len(), max_bytes)?;
    check_depth(bytes, MAX_JSON_DEPTH)?;
    serde_json::from_slice(bytes).map_err(|e| WireError::MalformedJson {
        what,
        detail: e.to_string(),
    })
}

/// Serializes a wire type. Our types hold only strings, integers, enums and vectors, so
/// serialization cannot fail; a failure would be a bug in a type definition.
pub fn to_vec<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("edgevote wire types always serialize")
}

/// Errors with [`WireError::TooLarge`] when `len > max`.
pub fn check_len(what: &'static str, len: usize, max: usize) -> Result<(), WireError> {
    if len > max {
        return Err(WireError::TooLarge { what, len, max });
    }
    Ok(())
}

/// Scans JSON text for its nesting depth without parsing it. Brackets inside strings do not
/// count; the scan is linear and allocation-free. Malformed input is left for serde to report.
pub fn check_depth(bytes: &[u8], max: usize) -> Result<(), WireError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return Err(WireError::TooDeep { max });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        assert!(check_depth(br#"{"a":"[[[[[[[[[[[["}"#, 1).is_ok());
        assert!(check_depth(br#"{"a":"\"[[["}"#, 1).is_ok());
        assert_eq!(
            check_depth(br#"{"a":[{"b":1}]}"#, 2),
            Err(WireError::TooDeep { max: 2 })
        );
        assert!(check_depth(br#"{"a":[{"b":1}]}"#, 3).is_ok());
    }
}
