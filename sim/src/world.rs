//! One simulated run: 3 regions (edge, queue, collector, store), replication links, voters,
//! an attacker, and faults, all driven step by step from one seed.
//!
//! Each step is one atomic action chosen by the seeded generator: a voter submits a ballot to
//! an edge; an edge group-commits its buffered votes to its queue and answers; a collector
//! receives a batch and processes it (the real `Collector::process`); a replication link ships
//! a round; time passes; a fault starts; an attacker writes to a queue. Concurrency is the
//! interleaving of these steps, so every interleaving a seed produces replays exactly.
//!
//! After the chaos phase every fault heals and the world runs until quiescent: every voter
//! holds a receipt for each ballot, every queue is empty and every link has shipped everything.
//! Then [`crate::check`] tests the invariants.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use edgevote_collector::config::ProcessingConfig;
use edgevote_collector::{Checker, Collector, CollectorParts};
use edgevote_edge_core::commit::{
    Batch, CommitBounds, Item, MIN_MESSAGE_BYTES, Sealed, SealedVote, VoteRefused,
};
use edgevote_edge_core::{Accepted, Edge, Outcome, Request, Sealing, ServedElection};
use edgevote_queue::Queue;
use edgevote_shared::{
    Ballot, Digest32, ElectionManifest, ElectionOption, EnvelopeVote, KeySet, Limits, Policy,
    QueueEnvelope, Role, SigningIdentity, VoteToken, b64, message, sign,
};
use edgevote_store::{ElectionRules, Store};

use crate::check::{self, Violation, ViolationKind};
use crate::queue::{QueueFaults, SimQueue};
use crate::rng::{Clock, Rng};
use crate::store::{Design, FaultyStore, Regions, StoreFaults};

mod attack;
mod edges;
mod faults;

use edges::Waiting;

/// The election every run votes in.
pub const ELECTION: &str = "sim-election";
/// Virtual time at the start of every run (unix ms).
const START_MS: u64 = 1_900_000_000_000;
/// The collector's visibility timeout, in virtual seconds.
const VISIBILITY_SECS: u64 = 2;
/// Largest `max_message_bytes` a run draws. Half the runs draw at most twice the smallest
/// bound, where a few waiting votes fill a message (one vote's envelope is about 1.3 KB), so
/// that the byte bound closes messages and carries votes into the next.
const MAX_DRAWN_MESSAGE_BYTES: u64 = 24 * 1024;
/// Options of the election.
const OPTIONS: [&str; 3] = ["yes", "no", "blank"];

/// Settings of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimConfig {
    /// Regions (each: one edge, one queue, one collector, one store).
    pub regions: usize,
    /// Voters.
    pub voters: usize,
    /// Steps of the chaos phase.
    pub chaos_steps: usize,
    /// Chance per step, per mille, that a fault starts.
    pub fault_per_mille: u32,
    /// Chance per step, per mille, that the attacker writes a forged message.
    pub attack_per_mille: u32,
    /// Most rounds of the healing phase before the run is declared stuck.
    pub max_heal_rounds: usize,
    /// Which store design.
    pub design: Design,
    /// Keep every event of the run as text (for `--seed N --trace`).
    pub keep_trace: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            regions: 3,
            voters: 36,
            chaos_steps: 500,
            fault_per_mille: 60,
            attack_per_mille: 15,
            max_heal_rounds: 200,
            design: Design::Real,
            keep_trace: false,
        }
    }
}

/// What a run did: the counts a summary adds up over many runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Steps taken (chaos and healing).
    pub steps: u64,
    /// Ballots voters meant to cast.
    pub ballots: u64,
    /// Submissions to edges (first tries, retries, resubmissions).
    pub submissions: u64,
    /// Receipts voters hold.
    pub receipts: u64,
    /// Receipts checked against stores (receipts × regions).
    pub votes_checked: u64,
    /// Queue messages sent by edges.
    pub messages_sent: u64,
    /// Deliveries to collectors.
    pub deliveries: u64,
    /// Deliveries of messages delivered before.
    pub redeliveries: u64,
    /// Forged messages the attacker wrote.
    pub forged: u64,
    /// Messages dead-lettered.
    pub dead_lettered: u64,
    /// Group commits closed by the vote bound with votes still waiting.
    pub cut_by_votes: u64,
    /// Group commits closed by a byte bound: the vote that did not fit was carried into the
    /// next message.
    pub cut_by_bytes: u64,
}

