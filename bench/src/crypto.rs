//! The crypto-only limit of this machine: the Ed25519 work no vote can avoid, done on all
//! cores with nothing else. Per vote:
//!
//! - the edge verifies the voter's token, in a batch of a group commit;
//! - the edge signs the receipt;
//! - the edge signs the envelope, once per group commit (amortised over its votes);
//! - the collector verifies the envelope (amortised) and, by default (`verify_tokens`), every
//!   token again, in a batch of the message.
//!
//! The messages have the sizes of the real documents, so hashing is counted too. The batch is
//! the host's group-commit bound (`group_commit.max_votes`), the most a message packs.

use edgevote_shared::{Role, SigningIdentity};

use crate::cpu::Stopwatch;

/// Bytes of a token's JWS signing input (header and claims, base64url).
const TOKEN_BYTES: usize = 330;
/// Bytes of a receipt's JWS signing input.
const RECEIPT_BYTES: usize = 420;
/// Bytes one vote adds to an envelope's signing input.
const ENVELOPE_BYTES_PER_VOTE: usize = 560;

/// What the crypto-only run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CryptoLimit {
    /// Votes' worth of crypto done.
    pub votes: usize,
    /// Votes per group commit (tokens per batch, votes per envelope).
    pub votes_per_batch: usize,
    /// Threads used (the cores available).
    pub threads: usize,
    /// Votes per second, wall clock, all cores: the machine's limit.
    pub votes_per_sec: f64,
    /// CPU seconds per vote.
    pub cpu_secs_per_vote: f64,
    /// One Ed25519 signature, microseconds (one core).
    pub sign_us: f64,
    /// One strict Ed25519 verification, microseconds.
    pub verify_us: f64,
    /// One signature's share of a batch verification of `votes_per_batch`, microseconds.
    pub batch_verify_us_per_signature: f64,
}

/// The material of one group commit: its tokens and their signatures, the envelope and its
/// signature, a receipt to sign.
struct Batch {
    authority: ed25519_dalek::VerifyingKey,
    tokens: Vec<Vec<u8>>,
    token_signatures: Vec<ed25519_dalek::Signature>,
    edge: SigningIdentity,
    envelope: Vec<u8>,
    envelope_signature: [u8; 64],
    receipt: Vec<u8>,
}

impl Batch {
    fn new(votes: usize) -> Batch {
        let authority = SigningIdentity::from_seed(&[1; 32], Role::Authority);
        let edge = SigningIdentity::from_seed(&[2; 32], Role::Edge);
        let tokens: Vec<Vec<u8>> = (0..votes).map(|i| filler(TOKEN_BYTES, i as u64)).collect();
        let token_signatures = tokens
            .iter()
            .map(|t| ed25519_dalek::Signature::from_bytes(&authority.sign_message(t)))
            .collect();
        let envelope = filler(ENVELOPE_BYTES_PER_VOTE * votes, u64::MAX);
        let envelope_signature = edge.sign_message(&envelope);
        Batch {
            authority: authority.verifying_key(),
            tokens,
            token_signatures,
            edge,
            envelope,
            envelope_signature,
            receipt: filler(RECEIPT_BYTES, 0),
        }
    }

    fn verify_tokens(&self) -> bool {
        let messages: Vec<&[u8]> = self.tokens.iter().map(Vec::as_slice).collect();
        let keys = vec![self.authority; self.tokens.len()];
        ed25519_dalek::verify_batch(&messages, &self.token_signatures, &keys).is_ok()
    }

    /// The crypto of every vote of one group commit, edge then collector. Whether every
    /// signature verified (they all must).
    fn run(&self) -> bool {
        let edge_ok = self.verify_tokens();
        std::hint::black_box(self.edge.sign_message(&self.envelope));
        for _ in &self.tokens {
            std::hint::black_box(self.edge.sign_message(&self.receipt));
        }
        let envelope_ok = edgevote_shared::keys::verify_message(
            &self.edge.verifying_key(),
            &self.envelope,
            &self.envelope_signature,
        );
        edge_ok && envelope_ok && self.verify_tokens()
    }
}

/// `len` bytes of base64url-like text, different for each `seed`.
fn filler(len: usize, seed: u64) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ALPHABET[(state % 64) as usize]
        })
        .collect()
}

/// The crypto of about `votes` votes in group commits of `votes_per_batch`, on `threads`
/// threads at once (0: every core).
pub fn crypto_limit(votes: usize, votes_per_batch: usize, threads: usize) -> CryptoLimit {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let per_batch = votes_per_batch.max(2);
    let batches_per_thread = votes.div_ceil(per_batch * threads).max(1);
    let batch = Batch::new(per_batch);
    let watch = Stopwatch::start();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for _ in 0..batches_per_thread {
                    assert!(batch.run(), "the crypto-only batch verifies");
                }
            });
        }
    });
    let done = batches_per_thread * per_batch * threads;
    let (wall, cpu) = watch.elapsed();
    let (sign_us, verify_us, batch_us) = primitives_us(&batch);
    CryptoLimit {
        votes: done,
        votes_per_batch: per_batch,
        threads,
        votes_per_sec: done as f64 / wall.max(1e-9),
        cpu_secs_per_vote: cpu / done as f64,
        sign_us,
        verify_us,
        batch_verify_us_per_signature: batch_us,
    }
}

/// One core: microseconds per receipt signature, per strict verification of a token, and per
/// signature of a token batch.
fn primitives_us(batch: &Batch) -> (f64, f64, f64) {
    const N: usize = 200;
    let per_op_us = |n: usize, run: &dyn Fn()| {
        let started = std::time::Instant::now();
        run();
        started.elapsed().as_secs_f64() * 1e6 / n as f64
    };
    let sign = per_op_us(N, &|| {
        for _ in 0..N {
            std::hint::black_box(batch.edge.sign_message(&batch.receipt));
        }
    });
    let verify = per_op_us(N, &|| {
        for (token, signature) in batch.tokens.iter().zip(&batch.token_signatures).take(N) {
            let ok = batch.authority.verify_strict(token, signature).is_ok();
            std::hint::black_box(ok);
        }
    });
    let verify = verify * N as f64 / batch.tokens.len().min(N) as f64;
    let rounds = N.div_ceil(batch.tokens.len()).max(1);
    let batched = per_op_us(rounds * batch.tokens.len(), &|| {
        for _ in 0..rounds {
            std::hint::black_box(batch.verify_tokens());
        }
    });
    (sign, verify, batched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_run_reports_every_figure() {
        let limit = crypto_limit(16, 8, 2);
        assert_eq!(
            (limit.threads, limit.votes_per_batch, limit.votes),
            (2, 8, 16)
        );
        assert!(limit.votes_per_sec > 0.0 && limit.sign_us > 0.0 && limit.verify_us > 0.0);
    }

    #[test]
    fn filler_differs_by_seed() {
        assert_eq!(filler(10, 1).len(), 10);
        assert_ne!(filler(32, 1), filler(32, 2));
    }
}
