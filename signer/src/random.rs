//! Randomness from the operating system, for key seeds and identifiers.

use edgevote_shared::b64;

use crate::error::SignerError;

/// Fills an array with OS randomness.
pub fn bytes<const N: usize>() -> Result<[u8; N], SignerError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| SignerError::Random(e.to_string()))?;
    Ok(out)
}

/// A random identifier: 16 bytes (128 bits) as unpadded base64url (22 characters).
pub fn id() -> Result<String, SignerError> {
    Ok(b64::encode(bytes::<16>()?))
}
