//! JWS compact serialization (RFC 7515) with EdDSA over Ed25519 (RFC 8037), and the
//! [`Document`] trait every signed edgevote document implements.
//!
//! Domain separation: the protected header carries `typ` (one value per document type, explicit
//! typing as RFC 8725 §3.11 recommends) and the verifier demands the `typ` of the type it was
//! asked for, so a receipt can never be accepted as a token even though both are JWS. On top of
//! that each document type names the one key [`Role`] allowed to sign it.
//!
//! Verification is strict Ed25519 (`verify_strict`): non-canonical `S`, small-order keys and
//! small-order `R` are refused.

use ed25519_dalek::Signature;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::b64;
use crate::error::WireError;
use crate::json;
use crate::keys::{KeySet, Role, SigningIdentity};

/// Longest protected header we accept, in bytes (after base64url decoding).
pub const MAX_HEADER_BYTES: usize = 512;
/// The only JWS algorithm edgevote signs or accepts.
pub const ALG: &str = "EdDSA";

/// A document that travels as a JWS signed by a key of one role.
pub trait Document: Serialize + DeserializeOwned {
    /// Human name for errors ("receipt").
    const NAME: &'static str;
    /// The JWS `typ` header value for this document type.
    const TYP: &'static str;
    /// The role whose keys sign this document type.
    const SIGNER: Role;
    /// Longest compact JWS of this type, in bytes.
    const MAX_JWS_BYTES: usize;

    /// Checks the document's own field rules (bounds, identifiers, windows).
    fn validate(&self) -> Result<(), WireError>;

    /// When the document says it was signed, in unix seconds; the signing key must have been
    /// valid then.
    fn signed_at_secs(&self) -> u64;

    /// The edge and region the document says signed it (receipts, envelopes): the signing key
    /// must be bound to them in the key set. `None` for documents no edge signs.
    fn signing_edge(&self) -> Option<(&str, &str)> {
        None
    }
}

/// The protected header edgevote writes: exactly these three members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Always `EdDSA`.
    pub alg: String,
    /// The signing key's id (RFC 7638 thumbprint).
    pub kid: String,
    /// The document type.
    pub typ: String,
}

/// A document whose signature verified, with the id of the key that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<T> {
    /// The document.
    pub doc: T,
    /// The signing key's id.
    pub kid: String,
}

/// Signs `doc` as a compact JWS. Refuses a key of the wrong role and an invalid document, so a
/// signer can never produce something a verifier would reject.
pub fn sign<T: Document>(identity: &SigningIdentity, doc: &T) -> Result<String, WireError> {
    let unsigned = sign_external(identity.kid(), identity.role(), doc)?;
    let signature = identity.sign_raw(unsigned.message());
    unsigned.finish(&signature.to_bytes())
}

/// Characters of an Ed25519 signature (64 bytes) in unpadded base64url.
const SIGNATURE_B64_CHARS: usize = 86;

/// A document ready to be signed by Ed25519 held outside this code (a platform's WebCrypto
/// key, which never enters Wasm): [`sign_external`] checks it exactly as [`sign`] does and
/// builds the signing input, [`ExternalSignature::finish`] appends the platform's signature.
#[derive(Debug, Clone)]
pub struct ExternalSignature {
    /// `header.payload`, base64url.
    signing_input: String,
    name: &'static str,
    max_jws_bytes: usize,
}