impl Counts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &Counts) {
        let fields = [
            (&mut self.steps, other.steps),
            (&mut self.ballots, other.ballots),
            (&mut self.submissions, other.submissions),
            (&mut self.receipts, other.receipts),
            (&mut self.votes_checked, other.votes_checked),
            (&mut self.messages_sent, other.messages_sent),
            (&mut self.deliveries, other.deliveries),
            (&mut self.redeliveries, other.redeliveries),
            (&mut self.forged, other.forged),
            (&mut self.dead_lettered, other.dead_lettered),
            (&mut self.cut_by_votes, other.cut_by_votes),
            (&mut self.cut_by_bytes, other.cut_by_bytes),
        ];
        for (total, n) in fields {
            *total += n;
        }
    }
}

/// What a run did and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Counting policy drawn for this run.
    pub last_vote_wins: bool,
    /// Whether the edges sealed in their host (even seeds) or in the component (odd seeds).
    pub host_sealing: bool,
    /// What it did.
    pub counts: Counts,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Invariant violations.
    pub violations: Vec<Violation>,
    /// Digest of every event, in order: equal digests mean identical runs.
    pub trace_digest: u64,
    /// The events, when `keep_trace` was set.
    pub trace: Vec<String>,
}

/// Runs one seed to completion and checks it.
pub fn run_seed(config: &SimConfig, seed: u64) -> Report {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime always builds");
    runtime.block_on(async {
        let mut world = World::new(*config, seed);
        world.run().await;
        world.finish().await
    })
}

/// A voter's ballot and where it stands.
struct Planned {
    sub: String,
    body: Vec<u8>,
    home: usize,
    ready_at_ms: u64,
    state: PlanState,
    /// Will send the same ballot once more after its receipt (a client that did not see it).
    resubmit: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PlanState {
    Waiting,
    AtEdge,
    Done,
    Refused,
}

struct EdgeNode {
    /// The native edge: the whole edge under local sealing, the host's sealer under host
    /// sealing.
    edge: Edge,
    /// Under host sealing, the keyless edge the component runs.
    keyless: Option<Edge>,
    skew_ms: i64,
    /// Votes waiting for the edge's group commit, oldest first.
    buffer: VecDeque<Waiting>,
    crash_before_enqueue: bool,
    crash_after_enqueue: bool,
}

/// A fault in effect until a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    LinkPartition(usize, usize),
    ReplicationDelay(usize, usize),
    StorePartition(usize),
    QueueDown(usize),
    DuplicateDelivery(usize),
    LostDeletes(usize),
    CollectorDown(usize),
}

/// Everything in a run.
pub(crate) struct World {
    config: SimConfig,
    seed: u64,
    rng: Rng,
    clock: Clock,
    step: u64,
    pub(crate) names: Vec<String>,
    pub(crate) rules: ElectionRules,
    pub(crate) keys: KeySet,
    edges: Vec<EdgeNode>,
    /// The edges' group-commit bounds, drawn per run.
    bounds: CommitBounds,
    cut_by_votes: u64,
    cut_by_bytes: u64,
    pub(crate) queues: Vec<Arc<SimQueue>>,
    stores: Vec<Arc<FaultyStore>>,
    collectors: Vec<Arc<Collector>>,
    pub(crate) regions: Regions,
    plans: Vec<Planned>,
    /// Every copy of a vote that reached a queue: (voter, vote id) → (earliest edge time, choice).
    pub(crate) enqueued: BTreeMap<(String, Digest32), (u64, String)>,
    /// Receipts voters hold (compact JWS) with the voter's pseudonym.
    pub(crate) receipts: Vec<(String, String)>,
    /// Bodies the attacker wrote.
    pub(crate) forged: BTreeSet<String>,
    active: Vec<(Fault, u64)>,
    pending_crash_before_store: Vec<bool>,
    faults_injected: BTreeMap<&'static str, u64>,
    pub(crate) violations: Vec<Violation>,
    submissions: u64,
    ghosts: u64,
    trace_digest: u64,
    trace: Vec<String>,
    authority: SigningIdentity,
    rogue: SigningIdentity,
}

fn region_name(i: usize) -> String {
    format!("r{i}")
}

fn manifest(policy: Policy) -> ElectionManifest {
    let start = START_MS / 1000;
    ElectionManifest {
        v: 1,
        id: ELECTION.into(),
        title: "Simulated election".into(),
        options: OPTIONS
            .iter()
            .map(|o| ElectionOption {
                id: (*o).into(),
                label: (*o).into(),
            })
            .collect(),
        opens_at: start - 3600,
        closes_at: start + 7 * 86_400,
        policy,
        limits: Limits::default(),
        created_at: start - 7200,
    }
}

