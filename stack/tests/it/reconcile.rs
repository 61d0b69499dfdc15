//! `reconcile` over receipts and regions built by hand: each region is a real collector's HTTP
//! server over an embedded store holding exactly the ballots a test puts there.

use std::sync::Arc;
use std::time::Duration;

use edgevote_queue::embedded::{EmbeddedQueue, EmbeddedQueueConfig};
use edgevote_shared::{
    Digest32, ElectionManifest, ElectionOption, KeySet, Limits, Policy, Receipt, Role, b64,
};
use edgevote_signer::KeyStore;
use edgevote_stack::load::KeptReceipt;
use edgevote_stack::reconcile::{self, ReconcileOptions, Reconciliation};
use edgevote_stack::{RegionInfo, StackError, StackInfo};
use edgevote_store::embedded::{EmbeddedStore, EmbeddedStoreConfig};
use edgevote_store::{ElectionRules, Store, StoredBallot};

const AUDITOR_TOKEN: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// A ballot of voter `voter` with vote id `[n; 32]`.
#[derive(Clone, Copy)]
struct Vote {
    voter: &'static str,
    choice: &'static str,
    at_ms: u64,
    n: u8,
}

const fn vote(voter: &'static str, choice: &'static str, at_ms: u64, n: u8) -> Vote {
    Vote {
        voter,
        choice,
        at_ms,
        n,
    }
}

fn vote_id(n: u8) -> Digest32 {
    Digest32([n; 32])
}

struct Fixture {
    dir: tempfile::TempDir,
    manifest: ElectionManifest,
    keys: KeySet,
    edge: edgevote_shared::SigningIdentity,
}

impl Fixture {
    fn new(policy: Policy) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open_or_create(dir.path().join("keys")).unwrap();
        store.generate(Role::Authority, 1).unwrap();
        store.generate_edge("edge-1", "r1", 1).unwrap();
        let manifest = ElectionManifest {
            v: 1,
            id: "e".into(),
            title: "t".into(),
            options: ["yes", "no"]
                .map(|o| ElectionOption {
                    id: o.into(),
                    label: o.into(),
                })
                .to_vec(),
            opens_at: 1,
            closes_at: 4_000_000_000,
            policy,
            limits: Limits::default(),
            created_at: 1,
        };
        Fixture {
            keys: store.keyset().unwrap(),
            edge: store.edge_identity("edge-1", "r1").unwrap(),
            dir,
            manifest,
        }
    }

    /// A region whose store holds exactly `votes`, served by a collector; its base URL.
    async fn region(&self, name: &str, votes: &[Vote]) -> RegionInfo {
        let path = |file: &str| self.dir.path().join(format!("{name}-{file}"));
        let store = Arc::new(
            EmbeddedStore::open(&EmbeddedStoreConfig {
                path: path("store.redb"),
            })
            .unwrap(),
        );
        let ballots = votes
            .iter()
            .map(|v| StoredBallot {
                election: "e".into(),
                voter: v.voter.into(),
                vote_id: vote_id(v.n),
                choice: v.choice.into(),
                token_id: format!("t-{}", v.voter),
                nonce: b64::encode([v.n; 16]),
                received_at_ms: v.at_ms,
                edge: "edge-1".into(),
                region: "r1".into(),
                batch_id: "b".into(),
            })
            .collect();
        store
            .record(&ElectionRules::of(&self.manifest), "r1", ballots)
            .await
            .unwrap();
        let queue = Arc::new(
            EmbeddedQueue::open(&EmbeddedQueueConfig {
                path: path("queue.redb"),
                max_receives: 5,
            })
            .unwrap(),
        );
        let collector =
            edgevote_collector::Collector::new(edgevote_collector::service::CollectorParts {
                region: name.into(),
                queue,
                store,
                checker: edgevote_collector::Checker::new(
                    self.keys.clone(),
                    vec![self.manifest.clone()],
                    false,
                ),
                processing: edgevote_collector::config::ProcessingConfig::default(),
            })
            .unwrap();
        let options = edgevote_collector::http::HttpOptions::default()
            .with_auditor_token(AUDITOR_TOKEN)
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(edgevote_collector::http::serve(
            listener,
            edgevote_collector::http::router_with(collector, options),
            std::future::pending(),
        ));
        RegionInfo {
            name: name.into(),
            edge_url: "http://127.0.0.1:9".into(),
            collector_url: url,
        }
    }

    /// The receipt an honest edge signs for `v`, as the load generator keeps it.
    fn receipt(&self, v: &Vote) -> KeptReceipt {
        let receipt = Receipt {
            v: 1,
            election: "e".into(),
            vote_id: vote_id(v.n),
            token_id: format!("t-{}", v.voter),
            edge: "edge-1".into(),
            region: "r1".into(),
            received_at_ms: v.at_ms,
            bundle_sha256: None,
        };
        KeptReceipt {
            voter: v.voter.into(),
            choice: v.choice.into(),
            compact: edgevote_shared::sign(&self.edge, &receipt).unwrap(),
            receipt,
        }
    }

    async fn reconcile(
        &self,
        regions: Vec<RegionInfo>,
        kept: &[KeptReceipt],
        token: &str,
    ) -> Result<Reconciliation, StackError> {
        let stack = StackInfo {
            election: "e".into(),
            keys_dir: self.dir.path().join("keys"),
            election_path: self.dir.path().join("election.jws"),
            aws: None,
            regions,
        };
        let expected = reconcile::expected(&self.manifest, &self.keys, kept);
        let options = ReconcileOptions {
            settle_timeout: Duration::from_millis(600),
            poll_interval: Duration::from_millis(50),
        };
        reconcile::reconcile(&stack, "e", kept, &expected, token, options, |_| {}).await
    }
}

