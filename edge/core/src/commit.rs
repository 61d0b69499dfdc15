//! The sans-I/O core of group commit: which votes go into one queue message, and what each of
//! them learns. The edge host's tokio writer and the simulation both drive it; neither packs or
//! seals a message any other way.
//!
//! A [`Batch`] takes [`Item`]s until a bound says no (votes, message bytes, and the bytes of the
//! one envelope the host seals); the item that did not fit is handed back to start the next
//! batch. [`Batch::seal`] then partitions the items, checks the key of every component
//! envelope, verifies the tokens of the handed votes in one Ed25519 batch, picks each vote's
//! signer, and seals every signer's votes into envelopes. What comes out ([`Sealed`]) is typed
//! so that no item can be forgotten: a component envelope is in the message or refused with its
//! reason, and a handed vote is either sealed (with the accepted vote and the signer its receipt
//! needs) or refused with its reason. There is no "vote lost in sealing".
//!
//! Time, waiting and durability are the driver's: it passes `now_ms` in, decides how long to
//! wait for more items, writes [`Sealed::lines`] as one message (see
//! [`edgevote_shared::message`]) and answers each waiting request with the message's fate.

use edgevote_shared::envelope::MAX_ENVELOPE_JWS_BYTES;
use edgevote_shared::{QueueEnvelope, WireError, message};

use crate::{Accepted, ENVELOPE_OVERHEAD_BYTES, Edge, HandedVote, Response, check_edge_key};

/// Queue sends one edge has in flight at once: one being written while the next batch fills.
/// The edge host's group commit and the Worker's (per isolate) both keep to it.
pub const COMMITS_IN_FLIGHT: usize = 2;

/// The bounds of one queue message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitBounds {
    /// Most votes in one message (1..=[`message::MAX_ENVELOPES`]: under component sealing each
    /// vote is its own envelope).
    pub max_votes: usize,
    /// Most bytes in one message body (4096..=[`message::MAX_BYTES`]).
    pub max_message_bytes: usize,
}

impl Default for CommitBounds {
    /// The edge host's defaults: 128 votes, 192 KiB.
    fn default() -> Self {
        CommitBounds {
            max_votes: 128,
            max_message_bytes: 192 * 1024,
        }
    }
}

/// Smallest `max_message_bytes`: room for at least one host envelope of one vote.
pub const MIN_MESSAGE_BYTES: usize = 4096;

impl CommitBounds {
    /// Checks the bounds against the message format; the error names the field.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=message::MAX_ENVELOPES).contains(&self.max_votes) {
            return Err(format!(
                "max_votes must be 1..={}, not {}",
                message::MAX_ENVELOPES,
                self.max_votes
            ));
        }
        if !(MIN_MESSAGE_BYTES..=message::MAX_BYTES).contains(&self.max_message_bytes) {
            return Err(format!(
                "max_message_bytes must be {MIN_MESSAGE_BYTES}..={}, not {}",
                message::MAX_BYTES,
                self.max_message_bytes
            ));
        }
        Ok(())
    }
}

/// One request's part of a group commit, with the handle its requester waits on: `E` for a
/// component's envelope, `V` for a vote handed to the host.
#[derive(Debug)]
pub enum Item<E, V> {
    /// An envelope a component sealed itself (component sealing), committed as it is.
    Envelope {
        /// The compact JWS, one line of the message.
        line: String,
        /// What the requester waits on.
        reply: E,
    },
    /// A checked vote for the host to verify and seal (host sealing).
    Vote {
        /// The vote, checked natively, token not yet verified.
        vote: Box<HandedVote>,
        /// What the requester waits on.
        reply: V,
    },
}

impl<E, V> Item<E, V> {
    /// Bytes the item adds to the message: its line, or its share of the host's envelope.
    fn bytes(&self) -> usize {
        match self {
            Item::Envelope { line, .. } => line.len(),
            Item::Vote { vote, .. } => vote.envelope_bytes(),
        }
    }
}

/// Bytes a batch's items take: the whole message, and the host's envelope alone. The one
/// account of how items add up against [`CommitBounds`]: the edge host's [`Batch`] keeps it,
/// and so does the Worker's group commit, whose votes all go into one envelope.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MessageSize {
    message: usize,
    host_envelope: usize,
}

impl MessageSize {
    /// The size with a vote added that takes at most `bytes` of the envelope holding the
    /// message's votes (the first vote opens that envelope and pays its JWS overhead).
    pub fn with_vote(self, bytes: usize) -> MessageSize {
        self.plus(bytes, true)
    }

    /// The message body's bytes, an upper bound.
    pub fn message_bytes(self) -> usize {
        self.message
    }

    /// The size with an item of `bytes` added (`vote`: a handed vote, into the host envelope).
    fn plus(self, bytes: usize, vote: bool) -> MessageSize {
        let separator = usize::from(self.message > 0);
        match (vote, self.host_envelope) {
            (false, _) => MessageSize {
                message: self.message + separator + bytes,
                ..self
            },
            // The first handed vote opens the host's envelope: its JWS overhead is paid once.
            (true, 0) => MessageSize {
                message: self.message + separator + ENVELOPE_OVERHEAD_BYTES + bytes,
                host_envelope: ENVELOPE_OVERHEAD_BYTES + bytes,
            },
            (true, _) => MessageSize {
                message: self.message + 1 + bytes,
                host_envelope: self.host_envelope + 1 + bytes,
            },
        }
    }

