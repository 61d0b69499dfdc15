//! Log checkpoints in the C2SP `tlog-checkpoint` format, signed as C2SP signed notes with an
//! Ed25519 key: any Go `sumdb/note` or C2SP-compatible tool verifies them.
//!
//! ```text
//! <origin>
//! <tree size>
//! <base64 root hash>
//!
//! — <key name> <base64(4-byte key hash ‖ 64-byte signature)>
//! ```

use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};

use crate::b64;
use crate::error::WireError;
use crate::keys::{KeySet, Role, SigningIdentity, verify_message};
use crate::merkle::Hash;

/// Longest signed checkpoint accepted, in bytes.
pub const MAX_NOTE_BYTES: usize = 8 * 1024;
/// The signature line prefix: an em dash and a space.
pub(crate) const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// A log checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line (also the signing key's name).
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// RFC 6962 root hash.
    pub root: Hash,
}

/// The C2SP signature type of an Ed25519 signed-note key (a log's checkpoint key).
pub const ED25519_KEY_TYPE: u8 = 0x01;

/// The C2SP key hash of an Ed25519 key: the first 4 bytes of `SHA-256(name ‖ "\n" ‖ 0x01 ‖ key)`.
pub fn key_hash(name: &str, key: &VerifyingKey) -> [u8; 4] {
    typed_key_hash(name, ED25519_KEY_TYPE, key)
}

/// The C2SP key hash of a key of signature type `key_type`: the first 4 bytes of
/// `SHA-256(name ‖ "\n" ‖ key_type ‖ key)`.
pub(crate) fn typed_key_hash(name: &str, key_type: u8, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([key_type]);
    h.update(key.as_bytes());
    let digest: [u8; 32] = h.finalize().into();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// The C2SP verifier key string `name+hash+base64(0x01 ‖ key)`.
pub fn verifier_key(name: &str, key: &VerifyingKey) -> String {
    typed_verifier_key(name, ED25519_KEY_TYPE, key)
}

/// The C2SP verifier key string `name+hex(key hash)+base64(key_type ‖ key)`.
pub(crate) fn typed_verifier_key(name: &str, key_type: u8, key: &VerifyingKey) -> String {
    let hash = hex4(typed_key_hash(name, key_type, key));
    let mut encoded = vec![key_type];
    encoded.extend_from_slice(key.as_bytes());
    format!("{name}+{hash}+{}", b64::encode_std(encoded))
}

/// Lower-case hex of a 4-byte key hash.
pub(crate) fn hex4(bytes: [u8; 4]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a C2SP Ed25519 verifier key `name+hash+base64(0x01 ‖ key)`, checking its key hash;
/// returns the key's name and the key.
pub fn parse_verifier_key(text: &str) -> Result<(String, VerifyingKey), WireError> {
    parse_typed_verifier_key(text, ED25519_KEY_TYPE)
}

/// Parses a C2SP verifier key of signature type `key_type` with an Ed25519 public key.
pub(crate) fn parse_typed_verifier_key(
    text: &str,
    key_type: u8,
) -> Result<(String, VerifyingKey), WireError> {
    crate::json::check_len("verifier key", text.len(), MAX_NOTE_BYTES)?;
    let malformed = || WireError::invalid("verifier key", "expected name+hash+base64(type ‖ key)");
    let mut parts = text.trim().splitn(3, '+');
    let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed());
    };
    check_origin(name)?;
    let raw = b64::decode_std("verifier key", key)?;
    let Some((_, bytes)) = raw.split_first().filter(|(t, _)| **t == key_type) else {
        return Err(WireError::invalid(
            "verifier key",
            format!("not a key of signature type 0x{key_type:02x}"),
        ));
    };
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| malformed())?;
    let key = VerifyingKey::from_bytes(&bytes)
        .map_err(|_| WireError::invalid("verifier key", "not a valid Ed25519 point"))?;
    if hash != hex4(typed_key_hash(name, key_type, &key)) {
        return Err(WireError::invalid(
            "verifier key",
            "its key hash does not match",
        ));
    }
    Ok((name.to_owned(), key))
}