/// The key of region `i`'s edge.
fn edge_identity(i: usize) -> SigningIdentity {
    SigningIdentity::from_seed(&[20 + i as u8; 32], Role::Edge)
}

fn token(authority: &SigningIdentity, sub: &str, election: &str) -> String {
    let now = START_MS / 1000;
    let token = VoteToken {
        jti: format!("jti-{sub}"),
        sub: sub.into(),
        aud: election.into(),
        iat: now - 600,
        nbf: now - 600,
        exp: now + 7 * 86_400,
    };
    sign(authority, &token).expect("test tokens sign")
}

impl World {
    fn new(config: SimConfig, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let clock = Clock::starting_at(START_MS);
        let policy = if rng.chance(500) {
            Policy::LastVoteWins
        } else {
            Policy::FirstVoteWins
        };
        let manifest = manifest(policy);
        let authority = SigningIdentity::from_seed(&[11; 32], Role::Authority);
        let edge_ids: Vec<SigningIdentity> = (0..config.regions).map(edge_identity).collect();
        let mut jwks = vec![authority.public_jwk(0)];
        // Each edge key is bound to its own edge and region, as a production key set binds them.
        jwks.extend(edge_ids.iter().enumerate().map(|(i, e)| {
            let region = region_name(i);
            e.public_jwk(0).bound_to(&format!("edge-{region}"), &region)
        }));
        let keys = KeySet::from_jwks(jwks).expect("distinct simulation keys");
        let names: Vec<String> = (0..config.regions).map(region_name).collect();
        let signed = sign(&authority, &manifest).expect("manifest signs");
        let regions = Regions::new(config.design, &names).expect("in-memory stores open");
        let bounds = CommitBounds {
            max_votes: rng.between(1, 48) as usize,
            max_message_bytes: if rng.chance(500) {
                rng.between(MIN_MESSAGE_BYTES as u64, 2 * MIN_MESSAGE_BYTES as u64) as usize
            } else {
                rng.between(MIN_MESSAGE_BYTES as u64, MAX_DRAWN_MESSAGE_BYTES) as usize
            },
        };
        let mut world = World {
            config,
            seed,
            clock: clock.clone(),
            step: 0,
            rules: ElectionRules::of(&manifest),
            edges: Vec::new(),
            bounds,
            cut_by_votes: 0,
            cut_by_bytes: 0,
            queues: Vec::new(),
            stores: Vec::new(),
            collectors: Vec::new(),
            regions,
            plans: Vec::new(),
            enqueued: BTreeMap::new(),
            receipts: Vec::new(),
            forged: BTreeSet::new(),
            active: Vec::new(),
            pending_crash_before_store: vec![false; config.regions],
            faults_injected: BTreeMap::new(),
            violations: Vec::new(),
            submissions: 0,
            ghosts: 0,
            trace_digest: 0xcbf2_9ce4_8422_2325,
            trace: Vec::new(),
            rogue: SigningIdentity::from_seed(&[99; 32], Role::Edge),
            authority,
            keys,
            names,
            rng: Rng::new(0),
        };
        for (i, identity) in edge_ids.into_iter().enumerate() {
            let served = ServedElection {
                manifest: manifest.clone(),
                signed: signed.clone(),
            };
            let name = &world.names[i];
            let edge_id = format!("edge-{name}");
            let keyless = world.host_sealing().then(|| {
                let served = vec![served.clone()];
                Edge::with_sealing(
                    served,
                    world.keys.clone(),
                    Sealing::Host,
                    &edge_id,
                    name,
                    None,
                )
            });
            let edge = Edge::new(
                vec![served],
                world.keys.clone(),
                identity,
                &edge_id,
                name,
                None,
            );
            world.edges.push(EdgeNode {
                edge,
                keyless,
                skew_ms: rng.between(0, 4000) as i64 - 2000,
                buffer: VecDeque::new(),
                crash_before_enqueue: false,
                crash_after_enqueue: false,
            });
            let queue = Arc::new(SimQueue::new(clock.clone(), rng.fork()));
            let store = Arc::new(FaultyStore::new(world.regions.store(i)));
            let checker = Checker::new(
                world.keys.clone(),
                vec![manifest.clone()],
                processing().verify_tokens,
            );
            let collector = Collector::new(CollectorParts {
                region: name.clone(),
                queue: Arc::clone(&queue) as Arc<dyn Queue>,
                store: Arc::clone(&store) as Arc<dyn Store>,
                checker,
                processing: processing(),
            })
            .expect("the simulation's processing settings are valid");
            world.collectors.push(collector);
            world.queues.push(queue);
            world.stores.push(store);
        }
        world.rng = rng;
        world.plan_voters();
        world
    }

