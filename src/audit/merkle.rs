//! RFC 6962 (RFC 9162 §2.1) Merkle trees over the log's lines.
//!
//! Leaves are the line bytes without their `\n`. The writer keeps only the compact range of
//! the tree (one hash per perfect subtree, O(log n)), enough to compute the root for every
//! checkpoint; `verify` does the same while streaming. Proofs need the leaf hashes, which
//! `prove` reads back from the log.

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly smaller than `n` (n >= 2).
fn split(n: u64) -> u64 {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// MTH over leaf hashes (RFC 6962 §2.1).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The incremental form: one hash per perfect subtree, largest first.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    size: u64,
    /// (leaf count of the subtree, its hash)
    stack: Vec<(u64, Hash)>,
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }
    /// Number of leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.size += 1;
        self.stack.push((1, leaf));
        while self.stack.len() >= 2 {
            let n = self.stack.len();
            if self.stack[n - 1].0 != self.stack[n - 2].0 {
                break;
            }
            let (count, right) = self.stack[n - 1];
            let (_, left) = self.stack[n - 2];
            self.stack.truncate(n - 2);
            self.stack.push((count * 2, node_hash(&left, &right)));
        }
    }
    /// The tree head of the leaves so far.
    pub fn root(&self) -> Hash {
        let mut it = self.stack.iter().rev();
        let Some((_, last)) = it.next() else {
            return empty_root();
        };
        it.fold(*last, |acc, (_, left)| node_hash(left, &acc))
    }
}

/// The inclusion proof of leaf `index` in the tree of the first `size` leaves
/// (RFC 6962 §2.1.1 PATH). `None` if `index >= size` or `size > leaves.len()`.
pub fn inclusion_proof(leaves: &[Hash], index: u64, size: u64) -> Option<Vec<Hash>> {
    if index >= size || size > leaves.len() as u64 {
        return None;
    }
    let mut out = Vec::new();
    path(index as usize, &leaves[..size as usize], &mut out);
    Some(out)
}

fn path(m: usize, d: &[Hash], out: &mut Vec<Hash>) {
    let n = d.len();
    if n <= 1 {
        return;
    }
    let k = split(n as u64) as usize;
    if m < k {
        path(m, &d[..k], out);
        out.push(root(&d[k..]));
    } else {
        path(m - k, &d[k..], out);
        out.push(root(&d[..k]));
    }
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2): true if `leaf` at `index` is in the tree
/// of `size` leaves whose head is `root`.
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && &r == root
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Certificate Transparency reference vectors (certificate-transparency-go).
    fn leaves() -> Vec<Vec<u8>> {
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
        .map(|h| hex::decode(h).expect("vector"))
        .collect()
    }
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn roots_match_rfc6962_vectors_both_ways() {
        let hashes: Vec<Hash> = leaves().iter().map(|l| leaf_hash(l)).collect();
        assert_eq!(hex::encode(empty_root()), ROOTS[0]);
        let mut f = Frontier::new();
        assert_eq!(hex::encode(f.root()), ROOTS[0]);
        for n in 1..=8 {
            assert_eq!(hex::encode(root(&hashes[..n])), ROOTS[n], "size {n}");
            f.push(hashes[n - 1]);
            assert_eq!(hex::encode(f.root()), ROOTS[n], "frontier size {n}");
        }
    }

    #[test]
    fn inclusion_proofs_match_vectors() {
        let hashes: Vec<Hash> = leaves().iter().map(|l| leaf_hash(l)).collect();
        let p = inclusion_proof(&hashes, 0, 8).expect("proof");
        let want = [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ];
        assert_eq!(p.iter().map(hex::encode).collect::<Vec<_>>(), want);
        let p = inclusion_proof(&hashes, 5, 8).expect("proof");
        let want = [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ];
        assert_eq!(p.iter().map(hex::encode).collect::<Vec<_>>(), want);
    }

    #[test]
    fn every_proof_verifies_and_a_wrong_one_does_not() {
        let hashes: Vec<Hash> = (0u32..37).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for size in 1..=37u64 {
            let r = root(&hashes[..size as usize]);
            for i in 0..size {
                let p = inclusion_proof(&hashes, i, size).expect("proof");
                assert!(verify_inclusion(&hashes[i as usize], i, size, &p, &r));
                let other = (i + 1) % size;
                if other != i {
                    assert!(!verify_inclusion(&hashes[other as usize], i, size, &p, &r));
                }
            }
        }
        assert!(inclusion_proof(&hashes, 5, 5).is_none());
    }
}
