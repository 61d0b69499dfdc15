//! Issuing signed documents: vote tokens (one or millions), election manifests, receipts.

use edgevote_shared::{
    AdmittedBallot, ElectionManifest, Receipt, SigningIdentity, VoteToken, WireError, sign,
};

use crate::error::SignerError;
use crate::random;

/// How a token's validity window is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenWindow {
    /// Issued at, unix seconds.
    pub issued_at: u64,
    /// Not valid before, unix seconds.
    pub not_before: u64,
    /// Expires at, unix seconds.
    pub expires_at: u64,
}

impl TokenWindow {
    /// Valid from now until the election closes.
    pub fn for_election(manifest: &ElectionManifest, now_secs: u64) -> Self {
        TokenWindow {
            issued_at: now_secs,
            not_before: now_secs.min(manifest.opens_at),
            expires_at: manifest.closes_at.max(now_secs + 1),
        }
    }
}

/// Issues one vote token for `voter_ref` (random when `None`) with a random token id.
pub fn issue_token(
    authority: &SigningIdentity,
    manifest: &ElectionManifest,
    voter_ref: Option<&str>,
    window: TokenWindow,
) -> Result<String, SignerError> {
    let voter = match voter_ref {
        Some(v) => v.to_owned(),
        None => random::id()?,
    };
    let claims = VoteToken {
        jti: random::id()?,
        sub: voter,
        aud: manifest.id.clone(),
        iat: window.issued_at,
        nbf: window.not_before,
        exp: window.expires_at,
    };
    Ok(sign(authority, &claims)?)
}

/// Issues `count` tokens for random voters on `threads` threads, calling `sink` with each batch
/// (at most `batch` tokens) in whatever order they finish. Memory stays bounded by
/// `threads * batch` tokens whatever `count` is.
pub fn issue_tokens<F>(
    authority: &SigningIdentity,
    manifest: &ElectionManifest,
    window: TokenWindow,
    count: u64,
    threads: usize,
    mut sink: F,
) -> Result<(), SignerError>
where
    F: FnMut(Vec<String>) -> Result<(), SignerError>,
{
    const BATCH: u64 = 1024;
    let threads = threads.clamp(1, 64);
    let next = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<String>, SignerError>>(threads);
        for _ in 0..threads {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || {
                loop {
                    let start = next.fetch_add(BATCH, std::sync::atomic::Ordering::Relaxed);
                    if start >= count {
                        return;
                    }
                    let n = BATCH.min(count - start);
                    let batch = (0..n)
                        .map(|_| issue_token(authority, manifest, None, window))
                        .collect::<Result<Vec<_>, _>>();
                    let failed = batch.is_err();
                    if tx.send(batch).is_err() || failed {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut outcome = Ok(());
        for batch in rx {
            if outcome.is_ok() {
                outcome = batch.and_then(&mut sink);
            }
            if outcome.is_err() {
                // Stop the workers: they see the counter exhausted on their next batch.
                next.store(count, std::sync::atomic::Ordering::Relaxed);
            }
        }
        outcome
    })
}

/// Signs the receipt for an admitted ballot: what an edge returns once the ballot is durable.
pub fn sign_receipt(
    edge: &SigningIdentity,
    admitted: &AdmittedBallot,
    edge_id: &str,
    region: &str,
    received_at_ms: u64,
) -> Result<(Receipt, String), WireError> {
    let receipt = admitted.receipt(edge_id, region, received_at_ms);
    let compact = sign(edge, &receipt)?;
    Ok((receipt, compact))
}
