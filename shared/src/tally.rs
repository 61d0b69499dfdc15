//! The published tally: the exact result of an election, signed by the log key together with
//! the two log heads it was computed from (`typ` `edgevote-tally+jws`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest32;
use crate::error::WireError;
use crate::jws::Document;
use crate::keys::Role;
use crate::validate::check_id;

/// The signed result of an election.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedTally {
    /// Format version; 1.
    pub v: u32,
    /// Election id.
    pub election: String,
    /// Counted voters per choice.
    pub counts: BTreeMap<String, u64>,
    /// Distinct voters counted.
    pub voters: u64,
    /// Ballots stored (counted or superseded): the size of the receipts log.
    pub ballots: u64,
    /// Root of the receipts log (every stored vote id).
    pub receipts_root: Digest32,
    /// Root of the choices log (the counted choices).
    pub choices_root: Digest32,
    /// When the log key signed it, unix seconds.
    pub created_at: u64,
    /// Set when the tally was published although votes of the election were still pending
    /// (in a queue, a spill log or a dead-letter queue, or not yet replicated): what was
    /// pending. Such a tally is not the election's result, and verifying it says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
}

/// Longest description of what was pending in an incomplete tally.
pub const MAX_INCOMPLETE_BYTES: usize = 2048;

impl Document for PublishedTally {
    const NAME: &'static str = "published tally";
    const TYP: &'static str = "edgevote-tally+jws";
    const SIGNER: Role = Role::Log;
    const MAX_JWS_BYTES: usize = 64 * 1024;

    fn validate(&self) -> Result<(), WireError> {
        crate::validate::check_version(self.v)?;
        check_id("election", &self.election)?;
        if self.counts.len() > crate::manifest::MAX_OPTIONS {
            return Err(WireError::invalid(
                "counts",
                "more choices than an election has",
            ));
        }
        for choice in self.counts.keys() {
            check_id("counts", choice)?;
        }
        if self
            .incomplete
            .as_ref()
            .is_some_and(|why| why.is_empty() || why.len() > MAX_INCOMPLETE_BYTES)
        {
            return Err(WireError::invalid(
                "incomplete",
                "1..=2048 bytes saying what was pending",
            ));
        }
        // Checked: counts near u64::MAX must not wrap around to a matching total.
        let total = self
            .counts
            .values()
            .try_fold(0u64, |sum, &n| sum.checked_add(n));
        if total != Some(self.voters) {
            return Err(WireError::invalid(
                "counts",
                "counts do not add up to voters",
            ));
        }
        Ok(())
    }

    fn signed_at_secs(&self) -> u64 {
        self.created_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_that_overflow_are_refused() {
        let tally = PublishedTally {
            v: 1,
            election: "e1".into(),
            counts: BTreeMap::from([("yes".into(), u64::MAX), ("no".into(), 1)]),
            voters: 0,
            ballots: 1,
            receipts_root: Digest32::of(b"r"),
            choices_root: Digest32::of(b"c"),
            created_at: 1,
            incomplete: None,
        };
        assert_eq!(tally.validate().unwrap_err().code(), "invalid_field");
    }
}
