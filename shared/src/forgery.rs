//! Building documents a correct signer refuses to make, for tests of the verifiers: a JWS with
//! any header and payload, signatures with a non-canonical scalar or a small-order point.
//! Anyone can build these; what matters is that every verifier refuses them.

use crate::SigningIdentity;
use crate::b64;

/// A compact JWS with exactly this header and payload, signed by `signer` whatever the rules.
pub fn sign_raw(header: &serde_json::Value, payload: &[u8], signer: &SigningIdentity) -> String {
    let input = format!(
        "{}.{}",
        b64::encode(header.to_string()),
        b64::encode(payload)
    );
    let signature = signer.sign_message(input.as_bytes());
    format!("{input}.{}", b64::encode(signature))
}

/// `compact` with its signature replaced.
pub fn with_signature(compact: &str, signature: [u8; 64]) -> String {
    let input = compact.rsplit_once('.').map_or(compact, |(input, _)| input);
    format!("{input}.{}", b64::encode(signature))
}

/// `compact` with S replaced by S + L (the group order): the same point equation holds, so a lax
/// verifier accepts it, but the encoding is not canonical. `compact` must carry a valid
/// signature (its S is below L, so S + L fits in 256 bits).
pub fn with_non_canonical_s(compact: &str) -> String {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let sig = compact.rsplit_once('.').map_or("", |(_, sig)| sig);
    let mut bytes: [u8; 64] = b64::decode_array("signature", sig).unwrap_or([0; 64]);
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(bytes[32 + i]) + u16::from(L[i]) + carry;
        bytes[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    with_signature(compact, bytes)
}

/// `compact` with R = the identity point (small order) and S = 0: a lax, cofactorless check
/// accepts it for a small-order key and any message.
pub fn with_small_order_signature(compact: &str) -> String {
    let mut forged = [0u8; 64];
    forged[0] = 1;
    with_signature(compact, forged)
}