/// [`sign`]'s checks and signing input for a key of `role` named `kid` held elsewhere.
pub fn sign_external<T: Document>(
    kid: &str,
    role: Role,
    doc: &T,
) -> Result<ExternalSignature, WireError> {
    check_role::<T>(kid, role)?;
    doc.validate()?;
    let header = Header {
        alg: ALG.to_owned(),
        kid: kid.to_owned(),
        typ: T::TYP.to_owned(),
    };
    let mut signing_input = b64::encode(json::to_vec(&header));
    signing_input.push('.');
    signing_input.push_str(&b64::encode(json::to_vec(doc)));
    // The signature's encoding has a fixed length, so a document too large for its JWS is
    // refused here, before anyone spends a signature on it (the host's and the Worker's group
    // commit then split the envelope).
    let signed_len = signing_input.len() + 1 + SIGNATURE_B64_CHARS;
    json::check_len(T::NAME, signed_len, T::MAX_JWS_BYTES)?;
    Ok(ExternalSignature {
        signing_input,
        name: T::NAME,
        max_jws_bytes: T::MAX_JWS_BYTES,
    })
}

impl ExternalSignature {
    /// The bytes to sign.
    pub fn message(&self) -> &[u8] {
        self.signing_input.as_bytes()
    }

    /// The compact JWS with `signature` (Ed25519 over [`Self::message`]).
    pub fn finish(self, signature: &[u8; 64]) -> Result<String, WireError> {
        let mut compact = self.signing_input;
        compact.push('.');
        compact.push_str(&b64::encode(signature));
        json::check_len(self.name, compact.len(), self.max_jws_bytes)?;
        Ok(compact)
    }
}

/// Verifies a compact JWS of type `T` against `keys` and returns the checked document.
///
/// Order of checks: size, shape, header (`alg`, members, `typ`), key lookup and role, strict
/// signature, payload parse and field rules, that the key was valid when the document says it
/// was signed, and for a document an edge signs, that the key is bound to that edge and region.
pub fn verify<T: Document>(compact: &str, keys: &KeySet) -> Result<Verified<T>, WireError> {
    let prepared = prepare::<T>(compact, keys)?;
    if !prepared.verify_alone() {
        return Err(WireError::BadSignature);
    }
    finish(prepared)
}

/// A JWS whose every check but the Ed25519 equation passed (size, shape, header, key lookup and
/// role), for Ed25519 held outside this code to verify (a platform's WebCrypto):
/// [`verify_external`] prepares it, [`ExternalCheck::finish`] takes the platform's verdict and
/// makes the rest of [`verify`]'s checks.
///
/// Strictness: a platform's RFC 8032 verification (BoringSSL's, under workerd) refuses a
/// non-canonical `S` and compares the encoding of `R` it computes with the one given, so it
/// refuses non-canonical `R` too; [`ExternalCheck::finish`] refuses both again, and a
/// small-order `R`, so that what it accepts is what `verify_strict` accepts. Keys come from a
/// checked [`KeySet`], so none is weak.
#[derive(Debug, Clone)]
pub struct ExternalCheck<T> {
    signing_input: String,
    payload: String,
    signature: [u8; 64],
    public_key: [u8; 32],
    kid: String,
    jwk: crate::keys::PublicJwk,
    doc: std::marker::PhantomData<fn() -> T>,
}

/// [`verify`]'s checks up to the signature itself, for [`ExternalCheck::finish`].
pub fn verify_external<T: Document>(
    compact: &str,
    keys: &KeySet,
) -> Result<ExternalCheck<T>, WireError> {
    let prepared = prepare::<T>(compact, keys)?;
    Ok(ExternalCheck {
        signing_input: prepared.signing_input.to_owned(),
        payload: prepared.payload.to_owned(),
        signature: prepared.signature.to_bytes(),
        public_key: prepared.key.verifying_key().to_bytes(),
        kid: prepared.kid,
        jwk: prepared.jwk.clone(),
        doc: std::marker::PhantomData,
    })
}

impl<T: Document> ExternalCheck<T> {
    /// The signer's Ed25519 public key (from the key set, by the header's `kid`).
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// The signed bytes.
    pub fn message(&self) -> &[u8] {
        self.signing_input.as_bytes()
    }