    /// Whether the message and its envelope are within `bounds` and the envelope's own limit.
    pub fn fits(self, bounds: &CommitBounds) -> bool {
        self.message <= bounds.max_message_bytes && self.host_envelope <= MAX_ENVELOPE_JWS_BYTES
    }
}

/// The items of one message being gathered.
#[derive(Debug)]
pub struct Batch<E, V> {
    bounds: CommitBounds,
    items: Vec<Item<E, V>>,
    size: MessageSize,
}

impl<E, V> Batch<E, V> {
    /// An empty batch under `bounds`.
    pub fn new(bounds: CommitBounds) -> Self {
        debug_assert!(bounds.check().is_ok(), "bounds are checked with the config");
        Batch {
            bounds,
            items: Vec::new(),
            size: MessageSize::default(),
        }
    }

    /// Takes `item` if it fits; otherwise hands it back, and the batch is closed (the item
    /// starts the next one). The first item is always taken, even when it alone is over a
    /// byte bound: sealing splits the host's envelope, and the host refuses a component
    /// envelope too large for any message before it gets here.
    pub fn offer(&mut self, item: Item<E, V>) -> Result<(), Item<E, V>> {
        let bigger = self
            .size
            .plus(item.bytes(), matches!(item, Item::Vote { .. }));
        if self.is_full() || (!self.items.is_empty() && !bigger.fits(&self.bounds)) {
            return Err(item);
        }
        self.size = bigger;
        self.items.push(item);
        Ok(())
    }

    /// Whether the vote bound is reached (no item can be offered any more).
    pub fn is_full(&self) -> bool {
        self.items.len() >= self.bounds.max_votes
    }

    /// Items taken so far.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no item was taken.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Handed votes taken so far: sealing verifies and signs for each, so drivers move a
    /// batch with many of them off their async threads.
    pub fn handed_votes(&self) -> usize {
        self.items
            .iter()
            .filter(|i| matches!(i, Item::Vote { .. }))
            .count()
    }

    /// Estimated message bytes (an upper bound of what [`Batch::seal`] writes).
    pub fn bytes(&self) -> usize {
        self.size.message
    }

    /// Partitions, verifies and seals the batch with `keys` at `now_ms`; see the module doc.
    pub fn seal<K: SealKeys>(self, keys: &K, now_ms: u64) -> Sealed<E, V, K::Signer> {
        let mut sealed = Sealed {
            lines: Vec::new(),
            envelopes: Vec::new(),
            votes: Vec::new(),
            refused_envelopes: Vec::new(),
            refused_votes: Vec::new(),
        };
        let mut handed = Vec::new();
        for item in self.items {
            match item {
                Item::Envelope { line, reply } => match keys.check_envelope(&line) {
                    Ok(()) => {
                        sealed.lines.push(line);
                        sealed.envelopes.push(reply);
                    }
                    Err(detail) => sealed.refused_envelopes.push((reply, detail)),
                },
                Item::Vote { vote, reply } => handed.push((reply, *vote)),
            }
        }
        seal_votes(handed, keys, now_ms, &mut sealed);
        sealed
    }
}

/// The keys group commit seals with. The host implements it over its rotating key state; a
/// single [`Edge`] implements it with its own key.
pub trait SealKeys {
    /// What a sealed vote's receipt is signed with.
    type Signer;

    /// Whether a component's envelope may be committed: signed with a key the key set binds
    /// to this edge and region, valid at the envelope's time. `Err` says why not.
    fn check_envelope(&self, line: &str) -> Result<(), String>;

    /// Verifies the tokens of handed votes in one batch; the results are in order.
    fn verify_handed(&self, votes: Vec<HandedVote>) -> Vec<Result<Accepted, Response>>;

    /// The signer (by index) whose key is valid both when `vote` was received and at `now_ms`;
    /// `Err` says why none is.
    fn signer_index(&self, vote: &Accepted, now_ms: u64) -> Result<usize, String>;

    /// Seals votes into envelopes with signer `index`.
    fn seal(&self, index: usize, votes: &[Accepted], now_ms: u64)
    -> Result<Vec<String>, WireError>;

    /// Signer `index`, for the receipts.
    fn signer(&self, index: usize) -> Self::Signer;
}

/// A handed vote that is in the message, with what its receipt needs.
#[derive(Debug)]
pub struct SealedVote<V, S> {
    /// What the requester waits on.
    pub reply: V,
    /// The vote as accepted (token verified).
    pub accepted: Accepted,
    /// Who sealed its envelope: the one that must sign its receipt.
    pub signer: S,
}

/// Why a handed vote is not in the message. Nothing of it is durable.
#[derive(Debug)]
pub enum VoteRefused {
    /// Its token did not verify; the response says why.
    Token(Box<Response>),
    /// No key is valid for it now (`edge_key_expired`).
    KeyExpired(String),
    /// Its signer could not seal it.
    Sealing(String),
}

