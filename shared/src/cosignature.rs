//! Witness cosignatures of log checkpoints in the C2SP `tlog-cosignature` format (Ed25519,
//! `cosignature/v1`): a witness that checked a checkpoint is consistent with everything it saw of
//! that log before adds its signature line to the checkpoint's note. An auditor who requires
//! cosignatures by k of n witnesses it trusts knows the log showed that one tree to them: a log
//! that shows different trees to different people (a split view) has to fool k witnesses.
//!
//! # Formats
//!
//! A cosignature is one more signature line of the checkpoint's signed note:
//!
//! ```text
//! — <witness name> base64(key hash (4) ‖ timestamp (8, big-endian u64) ‖ Ed25519 signature (64))
//! ```
//!
//! - the key hash is `SHA-256(<witness name> ‖ "\n" ‖ 0x04 ‖ public key (32))[..4]` (C2SP
//!   signature type 0x04, Ed25519 cosignature);
//! - the timestamp is the unix time in seconds of the cosignature, at most 2^63 − 1;
//! - the signature is over `cosignature/v1\ntime <timestamp in decimal>\n` followed by the
//!   checkpoint's note body (its origin, size and root lines, final newline included, no
//!   signature lines).
//!
//! A witness's public key is a C2SP verifier key, `<name>+<hex key hash>+base64(0x04 ‖ key)`;
//! its private key file is `PRIVATE+KEY+<name>+<hex key hash>+base64(0x04 ‖ 32-byte seed)`, the
//! Go `note` signer-key layout with the cosignature type.
//!
//! **Witness keys are not in key sets.** A witness is a third party watching the log, not a
//! party to the election: the authority does not issue its key, and a key set is a document the
//! publisher controls. Auditors pin witness keys themselves, as verifier keys, next to the other
//! trust roots; [`Role`](crate::Role) and key sets are unchanged.
//!
//! The Ed25519 signed message does not name the witness, so one key must serve one witness name.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::b64;
use crate::checkpoint::{
    Checkpoint, MAX_NOTE_BYTES, SIGNATURE_PREFIX, check_origin, hex4, parse_typed_verifier_key,
    signature_lines, split_note, typed_key_hash, typed_verifier_key,
};
use crate::error::WireError;
use crate::keys::verify_message;

/// The C2SP signature type of an Ed25519 cosignature key.
pub const COSIGNATURE_KEY_TYPE: u8 = 0x04;
/// The first line of the signed message: domain separation.
pub const COSIGNATURE_HEADER: &str = "cosignature/v1";
/// Largest cosignature timestamp (C2SP: at most 2^63 − 1).
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;
/// Bytes of a decoded cosignature: key hash, timestamp, signature.
const COSIGNATURE_BYTES: usize = 4 + 8 + 64;
/// The private key file's prefix.
const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";

/// A witness's public key, as an auditor pins it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessKey {
    /// The witness's name (the key name of its signature lines).
    pub name: String,
    /// Its Ed25519 public key.
    pub key: VerifyingKey,
}

impl WitnessKey {
    /// Parses a C2SP verifier key of type 0x04, checking its key hash.
    pub fn parse(vkey: &str) -> Result<Self, WireError> {
        let (name, key) = parse_typed_verifier_key(vkey, COSIGNATURE_KEY_TYPE)?;
        Ok(WitnessKey { name, key })
    }

    /// The C2SP verifier key `<name>+<hex key hash>+base64(0x04 ‖ key)`.
    pub fn vkey(&self) -> String {
        typed_verifier_key(&self.name, COSIGNATURE_KEY_TYPE, &self.key)
    }

    /// The 4-byte key hash that starts each of its cosignatures.
    pub fn key_hash(&self) -> [u8; 4] {
        typed_key_hash(&self.name, COSIGNATURE_KEY_TYPE, &self.key)
    }
}

/// The message a witness signs for the note body `body` at `time` (unix seconds).
pub fn signed_message(body: &str, time: u64) -> String {
    format!("{COSIGNATURE_HEADER}\ntime {time}\n{body}")
}

/// A witness's private key with its name: what signs cosignatures.
pub struct Witness {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "Witness({:?}, ..)", self.name)
    }
}