    /// The signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// The document, when the platform said the signature is valid (`platform_valid`) and the
    /// strict checks hold (see [`ExternalCheck`]); then [`verify`]'s remaining checks.
    pub fn finish(self, platform_valid: bool) -> Result<Verified<T>, WireError> {
        if !platform_valid || !strict_extras_hold(&self.signature) {
            return Err(WireError::BadSignature);
        }
        finish_parts(&self.payload, self.kid, &self.jwk)
    }
}

/// What `verify_strict` refuses beyond the Ed25519 equation, checked on the bytes: `S` is
/// canonical (below the group order) and `R` is not the encoding of a small-order point.
fn strict_extras_hold(signature: &[u8; 64]) -> bool {
    let (r, s) = signature.split_at(32);
    let s: [u8; 32] = s.try_into().expect("64 = 32 + 32");
    let canonical_s = bool::from(curve25519_dalek::Scalar::from_canonical_bytes(s).is_some());
    canonical_s && !is_small_order_encoding(r)
}

/// Whether `r` (32 bytes) encodes a point of small order, canonically or not, with either sign
/// bit: the y-coordinates of the eight torsion points, and `p` and `p + 1` (non-canonical 0
/// and 1).
pub fn is_small_order_encoding(r: &[u8]) -> bool {
    let mut y: [u8; 32] = match r.try_into() {
        Ok(y) => y,
        Err(_) => return false,
    };
    y[31] &= 0x7f;
    small_order_ys().contains(&y)
}

fn small_order_ys() -> &'static [[u8; 32]] {
    static YS: std::sync::OnceLock<Vec<[u8; 32]>> = std::sync::OnceLock::new();
    YS.get_or_init(|| {
        let mut ys: Vec<[u8; 32]> = curve25519_dalek::constants::EIGHT_TORSION
            .iter()
            .map(|point| {
                let mut y = point.compress().to_bytes();
                y[31] &= 0x7f;
                y
            })
            .collect();
        // p = 2^255 - 19 and p + 1, little-endian: y = 0 and y = 1 written non-canonically.
        for low in [0xed_u8, 0xee] {
            let mut y = [0xff_u8; 32];
            y[0] = low;
            y[31] = 0x7f;
            ys.push(y);
        }
        ys.sort_unstable();
        ys.dedup();
        ys
    })
}

/// Verifies many documents of one type with a single Ed25519 batch verification (about twice
/// as fast per signature). When the batch fails, it is split in halves, recursively
/// ([`settle`]), so that one forged signature among many costs a few smaller batches rather
/// than a strict verification of every document; a signature is accepted only inside a passing
/// batch or by strict verification on its own, so every culprit gets its own error and no good
/// document is refused. Keys come from a checked [`KeySet`], so none is weak.
pub fn verify_many<T: Document>(
    compacts: &[&str],
    keys: &KeySet,
) -> Vec<Result<Verified<T>, WireError>> {
    verify_many_counted(compacts, keys).0
}

/// The signature checks one [`verify_many`] call made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCount {
    /// Batch verifications.
    pub batches: usize,
    /// Signatures in those batches, summed.
    pub batched: usize,
    /// Strict verifications of one signature.
    pub singles: usize,
}

/// [`verify_many`], with the signature checks it made.
pub fn verify_many_counted<T: Document>(
    compacts: &[&str],
    keys: &KeySet,
) -> (Vec<Result<Verified<T>, WireError>>, BatchCount) {
    let prepared: Vec<Result<Prepared<'_, '_>, WireError>> =
        compacts.iter().map(|c| prepare::<T>(c, keys)).collect();
    let ready: Vec<&Prepared<'_, '_>> = prepared.iter().filter_map(|p| p.as_ref().ok()).collect();
    let batch = |items: &[usize]| {
        let messages: Vec<&[u8]> = items
            .iter()
            .map(|&i| ready[i].signing_input.as_bytes())
            .collect();
        let signatures: Vec<Signature> = items.iter().map(|&i| ready[i].signature).collect();
        let keys: Vec<ed25519_dalek::VerifyingKey> = items
            .iter()
            .map(|&i| *ready[i].key.verifying_key())
            .collect();
        ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
    };
    let strict = |i: usize| ready[i].verify_alone();
    let (valid, count) = settle(ready.len(), batch, strict);
    let mut valid = valid.into_iter();
    let results = prepared
        .into_iter()
        .map(|p| {
            let p = p?;
            let settled = valid
                .next()
                .expect("settle answers once for every prepared signature, in order");
            if !settled {
                return Err(WireError::BadSignature);
            }
            finish(p)
        })
        .collect();
    (results, count)
}

