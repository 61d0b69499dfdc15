//! Keys, an election, a store of ballots, their receipts and the log published from them.

use edgevote_audit::verify::{Inputs, ReceiptInput, TrustRoots};
use edgevote_audit::{LogFiles, LogKind, PublishError, PublishParams, Published, Report};
use edgevote_shared::cosignature::WitnessKey;
use edgevote_shared::{
    Digest32, ElectionManifest, ElectionOption, KeySet, Limits, Policy, Receipt, Role,
    SigningIdentity, sign,
};
use edgevote_store::embedded::EmbeddedStore;
use edgevote_store::{ElectionRules, Store, StoredBallot};

/// The election.
pub const ELECTION: &str = "ref-1";
/// The edge the edge key is bound to, and its region.
pub const EDGE: &str = "edge-a";
/// The region of [`EDGE`].
pub const REGION: &str = "r1";
/// Publication time, unix seconds: after the close.
pub const NOW: u64 = 1_800_000_000;

/// The fixture's key of `role`, one per role; the edge key is bound to [`EDGE`] in [`REGION`].
pub fn key(role: Role) -> SigningIdentity {
    let seed = match role {
        Role::Authority => 1,
        Role::Edge => 2,
        Role::Ops => 3,
        Role::Log => 4,
    };
    SigningIdentity::from_seed(&[seed; 32], role)
}

/// A key of `role` that is not in the key set.
pub fn rogue(role: Role) -> SigningIdentity {
    SigningIdentity::from_seed(&[99; 32], role)
}

/// The key set: the authority, edge and log keys.
pub fn keyset() -> KeySet {
    let edge = key(Role::Edge).public_jwk(0).bound_to(EDGE, REGION);
    let [authority, log] = [Role::Authority, Role::Log].map(|r| key(r).public_jwk(0));
    KeySet::from_jwks(vec![authority, edge, log]).unwrap()
}

fn option(id: &str, label: &str) -> ElectionOption {
    ElectionOption {
        id: id.into(),
        label: label.into(),
    }
}

/// A first-vote-wins election that closed before [`NOW`].
pub fn manifest() -> ElectionManifest {
    ElectionManifest {
        v: 1,
        id: ELECTION.into(),
        title: "Referendum".into(),
        options: vec![option("yes", "Yes"), option("no", "No")],
        opens_at: NOW - 7200,
        closes_at: NOW - 3600,
        policy: Policy::FirstVoteWins,
        limits: Limits::default(),
        created_at: NOW - 7300,
    }
}

/// The manifest as its authority signed it: what an auditor pins.
pub fn signed_manifest() -> String {
    sign(&key(Role::Authority), &manifest()).unwrap()
}

/// Which trust roots an auditor pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// The authority's key set.
    KeySet,
    /// The log key alone (its C2SP verifier key).
    LogKey,
    /// Nothing: the folder's keys only.
    Nothing,
}

/// A stored ballot of `voter` for `choice`, accepted at `received_at_ms`.
pub fn ballot(voter: &str, choice: &str, received_at_ms: u64) -> StoredBallot {
    StoredBallot {
        election: ELECTION.into(),
        voter: voter.into(),
        vote_id: Digest32::of(format!("{voter}/{choice}/{received_at_ms}").as_bytes()),
        choice: choice.into(),
        token_id: format!("tok-{voter}"),
        nonce: format!("nonce-{received_at_ms}"),
        received_at_ms,
        edge: EDGE.into(),
        region: REGION.into(),
        batch_id: format!("batch-{received_at_ms}"),
    }
}

/// The ballots of the fixture: v1 votes yes, v2 no, v3 yes then no (the first counts), v4 no.
pub fn ballots() -> Vec<StoredBallot> {
    let t = (NOW - 5000) * 1000;
    vec![
        ballot("v1", "yes", t),
        ballot("v2", "no", t + 1),
        ballot("v3", "yes", t + 2),
        ballot("v3", "no", t + 3),
        ballot("v4", "no", t + 4),
    ]
}

/// An in-memory store holding `ballots`.
pub async fn store(ballots: Vec<StoredBallot>) -> EmbeddedStore {
    let store = EmbeddedStore::in_memory().unwrap();
    store
        .record(&ElectionRules::of(&manifest()), REGION, ballots)
        .await
        .unwrap();
    store
}