/// A sealed batch: the message's lines, and every item's fate.
#[derive(Debug)]
pub struct Sealed<E, V, S> {
    /// The message's envelopes, in order. Empty: there is nothing to write.
    pub lines: Vec<String>,
    /// Requests whose component envelope is among the lines.
    pub envelopes: Vec<E>,
    /// Handed votes sealed into the lines.
    pub votes: Vec<SealedVote<V, S>>,
    /// Component envelopes refused (their key may not sign for this edge now), with why.
    pub refused_envelopes: Vec<(E, String)>,
    /// Handed votes refused, with why.
    pub refused_votes: Vec<(V, VoteRefused)>,
}

impl<E, V, S> Sealed<E, V, S> {
    /// Votes the message carries: one per component envelope, plus the host-sealed ones.
    pub fn votes_in_message(&self) -> usize {
        self.envelopes.len() + self.votes.len()
    }
}

/// Verifies, assigns signers and seals the handed votes into `sealed`.
fn seal_votes<E, V, K: SealKeys>(
    handed: Vec<(V, HandedVote)>,
    keys: &K,
    now_ms: u64,
    sealed: &mut Sealed<E, V, K::Signer>,
) {
    if handed.is_empty() {
        return;
    }
    let (replies, votes): (Vec<V>, Vec<HandedVote>) = handed.into_iter().unzip();
    // One group of votes per signer, in order of first use.
    let mut groups: Vec<(usize, Vec<(V, Accepted)>)> = Vec::new();
    for (reply, verified) in replies.into_iter().zip(keys.verify_handed(votes)) {
        let accepted = match verified {
            Ok(accepted) => accepted,
            Err(refusal) => {
                let refused = VoteRefused::Token(Box::new(refusal));
                sealed.refused_votes.push((reply, refused));
                continue;
            }
        };
        let index = match keys.signer_index(&accepted, now_ms) {
            Ok(index) => index,
            Err(detail) => {
                let refused = VoteRefused::KeyExpired(detail);
                sealed.refused_votes.push((reply, refused));
                continue;
            }
        };
        match groups.iter_mut().find(|(i, _)| *i == index) {
            Some((_, group)) => group.push((reply, accepted)),
            None => groups.push((index, vec![(reply, accepted)])),
        }
    }
    for (index, group) in groups {
        let (replies, accepted): (Vec<V>, Vec<Accepted>) = group.into_iter().unzip();
        match keys.seal(index, &accepted, now_ms) {
            Ok(envelopes) => {
                sealed.lines.extend(envelopes);
                sealed
                    .votes
                    .extend(replies.into_iter().zip(accepted).map(|(reply, accepted)| {
                        SealedVote {
                            reply,
                            accepted,
                            signer: keys.signer(index),
                        }
                    }));
            }
            Err(e) => sealed.refused_votes.extend(
                replies
                    .into_iter()
                    .map(|reply| (reply, VoteRefused::Sealing(e.to_string()))),
            ),
        }
    }
}

/// A single edge seals with its own key: signer 0, valid while the key set says so.
impl SealKeys for Edge {
    type Signer = ();

    fn check_envelope(&self, line: &str) -> Result<(), String> {
        let header = edgevote_shared::jws::peek_header(line).map_err(|e| describe(&e))?;
        let envelope =
            edgevote_shared::decode_unverified::<QueueEnvelope>(line).map_err(|e| describe(&e))?;
        // A collector refuses an envelope whose key is not bound to the edge it names; the
        // host refuses one that names any edge but itself, before a voter gets a receipt.
        if (envelope.edge.as_str(), envelope.region.as_str())
            != (self.edge_id.as_str(), self.region.as_str())
        {
            return Err(format!(
                "envelope names edge {} in {}, not this edge {} in {} (key_binding_mismatch)",
                envelope.edge, envelope.region, self.edge_id, self.region
            ));
        }
        let at_secs = envelope.created_at_ms / 1000;
        check_edge_key(
            &self.keys,
            &header.kid,
            &self.edge_id,
            &self.region,
            at_secs,
        )
    }

    fn verify_handed(&self, votes: Vec<HandedVote>) -> Vec<Result<Accepted, Response>> {
        Edge::verify_handed(self, votes)
    }

    fn signer_index(&self, vote: &Accepted, now_ms: u64) -> Result<usize, String> {
        let kid = self.signer().map_err(|e| describe(&e))?.kid();
        for at in [vote.vote.received_at_ms, now_ms] {
            check_edge_key(&self.keys, kid, &self.edge_id, &self.region, at / 1000)?;
        }
        Ok(0)
    }

    fn seal(
        &self,
        _index: usize,
        votes: &[Accepted],
        now_ms: u64,
    ) -> Result<Vec<String>, WireError> {
        self.seal_batch(votes, now_ms)
    }

    fn signer(&self, _index: usize) -> Self::Signer {}
}

fn describe(e: &WireError) -> String {
    format!("{e} ({})", e.code())
}
