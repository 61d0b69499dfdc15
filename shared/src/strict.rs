//! Strict Ed25519 verification: exactly what `ed25519_dalek::VerifyingKey::verify_strict`
//! accepts, for less work.
//!
//! `verify_strict` decompresses the signature's `R` (a field exponentiation), refuses it when it
//! has small order, computes `R' = [s]B - [k]A` and compares `R'`'s encoding with `R`'s bytes.
//! [`StrictKey::verify`] makes the same decision without decompressing `R`: it computes `R'`,
//! compresses it and compares the bytes, and refuses when `R'` has small order. Compression is
//! canonical, so when the bytes are equal `R` decompresses to `R'`, and `R'`'s order is `R`'s;
//! when they differ, both refuse. The other checks are the same: `S` canonical, `A` not of
//! small order, `k = SHA-512(R || A || message)` over the bytes as given.
//!
//! A key that verifies many signatures in one process (an authority's key, on an edge or a
//! collector) also gets a table of multiples of `-A`, like the static one of the base point:
//! `[k](-A)` then costs 64 additions and no doublings. The table takes about 30 KiB and as
//! long to build as about twenty verifications, so a key gets it only after
//! [`TABLE_AFTER_USES`] verifications in this process: a Wasm instance that serves one request
//! (Spin) never pays for it; one our host reuses for thousands does, once. A table only changes
//! how `[k](-A)` is computed, never which signatures pass (tested against `verify_strict`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use curve25519_dalek::constants::ED25519_BASEPOINT_TABLE;
use curve25519_dalek::edwards::{EdwardsBasepointTable, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::BasepointTable;
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha512};

/// Verifications with one key, in this process, after which it gets its table of multiples.
pub const TABLE_AFTER_USES: u32 = 64;

/// A public key ready for strict verification, with its table once it has earned one. Clones
/// share the table.
#[derive(Clone)]
pub struct StrictKey {
    key: VerifyingKey,
    minus_a: EdwardsPoint,
    small_order: bool,
    table: Arc<LazyTable>,
}

/// The table of multiples of `-A`, built by the verification that reaches
/// [`TABLE_AFTER_USES`]; until it is there, others go on without it rather than wait.
#[derive(Default)]
struct LazyTable {
    uses: AtomicU32,
    table: OnceLock<Box<EdwardsBasepointTable>>,
}

impl StrictKey {
    /// The key, ready to verify.
    pub fn new(key: VerifyingKey) -> Self {
        let point = key.to_edwards();
        StrictKey {
            key,
            minus_a: -point,
            small_order: point.is_small_order(),
            table: Arc::default(),
        }
    }

    /// The public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Whether `signature` (`R || S`, 64 bytes) is this key's Ed25519 signature of `message`,
    /// with `verify_strict`'s answer: refuses a non-canonical `S`, a small-order `R` or key, and
    /// a non-canonical `R`.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        if self.small_order {
            return false;
        }
        check(
            &self.key,
            &self.minus_a,
            || self.table(),
            message,
            signature,
        )
    }

    /// Whether the table has been built (for tests and measurements).
    pub fn has_table(&self) -> bool {
        self.table.table.get().is_some()
    }

    /// The table, counting this use towards it; the use that reaches [`TABLE_AFTER_USES`] builds it.
    fn table(&self) -> Option<&EdwardsBasepointTable> {
        if let Some(table) = self.table.table.get() {
            return Some(table);
        }
        let uses = self
            .table
            .uses
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if uses != TABLE_AFTER_USES {
            return None;
        }
        let built = Box::new(EdwardsBasepointTable::create(&self.minus_a));
        debug_assert_eq!(
            built.mul_base(&Scalar::ONE),
            self.minus_a,
            "a table's first entry is its point"
        );
        // Only this use sets it: at most one verification reaches the count exactly.
        let _ = self.table.table.set(built);
        self.table.table.get().map(|table| &**table)
    }
}

/// [`StrictKey::verify`] for a key used once (no table): `verify_strict`'s answer.
pub fn verify(key: &VerifyingKey, message: &[u8], signature: &[u8; 64]) -> bool {
    let point = key.to_edwards();
    !point.is_small_order() && check(key, &-point, || None, message, signature)
}

/// The equation `[s]B - [k]A = R`, checked on `R`'s bytes, and the rest of `verify_strict`'s
/// checks but the key's order (the caller's). `table` is asked for only once `S` is canonical.
fn check<'t>(
    key: &VerifyingKey,
    minus_a: &EdwardsPoint,
    table: impl FnOnce() -> Option<&'t EdwardsBasepointTable>,
    message: &[u8],
    signature: &[u8; 64],
) -> bool {
    let (r_bytes, s_bytes) = signature.split_at(32);
    let s_bytes: [u8; 32] = s_bytes.try_into().expect("64 = 32 + 32");
    let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
        return false;
    };
    let k = challenge(r_bytes, key.as_bytes(), message);
    let r = match table() {
        Some(table) => table.mul_base(&k) + ED25519_BASEPOINT_TABLE.mul_base(&s),
        None => EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, minus_a, &s),
    };
    r.compress().as_bytes() == r_bytes && !r.is_small_order()
}

/// Ed25519's challenge `k = SHA-512(R || A || message) mod l`.
fn challenge(r: &[u8], a: &[u8; 32], message: &[u8]) -> Scalar {
    let mut hash = Sha512::new();
    hash.update(r);
    hash.update(a);
    hash.update(message);
    Scalar::from_bytes_mod_order_wide(&hash.finalize().into())
}

impl std::fmt::Debug for StrictKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StrictKey")
            .field("key", &self.key)
            .field("has_table", &self.has_table())
            .finish()
    }
}

impl PartialEq for StrictKey {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for StrictKey {}