/// Deepest split of a failed batch; below it, strict verification one by one.
const MAX_SPLIT_DEPTH: usize = 16;

/// Decides which of `n` signatures are valid: one batch over all and, when it fails, halves,
/// recursively. A signature is valid only inside a passing batch or by its own strict check
/// (`strict`, for a single signature), so the outcome is strict verification's.
///
/// Halving is for the lone forgery: a failed range is split, and the half whose sibling passed
/// is known to hold the culprit, so one forgery among `n` costs at most `2 log2 n` more batches
/// (about `1.5 n` signatures re-batched on average, less than `2 n`) and one or two strict
/// checks. When both halves of a range fail, it holds two culprits or more and is checked
/// strictly one by one, so whatever the culprits, at most `2 n` signatures are re-batched on top
/// of the strict checks the fallback without halving would make.
pub fn settle(
    n: usize,
    batch: impl FnMut(&[usize]) -> bool,
    strict: impl FnMut(usize) -> bool,
) -> (Vec<bool>, BatchCount) {
    let mut settle = Settle {
        valid: vec![false; n],
        decided: vec![false; n],
        count: BatchCount::default(),
        batch,
        strict,
    };
    let all: Vec<usize> = (0..n).collect();
    if !all.is_empty() && !settle.check(&all) {
        settle.known_bad(&all, 0);
    }
    (settle.valid, settle.count)
}

struct Settle<B, S> {
    valid: Vec<bool>,
    decided: Vec<bool>,
    count: BatchCount,
    batch: B,
    strict: S,
}

impl<B: FnMut(&[usize]) -> bool, S: FnMut(usize) -> bool> Settle<B, S> {
    /// One check of `items`: a batch, or strict verification for one signature. Whether all
    /// are valid; a passing batch (or a strict check) decides its signatures.
    fn check(&mut self, items: &[usize]) -> bool {
        if let [one] = items {
            return self.one_by_one(&[*one]);
        }
        self.count.batches += 1;
        self.count.batched += items.len();
        let ok = (self.batch)(items);
        if ok {
            for &i in items {
                (self.valid[i], self.decided[i]) = (true, true);
            }
        }
        ok
    }

    /// Settles `items`, known to hold at least one invalid signature.
    fn known_bad(&mut self, items: &[usize], depth: usize) {
        if items.len() == 1 || depth >= MAX_SPLIT_DEPTH {
            self.one_by_one(items);
            return;
        }
        let (left, right) = items.split_at(items.len() / 2);
        if self.check(left) {
            self.known_bad(right, depth + 1);
        } else if self.check(right) {
            self.known_bad(left, depth + 1);
        } else {
            // Two culprits at least: halving further would cost more than it saves.
            self.one_by_one(left);
            self.one_by_one(right);
        }
    }

    /// Strict verification of each signature not decided yet; whether all are valid.
    fn one_by_one(&mut self, items: &[usize]) -> bool {
        let mut all = true;
        for &i in items {
            if !self.decided[i] {
                self.count.singles += 1;
                self.valid[i] = (self.strict)(i);
                self.decided[i] = true;
            }
            all &= self.valid[i];
        }
        all
    }
}

