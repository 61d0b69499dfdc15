//! SHA-256 digests as they appear on the wire (unpadded base64url, 43 characters).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::b64;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest32(pub [u8; 32]);

impl Digest32 {
    /// Hashes `parts` under a domain tag. Each part is length-prefixed (u32 big-endian), so
    /// distinct part lists can never produce the same hash input.
    pub fn tagged(domain: &str, parts: &[&[u8]]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(domain.as_bytes());
        hasher.update([0u8]);
        for part in parts {
            let len = u32::try_from(part.len()).expect("hashed parts are bounded far below 4 GiB");
            hasher.update(len.to_be_bytes());
            hasher.update(part);
        }
        Digest32(hasher.finalize().into())
    }

    /// Plain SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest32(Sha256::digest(bytes).into())
    }

    /// Unpadded base64url form.
    pub fn to_b64(&self) -> String {
        b64::encode(self.0)
    }

    /// Lowercase hex form (as `sha256sum` prints).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for Digest32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digest32({})", self.to_b64())
    }
}

impl std::fmt::Display for Digest32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_b64())
    }
}

impl Serialize for Digest32 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_b64())
    }
}

impl<'de> Deserialize<'de> for Digest32 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        b64::decode_array::<32>("digest", &text)
            .map(Digest32)
            .map_err(serde::de::Error::custom)
    }
}