/// v1 votes yes, then re-votes no (counted under last-vote-wins); v2 votes yes.
const V1_YES: Vote = vote("v1", "yes", 10_000, 1);
const V1_NO: Vote = vote("v1", "no", 20_000, 2);
const V2_YES: Vote = vote("v2", "yes", 15_000, 3);

/// Receipts found stored through the public per-receipt lookup, and the counted tally of a
/// last-vote-wins election (which that lookup never reveals) through the auditor's listing with
/// the token; without the right token the reconciliation fails instead of guessing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_reads_the_lookup_and_the_auditor_listing() {
    let f = Fixture::new(Policy::LastVoteWins);
    let votes = [V1_YES, V1_NO, V2_YES];
    let regions = vec![f.region("r1", &votes).await, f.region("r2", &votes).await];
    let kept: Vec<KeptReceipt> = votes.iter().map(|v| f.receipt(v)).collect();

    let expected = reconcile::expected(&f.manifest, &f.keys, &kept);
    assert_eq!(
        (expected.ballots, expected.voters, expected.invalid),
        (3, 2, 0)
    );
    assert_eq!(
        expected.counts,
        [("no".to_owned(), 1), ("yes".to_owned(), 1)].into()
    );
    let result = f
        .reconcile(regions.clone(), &kept, AUDITOR_TOKEN)
        .await
        .unwrap();
    assert!(result.ok, "{result:?}");
    for region in &result.regions {
        assert_eq!((region.stored, region.counted), (3, 2), "{region:?}");
        assert_eq!(region.tally, expected.counts);
    }

    let refused = f
        .reconcile(regions, &kept, &"b".repeat(40))
        .await
        .expect_err("a wrong token must not reconcile");
    assert!(refused.to_string().contains("401"), "{refused}");
}

/// A receipt whose vote is in no region (an edge acknowledged a re-vote and lost it) is
/// reported with its voter and vote id. Under first-vote-wins that ballot would not count, so
/// every region's counted voters and tally are exactly the expected ones: only the per-receipt
/// lookup catches the loss, and it must.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_stored_nowhere_fails_the_reconciliation() {
    let f = Fixture::new(Policy::FirstVoteWins);
    let stored = [V1_YES, V1_NO, V2_YES];
    let lost = vote("v2", "no", 25_000, 4);
    let regions = vec![f.region("r1", &stored).await, f.region("r2", &stored).await];
    let mut kept: Vec<KeptReceipt> = stored.iter().map(|v| f.receipt(v)).collect();
    kept.push(f.receipt(&lost));

    let result = f.reconcile(regions, &kept, AUDITOR_TOKEN).await.unwrap();
    assert!(!result.ok, "a lost vote passed: {result:?}");
    for region in &result.regions {
        assert!(!region.ok, "{region:?}");
        assert_eq!((region.stored, region.counted), (3, 2));
        assert_eq!(region.tally, [("yes".to_owned(), 2)].into());
        assert_eq!(
            region.not_stored,
            vec![("v2".to_owned(), vote_id(4).to_b64())]
        );
    }
}

/// A region missing one receipt's vote fails alone; a region counting a ballot no receipt
/// names (one injected before the voter's own, under first-vote-wins) stores every receipt's
/// vote and still fails, on the counted voters and the tally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_counting_another_ballot_than_the_receipts_fails() {
    let f = Fixture::new(Policy::FirstVoteWins);
    let own = vote("v1", "no", 20_000, 2);
    let injected = vote("v1", "yes", 10_000, 1);
    let regions = vec![
        f.region("honest", &[own]).await,
        f.region("injected", &[injected, vote("v1", "no", 20_000, 2)])
            .await,
        f.region("empty", &[]).await,
    ];
    let kept = vec![f.receipt(&own)];

    let result = f.reconcile(regions, &kept, AUDITOR_TOKEN).await.unwrap();
    assert!(!result.ok);
    let [honest, injected, empty] = &result.regions[..] else {
        panic!("three regions: {result:?}");
    };
    assert!(honest.ok, "{honest:?}");
    assert!(!injected.ok, "{injected:?}");
    assert_eq!((injected.stored, injected.counted), (1, 0));
    assert!(injected.not_stored.is_empty());
    assert!(!empty.ok, "{empty:?}");
    assert_eq!(empty.stored, 0);
}

/// A receipt whose signature does not verify fails the reconciliation even when every region
/// agrees with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverifiable_receipt_fails_the_reconciliation() {
    let f = Fixture::new(Policy::FirstVoteWins);
    let votes = [V2_YES];
    let regions = vec![f.region("r1", &votes).await];
    let mut kept = vec![f.receipt(&V2_YES)];
    kept[0].compact.push('x');
    let result = f.reconcile(regions, &kept, AUDITOR_TOKEN).await.unwrap();
    assert!(result.regions[0].ok, "{result:?}");
    assert!(!result.ok, "an invalid receipt passed");
}
