//! RFC 6962 / RFC 9162 Merkle trees: leaf and node hashing, tree heads, inclusion and
//! consistency proofs and their verification. The public audit log uses them, so any auditor
//! with an RFC 6962 library can check it.
//!
//! A consistency proof (RFC 9162 §2.1.4) shows that the tree of `old_size` leaves is a prefix
//! of the tree of `new_size` leaves: witnesses check one before cosigning a grown checkpoint.
//! By convention (C2SP `tlog-witness`) the proof from the empty tree, and from a tree to
//! itself, is empty.

use sha2::{Digest, Sha256};

/// A 32-byte hash.
pub type Hash = [u8; 32];

/// Largest tree this implementation builds proofs for (bounds recursion and memory).
pub const MAX_LEAVES: usize = u32::MAX as usize;
/// Longest inclusion proof accepted (a tree of 2^64 leaves needs 64).
pub const MAX_PROOF_LEN: usize = 64;

/// `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The Merkle tree hash of leaf hashes (`SHA-256("")` for an empty tree).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The inclusion proof of leaf `index` (RFC 6962 §2.1.1 PATH), or `None` when out of range.
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    if index >= leaves.len() || leaves.len() > MAX_LEAVES {
        return None;
    }
    let mut proof = Vec::new();
    path(index, leaves, &mut proof);
    Some(proof)
}

fn path(index: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if index < k {
        path(index, &leaves[..k], out);
        out.push(root(&leaves[k..]));
    } else {
        path(index - k, &leaves[k..], out);
        out.push(root(&leaves[..k]));
    }
}

/// Verifies that `leaf` is at `index` in the tree of `size` leaves with root `expected`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    expected: &Hash,
) -> bool {
    if index >= size || proof.len() > MAX_PROOF_LEN {
        return false;
    }
    let mut r = *leaf;
    let complete = walk(index, size - 1, proof, |p, left| {
        r = if left {
            node_hash(p, &r)
        } else {
            node_hash(&r, p)
        };
    });
    complete && &r == expected
}

/// The walk up the tree that RFC 9162 §2.1.3.2 and §2.1.4.2 share: `fn_` and `sn` are the
/// running node's index and the last node's index at the current level. `step` gets each proof
/// node and whether it is the left sibling of the running hash. True when the proof ends exactly
/// at the root (`sn` is 0), false when it is longer than the path.
fn walk(mut fn_: u64, mut sn: u64, proof: &[Hash], mut step: impl FnMut(&Hash, bool)) -> bool {
    for p in proof {
        if sn == 0 {
            return false;
        }
        let left = fn_ & 1 == 1 || fn_ == sn;
        step(p, left);
        if left {
            // Skip the levels where the running node is the last one and has no sibling.
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0
}

/// The consistency proof from the tree of the first `old_size` leaves to the tree of all
/// `leaves` (RFC 9162 §2.1.4.1 PROOF), or `None` when `old_size` is larger than the tree. The
/// proof is empty when `old_size` is 0 or the whole tree.
pub fn consistency_proof(old_size: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    if old_size > leaves.len() || leaves.len() > MAX_LEAVES {
        return None;
    }
    let mut proof = Vec::new();
    if old_size > 0 {
        subproof(old_size, leaves, true, &mut proof);
    }
    Some(proof)
}

/// RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b): `complete` is true while the old tree's root is a
/// node the verifier already knows (so it is left out of the proof).
fn subproof(m: usize, leaves: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            out.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &leaves[..k], complete, out);
        out.push(root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, out);
        out.push(root(&leaves[..k]));
    }
}