/// Parses and checks a document WITHOUT verifying its signature: size, shape, `typ`, payload and
/// field rules. Only for data whose integrity another verified signature already covers (a
/// token inside an edge-signed envelope).
pub fn decode_unverified<T: Document>(compact: &str) -> Result<T, WireError> {
    json::check_len(T::NAME, compact.len(), T::MAX_JWS_BYTES)?;
    let parts = split_compact(compact)?;
    let header = parse_header(parts.header)?;
    check_typ::<T>(header.typ)?;
    let payload = b64::decode("payload", parts.payload)?;
    let doc: T = json::parse_bounded(T::NAME, &payload, T::MAX_JWS_BYTES)?;
    doc.validate()?;
    Ok(doc)
}

/// A JWS whose header and key checked out, before the signature is verified.
struct Prepared<'c, 'k> {
    signing_input: &'c str,
    payload: &'c str,
    signature: Signature,
    kid: String,
    jwk: &'k crate::keys::PublicJwk,
    key: &'k crate::strict::StrictKey,
}

impl Prepared<'_, '_> {
    /// Strict verification of this one signature (`verify_strict`'s answer).
    fn verify_alone(&self) -> bool {
        self.key
            .verify(self.signing_input.as_bytes(), &self.signature.to_bytes())
    }
}

fn prepare<'c, 'k, T: Document>(
    compact: &'c str,
    keys: &'k KeySet,
) -> Result<Prepared<'c, 'k>, WireError> {
    json::check_len(T::NAME, compact.len(), T::MAX_JWS_BYTES)?;
    let parts = split_compact(compact)?;
    let header = parse_header(parts.header)?;
    check_typ::<T>(header.typ)?;
    let (jwk, key) = keys
        .get_strict(&header.kid)
        .ok_or_else(|| WireError::UnknownKeyId(header.kid.clone()))?;
    check_role::<T>(&header.kid, jwk.edgevote_role)?;
    let signature = Signature::from_bytes(&b64::decode_array::<64>("signature", parts.signature)?);
    Ok(Prepared {
        signing_input: parts.signing_input,
        payload: parts.payload,
        signature,
        kid: header.kid,
        jwk,
        key,
    })
}

fn finish<T: Document>(prepared: Prepared<'_, '_>) -> Result<Verified<T>, WireError> {
    finish_parts(prepared.payload, prepared.kid, prepared.jwk)
}

/// The checks after the signature: payload, field rules, the key's validity window at the
/// document's time, and an edge key's binding.
fn finish_parts<T: Document>(
    payload: &str,
    kid: String,
    jwk: &crate::keys::PublicJwk,
) -> Result<Verified<T>, WireError> {
    let payload = b64::decode("payload", payload)?;
    let doc: T = json::parse_bounded(T::NAME, &payload, T::MAX_JWS_BYTES)?;
    doc.validate()?;
    let at_secs = doc.signed_at_secs();
    if !jwk.valid_at(at_secs) {
        return Err(WireError::KeyNotValidAtTime {
            kid,
            at_secs,
            valid_from: jwk.valid_from,
            valid_until: jwk.valid_until,
        });
    }
    if let Some((edge, region)) = doc.signing_edge() {
        jwk.check_binding(edge, region)?;
    }
    Ok(Verified { doc, kid })
}

fn check_typ<T: Document>(typ: String) -> Result<(), WireError> {
    if typ != T::TYP {
        return Err(WireError::WrongDocumentType {
            expected: T::TYP,
            found: typ,
        });
    }
    Ok(())
}

/// Reads the protected header of a compact JWS without verifying anything (for tools that must
/// say which key a document names before they can find the key set).
pub fn peek_header(compact: &str) -> Result<Header, WireError> {
    json::check_len(
        "JWS",
        compact.len(),
        crate::envelope::MAX_ENVELOPE_JWS_BYTES,
    )?;
    parse_header(split_compact(compact)?.header)
}

struct CompactParts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    /// `header.payload`, the bytes the signature covers.
    signing_input: &'a str,
}