pub(crate) fn check_origin(origin: &str) -> Result<(), WireError> {
    if origin.is_empty()
        || origin.len() > 200
        || origin
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
    {
        return Err(WireError::invalid(
            "origin",
            "1..=200 printable characters without spaces or '+'",
        ));
    }
    Ok(())
}

/// Splits a signed note into its body (with its final newline: what is signed) and its
/// signature block, bounding its length.
pub(crate) fn split_note(note: &str) -> Result<(String, &str), WireError> {
    crate::json::check_len("checkpoint", note.len(), MAX_NOTE_BYTES)?;
    let (body, signatures) = note
        .split_once("\n\n")
        .ok_or(WireError::MalformedJws("checkpoint has no signature block"))?;
    Ok((format!("{body}\n"), signatures))
}

/// The signature lines of a note's signature block that parse: each key name with its
/// decoded signature bytes (key hash first). Other lines are ignored, as C2SP requires of
/// signatures by unknown keys.
pub(crate) fn signature_lines(signatures: &str) -> impl Iterator<Item = (&str, Vec<u8>)> {
    signatures
        .lines()
        .filter_map(|line| line.strip_prefix(SIGNATURE_PREFIX))
        .filter_map(|line| {
            let (name, sig) = line.split_once(' ')?;
            Some((name, b64::decode_std("signature", sig).ok()?))
        })
}

