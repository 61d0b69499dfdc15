//! Unpadded base64url (RFC 4648 §5), the encoding of every binary field in JOSE.
//! Decoding is strict: padding, other alphabets and non-zero trailing bits are refused, so each
//! value has exactly one encoding.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::error::WireError;

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url; `field` names the input in the error.
pub fn decode(field: &'static str, text: &str) -> Result<Vec<u8>, WireError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| WireError::MalformedBase64(field))
}

/// Decodes unpadded base64url that must be exactly `N` bytes long.
pub fn decode_array<const N: usize>(field: &'static str, text: &str) -> Result<[u8; N], WireError> {
    let bytes = decode(field, text)?;
    bytes
        .try_into()
        .map_err(|v: Vec<u8>| WireError::invalid(field, format!("{} bytes, expected {N}", v.len())))
}

/// Encodes bytes as standard padded base64 (signed notes and checkpoints use it).
pub fn encode_std(bytes: impl AsRef<[u8]>) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard padded base64, strictly.
pub fn decode_std(field: &'static str, text: &str) -> Result<Vec<u8>, WireError> {
    STANDARD
        .decode(text)
        .map_err(|_| WireError::MalformedBase64(field))
}