    /// Draws each voter's behaviour: most vote once; some re-vote later, some race two
    /// different ballots into two regions at once, some send the same ballot twice.
    fn plan_voters(&mut self) {
        for v in 0..self.config.voters {
            let sub = format!("voter-{v:04}");
            let token = token(&self.authority, &sub, ELECTION);
            let home = self.rng.index(self.config.regions);
            let first_at = START_MS + self.rng.below(20_000);
            let kind = self.rng.below(100);
            let mut ballots = vec![(home, first_at)];
            if kind < 10 {
                // re-vote a few seconds later, anywhere
                let region = self.rng.index(self.config.regions);
                ballots.push((region, first_at + self.rng.between(500, 8000)));
            } else if kind < 20 {
                // two ballots at the same moment in two regions
                ballots.push(((home + 1) % self.config.regions, first_at));
            }
            let resubmit = kind >= 90;
            for (region, at) in ballots {
                let ballot = Ballot {
                    election: ELECTION.into(),
                    token: token.clone(),
                    choice: OPTIONS[self.rng.index(OPTIONS.len())].into(),
                    nonce: b64::encode(self.rng.next_u64().to_le_bytes().repeat(2)),
                };
                self.plans.push(Planned {
                    sub: sub.clone(),
                    body: serde_json::to_vec(&ballot).expect("ballots serialize"),
                    home: region,
                    ready_at_ms: at,
                    state: PlanState::Waiting,
                    resubmit,
                });
            }
        }
    }

    fn trace(&mut self, event: std::fmt::Arguments<'_>) {
        let text = event.to_string();
        for byte in text.bytes().chain(*b"\n") {
            self.trace_digest ^= u64::from(byte);
            self.trace_digest = self.trace_digest.wrapping_mul(0x0100_0000_01b3);
        }
        if self.config.keep_trace {
            self.trace.push(format!(
                "[{}] t+{}ms {text}",
                self.step,
                self.clock.now_ms() - START_MS
            ));
        }
    }

    async fn run(&mut self) {
        for _ in 0..self.config.chaos_steps {
            self.step += 1;
            self.expire_faults();
            self.chaos_step().await;
        }
        self.heal_all();
        for _ in 0..self.config.max_heal_rounds {
            if self.quiescent().await {
                return;
            }
            self.heal_round().await;
        }
        let waiting = self
            .plans
            .iter()
            .filter(|p| p.state != PlanState::Done && p.state != PlanState::Refused)
            .count();
        self.violation(
            ViolationKind::NoQuiescence,
            format!(
                "not quiescent after {} healing rounds ({waiting} ballots without receipt)",
                self.config.max_heal_rounds
            ),
        );
    }

    pub(crate) fn violation(&mut self, kind: ViolationKind, detail: String) {
        self.violations.push(Violation { kind, detail });
    }

    async fn chaos_step(&mut self) {
        self.clock.advance(self.rng.below(6));
        if self.rng.chance(self.config.fault_per_mille) {
            self.start_fault();
        }
        if self.rng.chance(self.config.attack_per_mille) {
            let region = self.rng.index(self.config.regions);
            self.forge(region);
        }
        let region = self.rng.index(self.config.regions);
        match self.rng.below(100) {
            0..30 => {
                if let Some(plan) = self.pick_ready() {
                    let target = if self.rng.chance(800) {
                        self.plans[plan].home
                    } else {
                        self.rng.index(self.config.regions)
                    };
                    self.submit(plan, target);
                }
            }
            30..45 => self.flush(region).await,
            45..68 => self.collect(region).await,
            68..88 => {
                let to =
                    (region + 1 + self.rng.index(self.config.regions - 1)) % self.config.regions;
                self.replicate(region, to).await;
            }
            _ => {
                let ms = self.rng.between(1, 400);
                self.clock.advance(ms);
            }
        }
    }

    fn pick_ready(&mut self) -> Option<usize> {
        let now = self.clock.now_ms();
        let ready: Vec<usize> = (0..self.plans.len())
            .filter(|&i| {
                self.plans[i].state == PlanState::Waiting && self.plans[i].ready_at_ms <= now
            })
            .collect();
        if ready.is_empty() {
            return None;
        }
        Some(ready[self.rng.index(ready.len())])
    }

