//! The queue envelope: one queue message carrying a batch of accepted ballots, signed by the
//! edge (`typ` `edgevote-envelope+jws`). Packing many ballots per message cuts queue requests
//! per vote; the signature lets a collector refuse forged or corrupted messages.

use serde::{Deserialize, Serialize};

use crate::ballot::Ballot;
use crate::error::WireError;
use crate::jws::Document;
use crate::keys::Role;
use crate::validate::check_id;

/// Most ballots in one envelope.
pub const MAX_ENVELOPE_VOTES: usize = 256;
/// Longest envelope (compact JWS) in bytes: 192 KiB, safely inside the classic 256 KiB SQS
/// message limit (edges pack by this bound; collectors refuse anything larger).
pub const MAX_ENVELOPE_JWS_BYTES: usize = 192 * 1024;

/// One accepted ballot inside an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeVote {
    /// The ballot as the voter sent it (with its token, so a collector can re-check it).
    pub ballot: Ballot,
    /// Edge timestamp of acceptance, unix milliseconds (the same as in the receipt).
    pub received_at_ms: u64,
}

/// A batch of ballots from one edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueEnvelope {
    /// Format version; 1.
    pub v: u32,
    /// Unique id of this batch (edge id + sequence); a re-sent batch keeps its id.
    pub batch_id: String,
    /// Id of the edge that packed it.
    pub edge: String,
    /// Region of that edge.
    pub region: String,
    /// When the batch was sealed, unix milliseconds.
    pub created_at_ms: u64,
    /// The ballots, 1..=[`MAX_ENVELOPE_VOTES`].
    pub votes: Vec<EnvelopeVote>,
}

impl Document for QueueEnvelope {
    const NAME: &'static str = "queue envelope";
    const TYP: &'static str = "edgevote-envelope+jws";
    const SIGNER: Role = Role::Edge;
    const MAX_JWS_BYTES: usize = MAX_ENVELOPE_JWS_BYTES;

    fn validate(&self) -> Result<(), WireError> {
        crate::validate::check_version(self.v)?;
        check_id("batch_id", &self.batch_id)?;
        check_id("edge", &self.edge)?;
        check_id("region", &self.region)?;
        if self.votes.is_empty() || self.votes.len() > MAX_ENVELOPE_VOTES {
            return Err(WireError::invalid(
                "votes",
                format!(
                    "{} ballots, expected 1..={MAX_ENVELOPE_VOTES}",
                    self.votes.len()
                ),
            ));
        }
        self.votes.iter().try_for_each(|v| v.ballot.validate())
    }

    fn signed_at_secs(&self) -> u64 {
        self.created_at_ms / 1000
    }

    fn signing_edge(&self) -> Option<(&str, &str)> {
        Some((&self.edge, &self.region))
    }
}
