//! `strict::StrictKey::verify` and `strict::verify` must give `verify_strict`'s answer on every
//! input, with and without a key's table: genuine signatures, every one-bit change of them, a
//! non-canonical `S`, and forgeries built to satisfy the cofactorless equation with a
//! small-order `R` (canonical or not) or with a small-order key, which only the order checks
//! refuse.

use curve25519_dalek::constants::{ED25519_BASEPOINT_TABLE, EIGHT_TORSION};
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{BasepointTable, Identity, IsIdentity};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use edgevote_shared::strict::{StrictKey, TABLE_AFTER_USES, verify};
use proptest::prelude::*;
use sha2::{Digest, Sha512};

/// `ed25519_dalek`'s strict verification: the reference.
fn reference(key: &VerifyingKey, message: &[u8], signature: &[u8; 64]) -> bool {
    key.verify_strict(message, &Signature::from_bytes(signature))
        .is_ok()
}

/// Asserts that both of ours answer as the reference does, and returns the answer.
fn agree(key: &StrictKey, message: &[u8], signature: &[u8; 64]) -> bool {
    let expected = reference(key.verifying_key(), message, signature);
    assert_eq!(
        verify(key.verifying_key(), message, signature),
        expected,
        "strict::verify on {}",
        hex::encode(signature)
    );
    assert_eq!(
        key.verify(message, signature),
        expected,
        "StrictKey::verify (table: {}) on {}",
        key.has_table(),
        hex::encode(signature)
    );
    expected
}

/// A key that has verified enough to hold its table.
fn with_table(signer: &SigningKey) -> StrictKey {
    let key = StrictKey::new(signer.verifying_key());
    let message = b"warm-up";
    let signature = signer.sign(message).to_bytes();
    for _ in 0..TABLE_AFTER_USES {
        assert!(!key.has_table());
        assert!(key.verify(message, &signature));
    }
    assert!(key.has_table(), "the table comes at the threshold");
    key
}

