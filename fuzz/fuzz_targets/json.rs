//! Fuzzes the bounded JSON layer every wire parser goes through (`json::check_depth`,
//! `json::parse_bounded`).
//!
//! Properties:
//! - on valid JSON the linear depth pre-scan is exact: `check_depth(bytes, d)` passes exactly
//!   when the text nests at most `d` levels (brackets inside strings do not count; every
//!   member of an object counts, a duplicate key's too, though a parsed `Value` keeps only the
//!   last of them);
//! - on any input the pre-scan is monotonic in `d`;
//! - `parse_bounded` gives what serde_json gives, for every input within the bounds, and
//!   refuses with `too_large` / `too_deep` exactly when a bound is exceeded;
//! - a parsed value without floating point numbers survives a JSON round trip.
#![no_main]

use edgevote_fuzz::assert_stable_code;
use edgevote_shared::WireError;
use edgevote_shared::json::{self, MAX_JSON_DEPTH};
use serde_json::Value;

/// Nesting depth of a value: scalars 0, each array or object one more than its deepest child.
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(members) => 1 + members.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Nesting depth of a JSON text as serde_json reads it: like [`depth`], but over every member
/// the text holds. A `Value` keeps only the last of duplicate keys, so its depth can be less
/// than the text's (`{"a":{"b":{}},"a":1}` nests 3 levels; its `Value`, 1).
struct TextDepth(usize);

impl<'de> serde::Deserialize<'de> for TextDepth {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(TextDepthVisitor)
            .map(TextDepth)
    }
}

struct TextDepthVisitor;

impl<'de> serde::de::Visitor<'de> for TextDepthVisitor {
    type Value = usize;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<usize, E> {
        Ok(0)
    }

    fn visit_i64<E>(self, _: i64) -> Result<usize, E> {
        Ok(0)
    }

    fn visit_u64<E>(self, _: u64) -> Result<usize, E> {
        Ok(0)
    }

    fn visit_f64<E>(self, _: f64) -> Result<usize, E> {
        Ok(0)
    }

    fn visit_str<E>(self, _: &str) -> Result<usize, E> {
        Ok(0)
    }

    fn visit_unit<E>(self) -> Result<usize, E> {
        Ok(0)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<usize, A::Error> {
        let mut deepest = 0;
        while let Some(TextDepth(d)) = items.next_element()? {
            deepest = deepest.max(d);
        }
        Ok(deepest + 1)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut members: A) -> Result<usize, A::Error> {
        let mut deepest = 0;
        while let Some((serde::de::IgnoredAny, TextDepth(d))) = members.next_entry()? {
            deepest = deepest.max(d);
        }
        Ok(deepest + 1)
    }
}

fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(members) => members.values().any(has_float),
        _ => false,
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The first byte sets a byte limit, so `too_large` gets exercised with small inputs.
    let Some((&limit_byte, bytes)) = data.split_first() else {
        return;
    };
    let max_bytes = if limit_byte == 0xff {
        usize::MAX
    } else {
        usize::from(limit_byte) * 16
    };

    let scan: Vec<bool> = (0..=MAX_JSON_DEPTH + 2)
        .map(|d| json::check_depth(bytes, d).is_ok())
        .collect();
    assert!(
        scan.windows(2).all(|w| !w[0] || w[1]),
        "check_depth passes at one depth and fails at a larger one"
    );

    let reference: Result<Value, _> = serde_json::from_slice(bytes);
    if reference.is_ok() {
        let TextDepth(d) = serde_json::from_slice(bytes).expect("JSON read as a Value has a depth");
        for (limit, passed) in scan.iter().enumerate() {
            assert_eq!(
                *passed,
                d <= limit,
                "check_depth({limit}) is wrong for valid JSON of depth {d}"
            );
        }
    }

    let bounded = json::parse_bounded::<Value>("fuzz input", bytes, max_bytes);
    match &bounded {
        Ok(value) => {
            assert!(bytes.len() <= max_bytes);
            assert!(depth(value) <= MAX_JSON_DEPTH);
            assert_eq!(reference.as_ref().ok(), Some(value));
            if !has_float(value) {
                let encoded = json::to_vec(value);
                let again: Value = json::parse_bounded("round trip", &encoded, usize::MAX)
                    .expect("re-encoded JSON parses");
                assert_eq!(&again, value, "JSON round trip changed the value");
            }
        }
        Err(error) => {
            assert_stable_code(error.code());
            match error {
                WireError::TooLarge { len, max, .. } => {
                    assert_eq!((*len, *max), (bytes.len(), max_bytes));
                    assert!(bytes.len() > max_bytes);
                }
                WireError::TooDeep { max } => {
                    assert_eq!(*max, MAX_JSON_DEPTH);
                    assert!(!scan[MAX_JSON_DEPTH]);
                }
                WireError::MalformedJson { .. } => {
                    assert!(bytes.len() <= max_bytes && scan[MAX_JSON_DEPTH]);
                    assert!(
                        reference.is_err(),
                        "parse_bounded refused JSON serde_json reads"
                    );
                }
                other => panic!("unexpected error from parse_bounded: {other:?}"),
            }
        }
    }
});