/// The receipt an edge signed for `ballot`, as signed by `signer`.
pub fn receipt_signed_by(signer: &SigningIdentity, ballot: &StoredBallot) -> String {
    let receipt = Receipt {
        v: 1,
        election: ballot.election.clone(),
        vote_id: ballot.vote_id,
        token_id: ballot.token_id.clone(),
        edge: ballot.edge.clone(),
        region: ballot.region.clone(),
        received_at_ms: ballot.received_at_ms,
        bundle_sha256: None,
    };
    sign(signer, &receipt).unwrap()
}

/// The edge's receipt for `ballot`.
pub fn receipt(ballot: &StoredBallot) -> String {
    receipt_signed_by(&key(Role::Edge), ballot)
}

/// Publishes the log of `store` at `now_secs` with the fixture's election and keys.
pub async fn publish(
    store: &EmbeddedStore,
    now_secs: u64,
    before_close: bool,
) -> Result<Published, PublishError> {
    let (manifest, log_key, keys) = (manifest(), key(Role::Log), keyset());
    let params = PublishParams {
        manifest: &manifest,
        log_key: &log_key,
        keys: &keys,
        now_secs,
        before_close,
        incomplete: None,
    };
    edgevote_audit::publish(store, &params).await
}

/// The log of [`ballots`], published at [`NOW`].
pub async fn published() -> Published {
    publish(&store(ballots()).await, NOW, false).await.unwrap()
}

/// A published log's files by name, to tamper with.
#[derive(Debug, Clone)]
pub struct Files {
    pub tally: String,
    pub receipts_log: String,
    pub receipts_checkpoint: String,
    pub choices_log: String,
    pub choices_checkpoint: String,
    /// The folder's `keyset.json`, as published.
    pub keyset: KeySet,
}

impl Files {
    pub fn of(published: &Published) -> Self {
        Files::read_with(|name| published.file(name).unwrap().to_owned())
    }

    /// The files as `file` gives them by name (the key set parsed from `keyset.json`).
    pub fn read_with(file: impl Fn(&str) -> String) -> Self {
        Files {
            tally: file(edgevote_audit::TALLY_FILE),
            receipts_log: file(LogKind::Receipts.log_file()),
            receipts_checkpoint: file(LogKind::Receipts.checkpoint_file()),
            choices_log: file(LogKind::Choices.log_file()),
            choices_checkpoint: file(LogKind::Choices.checkpoint_file()),
            keyset: KeySet::parse(file(edgevote_audit::KEYSET_FILE).as_bytes()).unwrap(),
        }
    }

    /// Verifies these files and `receipts` with the fixture's key set pinned.
    pub fn verify(&self, receipts: &[&str]) -> Report {
        self.verify_pinned(Pin::KeySet, receipts)
    }

    /// Verifies these files and `receipts` with `pin` as the trust root.
    pub fn verify_pinned(&self, pin: Pin, receipts: &[&str]) -> Report {
        self.verify_witnessed(pin, receipts, &[], 0)
    }

    /// Verifies these files and `receipts` with `pin` as the trust root, requiring cosignatures
    /// by `min` distinct witnesses of `witnesses` on each checkpoint.
    pub fn verify_witnessed(
        &self,
        pin: Pin,
        receipts: &[&str],
        witnesses: &[WitnessKey],
        min: usize,
    ) -> Report {
        let names: Vec<String> = (0..receipts.len()).map(|i| format!("r{i}")).collect();
        let receipts: Vec<ReceiptInput<'_>> = names
            .iter()
            .zip(receipts)
            .map(|(name, compact)| ReceiptInput { name, compact })
            .collect();
        let (keys, manifest) = (keyset(), signed_manifest());
        let log_key = key(Role::Log).verifying_key();
        let trust = TrustRoots {
            manifest: &manifest,
            keyset: (pin == Pin::KeySet).then_some(&keys),
            log_key: (pin == Pin::LogKey).then_some(&log_key),
            witnesses,
            min_witnesses: min,
        };
        edgevote_audit::verify(&Inputs {
            files: LogFiles {
                tally: &self.tally,
                receipts_log: &self.receipts_log,
                receipts_checkpoint: &self.receipts_checkpoint,
                choices_log: &self.choices_log,
                choices_checkpoint: &self.choices_checkpoint,
            },
            folder_keys: &self.keyset,
            trust,
            receipts: &receipts,
        })
    }
}