/// Verifies that the tree of `old_size` leaves with root `old_root` is a prefix of the tree of
/// `new_size` leaves with root `new_root` (RFC 9162 §2.1.4.2). Equal sizes need equal roots and
/// an empty proof; the empty tree (`old_size` 0, root `SHA-256("")`) is a prefix of every tree,
/// with an empty proof.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size > new_size || proof.len() > MAX_PROOF_LEN {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        return proof.is_empty() && *old_root == root(&[]);
    }
    let Some((&first, rest)) = proof.split_first() else {
        return false;
    };
    // Step 2: when the old tree is a complete subtree, its root is the path's first node.
    let (start, path) = if old_size.is_power_of_two() {
        (*old_root, proof)
    } else {
        (first, rest)
    };
    // Step 4: skip the levels where the old tree's last node is a right child.
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (start, start);
    let complete = walk(fn_, sn, path, |c, left| {
        if left {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
        } else {
            sr = node_hash(&sr, c);
        }
    });
    complete && fr == *old_root && sr == *new_root
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The leaves of the classic RFC 6962 test tree (certificate-transparency test data).
    fn test_leaves() -> Vec<Hash> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|h| {
            let bytes: Vec<u8> = (0..h.len() / 2)
                .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap_or(0))
                .collect();
            leaf_hash(&bytes)
        })
        .collect()
    }

    fn hex(h: &Hash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn known_roots() {
        assert_eq!(
            hex(&root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(
            hex(&root(&test_leaves())),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
        );
    }

    #[test]
    fn every_proof_verifies_and_tampering_fails() {
        let leaves = test_leaves();
        for size in 1..=leaves.len() {
            let tree = &leaves[..size];
            let head = root(tree);
            for index in 0..size {
                let proof = inclusion_proof(index, tree).unwrap_or_default();
                assert!(
                    verify_inclusion(index as u64, size as u64, &tree[index], &proof, &head),
                    "{index}/{size}"
                );
                let other = leaf_hash(b"not in the tree");
                assert!(!verify_inclusion(
                    index as u64,
                    size as u64,
                    &other,
                    &proof,
                    &head
                ));
                if size > 1 {
                    assert!(
                        !verify_inclusion(
                            ((index + 1) % size) as u64,
                            size as u64,
                            &tree[index],
                            &proof,
                            &head
                        ) || tree[index] == tree[(index + 1) % size]
                    );
                }
            }
        }
        assert!(inclusion_proof(3, &leaves[..3]).is_none());
    }

    /// Leaf hashes of the entries `0..n`.
    fn numbered(n: usize) -> Vec<Hash> {
        (0..n as u64).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn consistency_proofs_are_the_rfc_examples() {
        // RFC 6962 §2.1.3: the tree of 7 leaves d0..d6, with nodes named as in the RFC.
        let d = numbered(7);
        let (c, dd, g, k) = (d[2], d[3], root(&d[..2]), root(&d[4..6]));
        let (i, j, l) = (root(&d[..4]), d[6], root(&d[4..7]));
        assert_eq!(consistency_proof(3, &d), Some(vec![c, dd, g, l]));
        assert_eq!(consistency_proof(4, &d), Some(vec![l]));
        assert_eq!(consistency_proof(6, &d), Some(vec![k, j, i]));
        assert_eq!(consistency_proof(0, &d), Some(vec![]));
        assert_eq!(consistency_proof(7, &d), Some(vec![]));
        assert_eq!(consistency_proof(8, &d), None);
    }

    #[test]
    fn edge_cases_of_consistency() {
        let d = numbered(5);
        let (r5, r0) = (root(&d), root(&[]));
        assert!(verify_consistency(0, 5, &r0, &r5, &[]));
        assert!(
            !verify_consistency(0, 5, &r5, &r5, &[]),
            "old root of the empty tree"
        );
        assert!(
            !verify_consistency(0, 5, &r0, &r5, &[r5]),
            "a proof from nothing"
        );
        assert!(verify_consistency(5, 5, &r5, &r5, &[]));
        assert!(
            !verify_consistency(5, 5, &r5, &r0, &[]),
            "same size, another root"
        );
        assert!(!verify_consistency(5, 5, &r5, &r5, &[r5]));
        assert!(!verify_consistency(6, 5, &r5, &r5, &[]));
        let r3 = root(&d[..3]);
        assert!(!verify_consistency(3, 5, &r3, &r5, &[]), "an empty proof");
        let long = vec![r3; MAX_PROOF_LEN + 1];
        assert!(!verify_consistency(3, 5, &r3, &r5, &long));
    }

    proptest::proptest! {
        #[test]
        fn a_consistency_proof_verifies_and_tampering_fails(
            new in 1usize..300,
            old_pick in 0usize..300,
            flip in 0usize..64,
            byte in 0usize..32,
        ) {
            let old = old_pick % (new + 1);
            let leaves = numbered(new);
            let (old_root, new_root) = (root(&leaves[..old]), root(&leaves));
            let proof = consistency_proof(old, &leaves).unwrap_or_default();
            let (o, n) = (old as u64, new as u64);
            proptest::prop_assert!(verify_consistency(o, n, &old_root, &new_root, &proof));
            if old != new {
                proptest::prop_assert!(!verify_consistency(n, o, &new_root, &old_root, &proof));
                proptest::prop_assert!(!verify_consistency(o, n, &new_root, &old_root, &proof));
                // Another history: the old tree with its last leaf changed.
                let mut other = leaves.clone();
                if old > 0 {
                    other[old - 1] = leaf_hash(b"rewritten");
                    let forked = root(&other[..old]);
                    proptest::prop_assert!(!verify_consistency(o, n, &forked, &new_root, &proof));
                }
            }
            if !proof.is_empty() {
                let mut tampered = proof.clone();
                let at = flip % tampered.len();
                tampered[at][byte] ^= 1;
                proptest::prop_assert!(!verify_consistency(o, n, &old_root, &new_root, &tampered));
                let mut shorter = proof.clone();
                shorter.pop();
                proptest::prop_assert!(!verify_consistency(o, n, &old_root, &new_root, &shorter));
                let mut longer = proof.clone();
                longer.push(new_root);
                proptest::prop_assert!(!verify_consistency(o, n, &old_root, &new_root, &longer));
            }
        }
    }
}