impl Checkpoint {
    /// The note body (what is signed).
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            b64::encode_std(self.root)
        )
    }

    /// The signed note, signed with `identity` under the key name `origin`.
    pub fn sign(&self, identity: &SigningIdentity) -> Result<String, WireError> {
        check_origin(&self.origin)?;
        let body = self.body();
        let mut signature = key_hash(&self.origin, &identity.verifying_key()).to_vec();
        signature.extend_from_slice(&identity.sign_message(body.as_bytes()));
        Ok(format!(
            "{body}\n{SIGNATURE_PREFIX}{} {}\n",
            self.origin,
            b64::encode_std(signature)
        ))
    }

    /// Parses a signed checkpoint and verifies its signature by `key` (named by the origin).
    pub fn verify(note: &str, key: &VerifyingKey) -> Result<Checkpoint, WireError> {
        let (body, signatures) = split_note(note)?;
        // Lines end at '\n' only: a '\r' stays in its line and is refused with it.
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(WireError::invalid(
                "checkpoint",
                "needs origin, size and root lines",
            ));
        };
        check_origin(origin)?;
        // Canonical decimal only (no sign, no leading zeros), as C2SP tlog-checkpoint requires.
        let size: u64 = size
            .parse()
            .ok()
            .filter(|n: &u64| n.to_string() == size)
            .ok_or_else(|| WireError::invalid("checkpoint", "tree size is not a decimal number"))?;
        let root: Hash = b64::decode_std("root", root)?
            .try_into()
            .map_err(|_| WireError::invalid("root", "not 32 bytes"))?;
        let wanted = key_hash(origin, key);
        let verified = signature_lines(signatures)
            .filter(|(name, _)| *name == origin)
            .any(|(_, raw)| {
                raw.len() == 68
                    && raw[..4] == wanted
                    && <[u8; 64]>::try_from(&raw[4..])
                        .is_ok_and(|s| verify_message(key, body.as_bytes(), &s))
            });
        if !verified {
            return Err(WireError::BadSignature);
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// The origin prefix of `election`'s live logs, one per region: `edgevote/<election>/live/`.
pub fn live_origin_prefix(election: &str) -> String {
    format!("edgevote/{election}/live/")
}

/// The checkpoint `note` verified with a `log` key of `keys` (active keys first, then retired
/// ones, whose older checkpoints still verify); `bad_signature` when none signed it.
pub fn verify_with_log_keys(note: &str, keys: &KeySet) -> Result<Checkpoint, WireError> {
    crate::json::check_len("checkpoint", note.len(), MAX_NOTE_BYTES)?;
    keys.active(Role::Log)
        .chain(keys.iter().filter(|k| k.edgevote_role == Role::Log))
        .filter_map(|jwk| jwk.verifying_key().ok())
        .find_map(|key| Checkpoint::verify(note, &key).ok())
        .ok_or(WireError::BadSignature)
}

/// A checkpoint of one of `election`'s live logs, verified with a `log` key of `keys`: a
/// checkpoint of another log (another election's, or a published one) is `wrong_election`.
pub fn verify_live(note: &str, keys: &KeySet, election: &str) -> Result<Checkpoint, WireError> {
    let checkpoint = verify_with_log_keys(note, keys)?;
    if !checkpoint.origin.starts_with(&live_origin_prefix(election)) {
        return Err(WireError::WrongElection {
            expected: live_origin_prefix(election),
            found: checkpoint.origin,
        });
    }
    Ok(checkpoint)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::keys::Role;

    /// A log key and a checkpoint of its receipts log.
    pub(crate) fn sample() -> (SigningIdentity, Checkpoint) {
        let log = SigningIdentity::from_seed(&[4; 32], Role::Log);
        let checkpoint = Checkpoint {
            origin: "edgevote.example/e1/receipts".into(),
            size: 3,
            root: [9; 32],
        };
        (log, checkpoint)
    }

    #[test]
    fn a_verifier_key_reads_back_and_a_wrong_hash_is_refused() {
        let log = SigningIdentity::from_seed(&[4; 32], Role::Log);
        let text = verifier_key("edgevote/e1/receipts", &log.verifying_key());
        let (name, key) = parse_verifier_key(&text).unwrap();
        assert_eq!(
            (name.as_str(), key),
            ("edgevote/e1/receipts", log.verifying_key())
        );
        let renamed = text.replacen("e1", "e2", 1);
        assert!(
            parse_verifier_key(&renamed).is_err(),
            "the hash binds the name"
        );
        assert!(parse_verifier_key("no-plus-signs").is_err());
    }

    #[test]
    fn sign_then_verify_and_tamper() {
        let (log, checkpoint) = sample();
        let note = checkpoint.sign(&log).unwrap();
        assert!(note.contains("\n\n\u{2014} edgevote.example/e1/receipts "));
        assert_eq!(
            Checkpoint::verify(&note, &log.verifying_key()).unwrap(),
            checkpoint
        );
        let tampered = note.replacen("\n3\n", "\n4\n", 1);
        assert_eq!(
            Checkpoint::verify(&tampered, &log.verifying_key())
                .unwrap_err()
                .code(),
            "bad_signature"
        );
        // One encoding per checkpoint: no sign, leading zeros or carriage returns in the body.
        for size_line in ["+3", "03", "3\r"] {
            let body = format!(
                "{}\n{size_line}\n{}\n",
                checkpoint.origin,
                b64::encode_std(checkpoint.root)
            );
            let mut signature = key_hash(&checkpoint.origin, &log.verifying_key()).to_vec();
            signature.extend_from_slice(&log.sign_message(body.as_bytes()));
            let note = format!(
                "{body}\n{SIGNATURE_PREFIX}{} {}\n",
                checkpoint.origin,
                b64::encode_std(signature)
            );
            assert_eq!(
                Checkpoint::verify(&note, &log.verifying_key())
                    .unwrap_err()
                    .code(),
                "invalid_field",
                "{size_line:?}"
            );
        }
        let other = SigningIdentity::from_seed(&[5; 32], Role::Log);
        assert!(Checkpoint::verify(&note, &other.verifying_key()).is_err());
        assert!(verifier_key("n", &log.verifying_key()).starts_with("n+"));
    }
}