fn signer(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn challenge(r: &[u8; 32], a: &[u8; 32], message: &[u8]) -> Scalar {
    let hash = Sha512::new()
        .chain_update(r)
        .chain_update(a)
        .chain_update(message);
    Scalar::from_bytes_mod_order_wide(&hash.finalize().into())
}

fn signature(r: &[u8; 32], s: &Scalar) -> [u8; 64] {
    let mut bytes = [0u8; 64];
    bytes[..32].copy_from_slice(r);
    bytes[32..].copy_from_slice(s.as_bytes());
    bytes
}

/// The signer's secret scalar `a` (so that `A = [a]B`), from its expanded key.
fn secret_scalar(signer: &SigningKey) -> Scalar {
    let a = signer.to_scalar();
    assert_eq!(
        ED25519_BASEPOINT_TABLE.mul_base(&a),
        signer.verifying_key().to_edwards()
    );
    a
}

/// Both keys of a case: fresh (double-base path) and holding its table.
fn both_paths(signer: &SigningKey) -> [StrictKey; 2] {
    [StrictKey::new(signer.verifying_key()), with_table(signer)]
}

#[test]
fn genuine_signatures_pass_and_every_one_bit_change_is_judged_as_verify_strict_judges_it() {
    let signer = signer(7);
    let message = b"a vote token's signing input";
    let genuine = signer.sign(message).to_bytes();
    for key in both_paths(&signer) {
        assert!(agree(&key, message, &genuine));
        for bit in 0..512 {
            let mut changed = genuine;
            changed[bit / 8] ^= 1 << (bit % 8);
            agree(&key, message, &changed);
        }
        assert!(!agree(&key, b"another message", &genuine));
    }
}

#[test]
fn a_non_canonical_s_is_refused_though_it_satisfies_the_equation() {
    let signer = signer(9);
    let message = b"malleable?";
    let genuine = signer.sign(message).to_bytes();
    // S + l: the same scalar mod l, so the equation holds, written non-canonically.
    let order_bytes: [u8; 32] = {
        let mut l = (-Scalar::ONE).to_bytes();
        l[0] += 1;
        l
    };
    let mut s_plus_l = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(genuine[32 + i]) + u16::from(order_bytes[i]) + carry;
        s_plus_l[i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    let mut forged = genuine;
    forged[32..].copy_from_slice(&s_plus_l);
    for key in both_paths(&signer) {
        assert!(!agree(&key, message, &forged));
    }
}

#[test]
fn a_small_order_r_that_satisfies_the_equation_is_refused() {
    // R = the identity, S = k a: [S]B - [k]A = [ka - ka]B = R, so only the order check refuses.
    let signer = signer(11);
    let a = secret_scalar(&signer);
    let identity = EdwardsPoint::identity().compress().to_bytes();
    let message = b"R is the identity";
    let k = challenge(&identity, signer.verifying_key().as_bytes(), message);
    let forged = signature(&identity, &(k * a));
    for key in both_paths(&signer) {
        assert!(!agree(&key, message, &forged));
    }
}

#[test]
fn forgeries_under_a_key_with_a_torsion_component_are_judged_as_verify_strict_judges_them() {
    // A = [a]B + T, T of order 8: a key verify_strict does not refuse by itself. With R the
    // identity, written canonically or as p + 1, and S = k a, the equation holds exactly when
    // 8 divides k; search messages until it does.
    let a = Scalar::from_bytes_mod_order([42u8; 32]);
    let torsion = EIGHT_TORSION[1];
    let key_point = ED25519_BASEPOINT_TABLE.mul_base(&a) + torsion;
    let key = VerifyingKey::from(key_point);
    assert!(!key.is_weak(), "a mixed-order key is not weak");
    let canonical = EdwardsPoint::identity().compress().to_bytes();
    let mut p_plus_one = [0xff_u8; 32];
    p_plus_one[0] = 0xee;
    p_plus_one[31] = 0x7f;
    let strict_key = StrictKey::new(key);
    let mut tried = 0;
    for r in [canonical, p_plus_one] {
        let mut found = 0;
        for n in 0u32..400 {
            let message = format!("message {n}");
            let k = challenge(&r, key.as_bytes(), message.as_bytes());
            let forged = signature(&r, &(k * a));
            agree(&strict_key, message.as_bytes(), &forged);
            tried += 1;
            if k.as_bytes()[0].is_multiple_of(8) {
                // The equation holds: only R's order (or its encoding) refuses it.
                let point =
                    EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &-key_point, &(k * a));
                assert!(point.is_identity());
                found += 1;
            }
        }
        assert!(found > 0, "some k was a multiple of 8");
    }
    // Past the threshold the table is in use for the same cases.
    assert!(strict_key.has_table());
    assert!(tried > TABLE_AFTER_USES as usize);
}

#[test]
fn a_small_order_key_is_refused_even_when_the_equation_holds() {
    for torsion in EIGHT_TORSION {
        let key = VerifyingKey::from(torsion);
        assert!(key.is_weak());
        // With A of small order, R = [s]B - [k]A; pick S, compute R, sign nothing.
        let s = Scalar::from_bytes_mod_order([5u8; 32]);
        let message = b"weak key";
        // k depends on R, so search for R whose k kills A's torsion (k A = 0).
        for n in 0u8..64 {
            let s = s + Scalar::from(n);
            let r = ED25519_BASEPOINT_TABLE.mul_base(&s).compress().to_bytes();
            let k = challenge(&r, key.as_bytes(), message);
            let candidate = signature(&r, &s);
            let strict_key = StrictKey::new(key);
            assert!(!agree(&strict_key, message, &candidate));
            if (torsion * k).is_identity() {
                // The equation holds here: only the key's order refuses it.
                assert_eq!(
                    EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &-torsion, &s)
                        .compress()
                        .to_bytes(),
                    r
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_keys_messages_and_signatures_agree(
        seed in any::<[u8; 32]>(),
        message in proptest::collection::vec(any::<u8>(), 0..300),
        noise in any::<[u8; 32]>(),
    ) {
        let signer = SigningKey::from_bytes(&seed);
        let genuine = signer.sign(&message).to_bytes();
        let mut random_r = genuine;
        random_r[..32].copy_from_slice(&noise);
        let mut random_s = genuine;
        random_s[32..].copy_from_slice(&noise);
        let key = StrictKey::new(signer.verifying_key());
        prop_assert!(agree(&key, &message, &genuine));
        agree(&key, &message, &random_r);
        agree(&key, &message, &random_s);
    }
}