fn split_compact(compact: &str) -> Result<CompactParts<'_>, WireError> {
    let mut parts = compact.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(WireError::MalformedJws(
            "expected three dot-separated parts",
        ));
    };
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(WireError::MalformedJws("empty part"));
    }
    Ok(CompactParts {
        header,
        payload,
        signature,
        signing_input: &compact[..header.len() + 1 + payload.len()],
    })
}

fn parse_header(encoded: &str) -> Result<Header, WireError> {
    json::check_len("JWS header", encoded.len(), MAX_HEADER_BYTES * 4 / 3 + 4)?;
    let bytes = b64::decode("header", encoded)?;
    let members: serde_json::Map<String, serde_json::Value> =
        json::parse_bounded("JWS header", &bytes, MAX_HEADER_BYTES)?;
    // Check alg first so that `alg: none` and friends get their own code.
    match members.get("alg") {
        Some(serde_json::Value::String(alg)) if alg == ALG => {}
        Some(other) => return Err(WireError::UnsupportedAlgorithm(other.to_string())),
        None => return Err(WireError::UnsupportedAlgorithm("(missing)".into())),
    }
    if let Some(extra) = members
        .keys()
        .find(|k| !matches!(k.as_str(), "alg" | "kid" | "typ"))
    {
        return Err(WireError::UnsupportedHeader(format!("member {extra:?}")));
    }
    serde_json::from_value(serde_json::Value::Object(members)).map_err(|e| {
        WireError::MalformedJson {
            what: "JWS header",
            detail: e.to_string(),
        }
    })
}

fn check_role<T: Document>(kid: &str, role: Role) -> Result<(), WireError> {
    if role != T::SIGNER {
        return Err(WireError::KeyRoleMismatch {
            kid: kid.to_owned(),
            role: role.as_str(),
            expected: T::SIGNER.as_str(),
            typ: T::TYP,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `settle` with a batch oracle that passes exactly the batches holding no bad signature.
    fn settle_with(n: usize, bad: &[usize]) -> (Vec<bool>, BatchCount) {
        settle(
            n,
            |items| items.iter().all(|i| !bad.contains(i)),
            |i| !bad.contains(&i),
        )
    }

    #[test]
    fn every_pattern_of_culprits_is_settled_exactly() {
        for n in 0..=10 {
            for mask in 0u32..(1 << n) {
                let bad: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
                let (valid, count) = settle_with(n, &bad);
                let expected: Vec<bool> = (0..n).map(|i| !bad.contains(&i)).collect();
                assert_eq!(valid, expected, "n {n} bad {bad:?}");
                assert!(count.batched <= 3 * n, "n {n} bad {bad:?}: {count:?}");
            }
        }
    }

    #[test]
    fn one_culprit_costs_log_n_batches() {
        for culprit in 0..256 {
            let (valid, count) = settle_with(256, &[culprit]);
            assert_eq!(valid.iter().filter(|v| !**v).count(), 1);
            assert!(!valid[culprit]);
            assert!(count.batches <= 17, "{culprit}: {count:?}");
            assert!(count.singles <= 2, "{culprit}: {count:?}");
        }
        let (_, clean) = settle_with(256, &[]);
        assert_eq!(
            clean,
            BatchCount {
                batches: 1,
                batched: 256,
                singles: 0
            }
        );
    }

    #[test]
    fn many_culprits_cost_at_most_two_more_passes_than_strict_one_by_one() {
        for bad in [
            (0..256).collect::<Vec<usize>>(),
            (0..256).step_by(2).collect(),
            (0..256).step_by(16).collect(),
            (5..256).step_by(64).collect(),
            vec![3, 4],
        ] {
            let (valid, count) = settle_with(256, &bad);
            assert_eq!(valid.iter().filter(|v| !**v).count(), bad.len());
            assert!(count.batched <= 3 * 256, "{bad:?}: {count:?}");
            assert!(count.singles <= 256, "{bad:?}: {count:?}");
        }
    }
}
