//! What an auditor checks of witnesses: each checkpoint carries valid cosignatures by at least
//! k distinct pinned witnesses ([`check_witnesses`], `too_few_witnesses`), and two checkpoints of
//! one log agree ([`compare_cosigned`], `split_view`). Pure: no I/O, no clock.

use ed25519_dalek::VerifyingKey;
use edgevote_shared::checkpoint::Checkpoint;
use edgevote_shared::cosignature::{WitnessKey, verify_cosignature};

use crate::LogKind;
use crate::verify::{Failure, LogFiles, TrustRoots, code as verify_code};
use crate::witness::code;

/// The number of distinct pinned witnesses (by public key) with a valid cosignature on `note`.
pub fn count_cosigners(note: &str, witnesses: &[WitnessKey]) -> usize {
    let mut keys: Vec<[u8; 32]> = witnesses
        .iter()
        .filter(|w| verify_cosignature(note, w).is_ok())
        .map(|w| w.key.to_bytes())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys.len()
}

/// Requires both checkpoints of `files` to be cosigned by at least `trust.min_witnesses`
/// distinct witnesses of `trust.witnesses` (nothing when the minimum is 0).
pub fn check_witnesses(files: &LogFiles<'_>, trust: &TrustRoots<'_>) -> Result<(), Failure> {
    if trust.min_witnesses == 0 {
        return Ok(());
    }
    let checkpoints = [
        (LogKind::Receipts, files.receipts_checkpoint),
        (LogKind::Choices, files.choices_checkpoint),
    ];
    for (kind, note) in checkpoints {
        let cosigners = count_cosigners(note, trust.witnesses);
        if cosigners < trust.min_witnesses {
            return Err(Failure::new(
                kind.checkpoint_file(),
                code::TOO_FEW_WITNESSES,
                format!(
                    "cosigned by {cosigners} of the {} pinned witnesses, {} required",
                    trust.witnesses.len(),
                    trust.min_witnesses
                ),
            ));
        }
    }
    Ok(())
}

/// Compares two checkpoints of the `kind` log, both signed by the log key `log_key` (cosigned or
/// not): the same size must have the same root. Two roots for one size are proof that the log
/// showed two histories (`split_view`). Checkpoints of different sizes are not compared here
/// (that needs a consistency proof).
pub fn compare_cosigned(
    kind: LogKind,
    first: &str,
    second: &str,
    log_key: &VerifyingKey,
) -> Result<(), Failure> {
    let file = kind.checkpoint_file();
    let verify =
        |note: &str| Checkpoint::verify(note, log_key).map_err(|e| Failure::refused(file, &e));
    let (a, b) = (verify(first)?, verify(second)?);
    if a.origin != b.origin {
        return Err(Failure::new(
            file,
            verify_code::BAD_ORIGIN,
            format!(
                "two logs, {:?} and {:?}: nothing to compare",
                a.origin, b.origin
            ),
        ));
    }
    if a.size == b.size && a.root != b.root {
        return Err(Failure::new(
            file,
            code::SPLIT_VIEW,
            format!(
                "the log signed two different roots for {} at size {}",
                a.origin, a.size
            ),
        ));
    }
    Ok(())
}