impl Witness {
    /// A witness named `name` (printable, no spaces or '+') with the Ed25519 seed `seed`.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, WireError> {
        check_origin(name)?;
        Ok(Witness {
            name: name.to_owned(),
            key: SigningKey::from_bytes(seed),
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its public key.
    pub fn public(&self) -> WitnessKey {
        WitnessKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// The private key file's text: `PRIVATE+KEY+<name>+<hex key hash>+base64(0x04 ‖ seed)`.
    pub fn private_key(&self) -> String {
        let hash = hex4(self.public().key_hash());
        let mut encoded = vec![COSIGNATURE_KEY_TYPE];
        encoded.extend_from_slice(self.key.as_bytes());
        let name = &self.name;
        format!("{PRIVATE_PREFIX}{name}+{hash}+{}", b64::encode_std(encoded))
    }

    /// Parses a private key file's text (see [`Witness::private_key`]), checking its key hash.
    pub fn parse_private_key(text: &str) -> Result<Self, WireError> {
        let bad = |why: &str| WireError::invalid("witness private key", why.to_owned());
        crate::json::check_len("witness private key", text.len(), MAX_NOTE_BYTES)?;
        let rest = text
            .trim()
            .strip_prefix(PRIVATE_PREFIX)
            .ok_or_else(|| bad("expected PRIVATE+KEY+name+hash+base64(0x04 ‖ seed)"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(hash), Some(seed)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected PRIVATE+KEY+name+hash+base64(0x04 ‖ seed)"));
        };
        let raw = b64::decode_std("witness private key", seed)?;
        let seed: [u8; 32] = match raw.split_first() {
            Some((&COSIGNATURE_KEY_TYPE, seed)) => {
                seed.try_into().map_err(|_| bad("not 32 bytes"))?
            }
            _ => return Err(bad("not a cosignature key (type 0x04)")),
        };
        let witness = Witness::from_seed(name, &seed)?;
        if hash != hex4(witness.public().key_hash()) {
            return Err(bad("its key hash does not match"));
        }
        Ok(witness)
    }

    /// The cosignature line (`— <name> <base64>\n`) of `checkpoint` at `time` (unix seconds).
    pub fn cosign(&self, checkpoint: &Checkpoint, time: u64) -> Result<String, WireError> {
        if time > MAX_TIMESTAMP {
            return Err(WireError::invalid("cosignature time", "above 2^63 - 1"));
        }
        let message = signed_message(&checkpoint.body(), time);
        let signature = self.key.sign(message.as_bytes()).to_bytes();
        // Catch a faulty signature before it leaves the process.
        debug_assert!(verify_message(
            &self.key.verifying_key(),
            message.as_bytes(),
            &signature
        ));
        let mut raw = self.public().key_hash().to_vec();
        raw.extend_from_slice(&time.to_be_bytes());
        raw.extend_from_slice(&signature);
        Ok(format!(
            "{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            b64::encode_std(raw)
        ))
    }
}

/// Adds signature lines (`— <name> <base64>`, one a line, e.g. a witness's answer) to a signed
/// note, keeping its existing lines and skipping a line it already holds. Refuses a line that is
/// not a signature line, and a result longer than [`MAX_NOTE_BYTES`].
pub fn add_cosignatures(note: &str, lines: &str) -> Result<String, WireError> {
    split_note(note)?;
    let mut out = note.to_owned();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    for line in lines.lines().filter(|l| !l.is_empty()) {
        if signature_lines(line).next().is_none() {
            return Err(WireError::invalid(
                "cosignature",
                format!("{line:?} is not a note signature line"),
            ));
        }
        if !out.lines().any(|held| held == line) {
            out.push_str(line);
            out.push('\n');
        }
        crate::json::check_len("cosigned checkpoint", out.len(), MAX_NOTE_BYTES)?;
    }
    Ok(out)
}

/// Verifies that `note` carries a valid cosignature by `witness` and returns its timestamp.
/// Lines of other keys are ignored; `bad_signature` when none of the witness's verifies.
pub fn verify_cosignature(note: &str, witness: &WitnessKey) -> Result<u64, WireError> {
    let (body, signatures) = split_note(note)?;
    let hash = witness.key_hash();
    signature_lines(signatures)
        .filter(|(name, raw)| *name == witness.name && raw.len() == COSIGNATURE_BYTES)
        .filter(|(_, raw)| raw[..4] == hash)
        .find_map(|(_, raw)| {
            let time = u64::from_be_bytes(raw[4..12].try_into().ok()?);
            let signature: [u8; 64] = raw[12..].try_into().ok()?;
            let message = signed_message(&body, time);
            (time <= MAX_TIMESTAMP && verify_message(&witness.key, message.as_bytes(), &signature))
                .then_some(time)
        })
        .ok_or(WireError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Role, SigningIdentity};

    fn signed_checkpoint() -> (Checkpoint, String) {
        let (log, checkpoint) = crate::checkpoint::tests::sample();
        let note = checkpoint.sign(&log).unwrap();
        (checkpoint, note)
    }

    #[test]
    fn a_cosignature_has_the_c2sp_layout_and_verifies() {
        let (checkpoint, note) = signed_checkpoint();
        let witness = Witness::from_seed("witness.example/w1", &[7; 32]).unwrap();
        let line = witness.cosign(&checkpoint, 1_700_000_000).unwrap();
        let (name, sig) = line
            .trim_end()
            .strip_prefix("\u{2014} ")
            .and_then(|l| l.split_once(' '))
            .unwrap();
        assert_eq!(name, "witness.example/w1");
        let raw = b64::decode_std("sig", sig).unwrap();
        assert_eq!(raw.len(), 76);
        assert_eq!(raw[..4], witness.public().key_hash());
        assert_eq!(raw[4..12], 1_700_000_000u64.to_be_bytes());
        let message = format!("cosignature/v1\ntime 1700000000\n{}", checkpoint.body());
        let signature: [u8; 64] = raw[12..].try_into().unwrap();
        assert!(verify_message(
            &witness.public().key,
            message.as_bytes(),
            &signature
        ));

        let cosigned = add_cosignatures(&note, &line).unwrap();
        assert_eq!(cosigned, format!("{note}{line}"));
        assert_eq!(
            add_cosignatures(&cosigned, &line).unwrap(),
            cosigned,
            "no line twice"
        );
        assert_eq!(
            verify_cosignature(&cosigned, &witness.public()),
            Ok(1_700_000_000)
        );
        // The log's own signature still verifies with the line added.
        let log = SigningIdentity::from_seed(&[4; 32], Role::Log);
        assert!(Checkpoint::verify(&cosigned, &log.verifying_key()).is_ok());
    }

    #[test]
    fn a_forged_or_misplaced_cosignature_is_refused() {
        let (checkpoint, note) = signed_checkpoint();
        let witness = Witness::from_seed("witness.example/w1", &[7; 32]).unwrap();
        let line = witness.cosign(&checkpoint, 5).unwrap();
        assert_eq!(
            verify_cosignature(&note, &witness.public()),
            Err(WireError::BadSignature),
            "no cosignature at all"
        );
        let other = Checkpoint {
            size: 4,
            ..checkpoint
        };
        let log = SigningIdentity::from_seed(&[4; 32], Role::Log);
        let grown = add_cosignatures(&other.sign(&log).unwrap(), &line).unwrap();
        assert!(
            verify_cosignature(&grown, &witness.public()).is_err(),
            "another body"
        );
        let impostor = Witness::from_seed("witness.example/w1", &[8; 32]).unwrap();
        let cosigned = add_cosignatures(&note, &line).unwrap();
        assert!(verify_cosignature(&cosigned, &impostor.public()).is_err());
        let renamed = WitnessKey {
            name: "witness.example/w2".into(),
            ..witness.public()
        };
        assert!(verify_cosignature(&cosigned, &renamed).is_err());
        // A later timestamp put on the same signature.
        let raw = b64::decode_std("s", line.trim_end().rsplit(' ').next().unwrap()).unwrap();
        let mut moved = raw.clone();
        moved[11] ^= 1;
        let forged = format!("\u{2014} witness.example/w1 {}\n", b64::encode_std(moved));
        let forged = add_cosignatures(&note, &forged).unwrap();
        assert!(verify_cosignature(&forged, &witness.public()).is_err());
        assert_eq!(
            add_cosignatures(&note, "not a signature")
                .unwrap_err()
                .code(),
            "invalid_field"
        );
        assert!(witness.cosign(&other, MAX_TIMESTAMP + 1).is_err());
    }

    #[test]
    fn keys_read_back_and_bind_their_type_and_name() {
        let witness = Witness::from_seed("witness.example/w1", &[7; 32]).unwrap();
        let vkey = witness.public().vkey();
        assert_eq!(WitnessKey::parse(&vkey).unwrap(), witness.public());
        assert!(
            crate::checkpoint::parse_verifier_key(&vkey).is_err(),
            "type 0x04, not 0x01"
        );
        let log_vkey = crate::checkpoint::verifier_key("witness.example/w1", &witness.public().key);
        assert!(WitnessKey::parse(&log_vkey).is_err(), "type 0x01, not 0x04");
        let private = witness.private_key();
        assert!(private.starts_with("PRIVATE+KEY+witness.example/w1+"));
        let back = Witness::parse_private_key(&private).unwrap();
        assert_eq!(back.public(), witness.public());
        let renamed = private.replacen("w1", "w2", 1);
        assert!(Witness::parse_private_key(&renamed).is_err());
        // Standard base64 holds '+', the separator: every seed's keys read back.
        for seed in 0..=255u8 {
            let witness = Witness::from_seed("w", &[seed; 32]).unwrap();
            let back = Witness::parse_private_key(&witness.private_key()).unwrap();
            assert_eq!(back.public(), witness.public());
            assert_eq!(
                WitnessKey::parse(&witness.public().vkey()).unwrap(),
                witness.public()
            );
        }
        assert!(format!("{witness:?}").contains("w1"));
        assert!(!format!("{witness:?}").contains(&private));
    }
}
