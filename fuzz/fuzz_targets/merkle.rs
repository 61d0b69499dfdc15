//! Fuzzes the RFC 6962 inclusion proofs auditors check against a checkpoint.
//!
//! The first byte is a leaf count (at most 64), the rest is cut into that many leaves. Then:
//! - the inclusion proofs of the first, the last and one input-chosen leaf have at most `MAX_PROOF_LEN` hashes and verifies against the
//!   tree's root; no proof exists for an index past the end;
//! - a proof with one hash changed, or checked for another leaf value, does not verify;
//! - `verify_inclusion` with index, size, proof and root taken from raw input bytes returns
//!   without panicking (no underflow, no overlong proof).
#![no_main]

use edgevote_shared::merkle::{self, Hash, MAX_PROOF_LEN};

fn hash_at(bytes: &[u8], at: usize) -> Hash {
    let mut hash = [0u8; 32];
    for (i, b) in hash.iter_mut().enumerate() {
        *b = bytes.get(at + i).copied().unwrap_or(0);
    }
    hash
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    for (i, b) in word.iter_mut().enumerate() {
        *b = bytes.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(word)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(count % 65);
    let leaves: Vec<Hash> = if count == 0 {
        Vec::new()
    } else {
        let chunk = rest.len().div_ceil(count).max(1);
        let mut leaves: Vec<Hash> = rest.chunks(chunk).map(merkle::leaf_hash).collect();
        while leaves.len() < count {
            leaves.push(merkle::leaf_hash(&(leaves.len() as u64).to_be_bytes()));
        }
        leaves
    };
    let root = merkle::root(&leaves);
    let size = leaves.len() as u64;
    assert!(merkle::inclusion_proof(leaves.len(), &leaves).is_none());

    let chosen = usize::from(rest.first().copied().unwrap_or(0));
    let mut indices = vec![0, chosen, leaves.len().saturating_sub(1)];
    indices.retain(|&i| i < leaves.len());
    indices.dedup();
    for index in indices {
        let leaf = &leaves[index];
        let proof = merkle::inclusion_proof(index, &leaves).expect("index is in range");
        assert!(proof.len() <= MAX_PROOF_LEN);
        assert!(
            merkle::verify_inclusion(index as u64, size, leaf, &proof, &root),
            "a genuine proof does not verify (leaf {index} of {size})"
        );
        let mut other_leaf = *leaf;
        other_leaf[0] ^= 1;
        assert!(!merkle::verify_inclusion(
            index as u64,
            size,
            &other_leaf,
            &proof,
            &root
        ));
        if let Some(first) = proof.first() {
            let mut tampered = proof.clone();
            tampered[0] = {
                let mut h = *first;
                h[31] ^= 0x80;
                h
            };
            assert!(!merkle::verify_inclusion(
                index as u64,
                size,
                leaf,
                &tampered,
                &root
            ));
        }
    }

    // Raw fields: index, size, leaf, root, then the proof hashes.
    let raw_proof: Vec<Hash> = rest
        .get(80..)
        .unwrap_or_default()
        .chunks(32)
        .take(MAX_PROOF_LEN + 2)
        .map(|c| hash_at(c, 0))
        .collect();
    let _ = merkle::verify_inclusion(
        u64_at(rest, 0),
        u64_at(rest, 8),
        &hash_at(rest, 16),
        &raw_proof,
        &hash_at(rest, 48),
    );
});