    async fn collect(&mut self, region: usize) {
        if self.is_active(Fault::CollectorDown(region)) {
            return;
        }
        let queue = Arc::clone(&self.queues[region]);
        let received = queue
            .receive(10, Duration::ZERO, Duration::from_secs(VISIBILITY_SECS))
            .await
            .expect("simulated receive only fails on bad arguments");
        if received.is_empty() {
            return;
        }
        let n = received.len();
        if std::mem::take(&mut self.pending_crash_before_store[region]) {
            self.trace(format_args!(
                "collector r{region} crashed holding {n} messages"
            ));
            return;
        }
        let outcome = self.collectors[region].process(received).await;
        self.trace(format_args!(
            "collector r{region} processed {n} messages: {outcome:?}"
        ));
    }

    async fn replicate(&mut self, from: usize, to: usize) {
        let link = (from.min(to), from.max(to));
        if self.is_active(Fault::LinkPartition(link.0, link.1)) {
            return;
        }
        if self.is_active(Fault::ReplicationDelay(link.0, link.1)) && !self.rng.chance(50) {
            return;
        }
        match self.regions.ship(from, to).await {
            Ok(0) => {}
            Ok(n) => self.trace(format_args!("replicated {n} ballots r{from} -> r{to}")),
            Err(e) => self.violation(
                ViolationKind::NoQuiescence,
                format!("replication failed: {e}"),
            ),
        }
    }

    async fn quiescent(&self) -> bool {
        let settled = self
            .plans
            .iter()
            .all(|p| matches!(p.state, PlanState::Done | PlanState::Refused));
        if !settled || self.edges.iter().any(|e| !e.buffer.is_empty()) {
            return false;
        }
        for queue in &self.queues {
            let stats = queue.stats().await.expect("simulated stats");
            if stats.visible + stats.in_flight > 0 {
                return false;
            }
        }
        self.regions.converged().await.unwrap_or(false)
    }

    /// One healing round: voters retry, edges commit, collectors drain, links ship, time passes.
    async fn heal_round(&mut self) {
        self.step += 1;
        while let Some(plan) = self.pick_ready() {
            let region = self.rng.index(self.config.regions);
            self.submit(plan, region);
        }
        for r in 0..self.config.regions {
            while !self.edges[r].buffer.is_empty() {
                self.flush(r).await;
            }
            // Bounded: a round drains at most 1000 batches per region.
            for _ in 0..1000 {
                let stats = self.queues[r].stats().await.expect("simulated stats");
                if stats.visible == 0 {
                    break;
                }
                self.collect(r).await;
            }
        }
        for from in 0..self.config.regions {
            for to in (0..self.config.regions).filter(|&to| to != from) {
                self.replicate(from, to).await;
            }
        }
        self.clock.advance(VISIBILITY_SECS * 1000 / 2);
    }

    async fn finish(mut self) -> Report {
        check::all(&mut self).await;
        let mut counts = Counts {
            steps: self.step,
            ballots: self.plans.len() as u64,
            submissions: self.submissions,
            receipts: self.receipts.len() as u64,
            votes_checked: (self.receipts.len() * self.config.regions) as u64,
            forged: self
                .faults_injected
                .get("forged message")
                .copied()
                .unwrap_or(0),
            cut_by_votes: self.cut_by_votes,
            cut_by_bytes: self.cut_by_bytes,
            ..Counts::default()
        };
        for queue in &self.queues {
            let c = queue.counters();
            counts.messages_sent += c.sent;
            counts.deliveries += c.deliveries;
            counts.redeliveries += c.redeliveries;
            counts.dead_lettered += queue.dead_letters().len() as u64;
        }
        Report {
            seed: self.seed,
            last_vote_wins: self.rules.policy == Policy::LastVoteWins,
            host_sealing: self.host_sealing(),
            counts,
            faults: std::mem::take(&mut self.faults_injected),
            violations: std::mem::take(&mut self.violations),
            trace_digest: self.trace_digest,
            trace: std::mem::take(&mut self.trace),
        }
    }
}

fn processing() -> ProcessingConfig {
    ProcessingConfig {
        receivers: 1,
        receive_batch_messages: 10,
        wait_time_secs: 0,
        visibility_timeout_secs: VISIBILITY_SECS,
        max_in_flight_messages: 10,
        stats_interval_secs: 1,
        // Everything that decides what is accepted stays at the production default.
        ..ProcessingConfig::default()
    }
}
