//! Keys, elections and signed envelopes for the collector tests.

use std::sync::Arc;
use std::time::Duration;

use edgevote_collector::config::ProcessingConfig;
use edgevote_collector::{Checker, Collector, CollectorParts};
use edgevote_queue::Queue;
use edgevote_shared::{
    Ballot, ElectionManifest, ElectionOption, EnvelopeVote, KeySet, Limits, Policy, QueueEnvelope,
    Role, SigningIdentity, VoteToken, b64, sign,
};
use edgevote_store::Store;

/// Election ids used by the suite.
pub const FIRST: &str = "first-wins";
/// An election counted last-vote-wins.
pub const LAST: &str = "last-wins";
/// A first-vote-wins election whose manifest allows [`CAPPED_LIMIT`] ballots per voter.
pub const CAPPED: &str = "capped";
/// `max_votes_per_voter` of [`CAPPED`].
pub const CAPPED_LIMIT: u32 = 2;

/// The edge the fixture's edge key is bound to, and its region.
pub const EDGE_ID: &str = "edge-t";
/// The region of [`EDGE_ID`].
pub const REGION: &str = "r1";

pub fn now_ms() -> u64 {
    edgevote_signer::clock::now_ms()
}

pub fn authority() -> SigningIdentity {
    SigningIdentity::from_seed(&[1; 32], Role::Authority)
}

pub fn edge() -> SigningIdentity {
    SigningIdentity::from_seed(&[2; 32], Role::Edge)
}

/// An edge key that is not in the key set.
pub fn rogue_edge() -> SigningIdentity {
    SigningIdentity::from_seed(&[66; 32], Role::Edge)
}

pub fn keyset() -> KeySet {
    KeySet::from_jwks(vec![
        authority().public_jwk(0),
        edge().public_jwk(0).bound_to(EDGE_ID, REGION),
    ])
    .unwrap()
}

pub fn manifest(id: &str, policy: Policy) -> ElectionManifest {
    let now = now_ms() / 1000;
    ElectionManifest {
        v: 1,
        id: id.into(),
        title: "Test".into(),
        options: ["yes", "no", "blank"]
            .iter()
            .map(|o| ElectionOption {
                id: (*o).into(),
                label: (*o).into(),
            })
            .collect(),
        opens_at: now - 60,
        closes_at: now + 3600,
        policy,
        limits: Limits::default(),
        created_at: now - 120,
    }
}

pub fn checker() -> Checker {
    let capped = ElectionManifest {
        limits: Limits {
            max_votes_per_voter: CAPPED_LIMIT,
            ..Limits::default()
        },
        ..manifest(CAPPED, Policy::FirstVoteWins)
    };
    Checker::new(
        keyset(),
        vec![
            manifest(FIRST, Policy::FirstVoteWins),
            manifest(LAST, Policy::LastVoteWins),
            capped,
        ],
        // The production default, so the catalogue attacks what ships.
        ProcessingConfig::default().verify_tokens,
    )
}

/// A ballot of `voter` for `choice`; `nonce_byte` distinguishes re-votes.
pub fn ballot(election: &str, voter: &str, choice: &str, nonce_byte: u8) -> Ballot {
    let now = now_ms() / 1000;
    let token = VoteToken {
        jti: format!("tok-{voter}"),
        sub: voter.into(),
        aud: election.into(),
        iat: now - 10,
        nbf: now - 10,
        exp: now + 3600,
    };
    Ballot {
        election: election.into(),
        token: sign(&authority(), &token).unwrap(),
        choice: choice.into(),
        nonce: b64::encode([nonce_byte; 16]),
    }
}

/// A signed envelope of `(ballot, received_at_ms)` pairs.
pub fn envelope_signed_by(
    signer: &SigningIdentity,
    batch: &str,
    votes: Vec<(Ballot, u64)>,
) -> String {
    let envelope = QueueEnvelope {
        v: 1,
        batch_id: batch.into(),
        edge: EDGE_ID.into(),
        region: REGION.into(),
        created_at_ms: now_ms(),
        votes: votes
            .into_iter()
            .map(|(ballot, received_at_ms)| EnvelopeVote {
                ballot,
                received_at_ms,
            })
            .collect(),
    };
    sign(signer, &envelope).unwrap()
}

pub fn envelope(batch: &str, votes: Vec<(Ballot, u64)>) -> String {
    envelope_signed_by(&edge(), batch, votes)
}

/// Processing settings for tests: short waits and visibility so redelivery is quick.
pub fn processing() -> ProcessingConfig {
    ProcessingConfig {
        receivers: 2,
        receive_batch_messages: 10,
        wait_time_secs: 1,
        visibility_timeout_secs: 2,
        max_in_flight_messages: 20,
        stats_interval_secs: 1,
        ..ProcessingConfig::default()
    }
}

pub fn collector(queue: Arc<dyn Queue>, store: Arc<dyn Store>) -> Arc<Collector> {
    collector_with(queue, store, processing())
}

/// A collector of region r1 with the test checker and these settings.
pub fn collector_with(
    queue: Arc<dyn Queue>,
    store: Arc<dyn Store>,
    processing: ProcessingConfig,
) -> Arc<Collector> {
    Collector::new(CollectorParts {
        region: "r1".into(),
        queue,
        store,
        checker: checker(),
        processing,
    })
    .unwrap()
}

/// Consecutive reads of an empty queue that [`drain`] takes as settled. One is not enough on
/// SQS: its counts are approximate and read one attribute at a time (moto reads "visible" and
/// "in flight" at two instants, so a deferred message whose visibility ends between them is in
/// neither, and a drain that stopped there left it unprocessed).
const EMPTY_READS: u32 = 3;

/// Runs `collector` until its queue has read as holding nothing visible or in flight
/// [`EMPTY_READS`] times in a row, 300 ms apart (or `limit` passes).
pub async fn drain(collector: &Arc<Collector>, limit: Duration) {
    let queue = Arc::clone(&collector.queue);
    let done = async move {
        let deadline = tokio::time::Instant::now() + limit;
        let mut empty_reads = 0;
        // Bounded wait: the queue must settle within `limit`.
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let stats = queue.stats().await.unwrap();
            let empty = stats.visible == 0 && stats.in_flight == 0;
            empty_reads = if empty { empty_reads + 1 } else { 0 };
            if empty_reads == EMPTY_READS {
                return;
            }
        }
        panic!("queue did not drain within {limit:?}");
    };
    Arc::clone(collector).run(done).await;
}
