//! The platform-free edge handler. The Spin component, the Cloudflare Worker and the wasmtime
//! host are thin adapters around it: they turn their platform's request into a [`Request`],
//! call [`Edge::handle`], and do the I/O the [`Outcome`] asks for.
//!
//! Nothing here does I/O or reads a clock: the adapter passes the time in. A vote is never
//! acknowledged by this crate alone. [`Outcome::Enqueue`] hands the adapter an accepted vote,
//! and only after the adapter has made it durable (queue, or the host's fsync'd spill log)
//! does it call [`Edge::receipt_response`] to sign and return the receipt.
//!
//! Where the signature work happens is the edge's [`Sealing`]. With [`Sealing::Local`] the edge
//! holds its key and does it all (Spin; Workers with `EDGEVOTE_CRYPTO=wasm`). With
//! [`Sealing::Host`] it holds no key: it checks every rule but the token's signature and
//! answers [`Outcome::HandToHost`], and its host, running this same crate natively, verifies
//! the tokens of concurrent votes in one batch ([`Edge::check_handed`],
//! [`Edge::verify_handed`]), seals them into one envelope and signs each receipt once the
//! envelope is durable. With [`Sealing::Platform`] the platform
//! holds the key and does the Ed25519 arithmetic (WebCrypto on Workers): the edge answers
//! [`Outcome::VerifyOnPlatform`] with the token's signature to check, takes the verdict
//! ([`Edge::admit_on_platform`]), and prepares the envelopes of a group of votes (one signature
//! per envelope) and each receipt for the platform to sign ([`Edge::envelopes_to_sign`],
//! [`Edge::receipt_to_sign`]).

pub mod commit;
pub mod page;

use std::collections::BTreeMap;

use edgevote_shared::admission::PlatformToken;
use edgevote_shared::envelope::MAX_ENVELOPE_VOTES;
use edgevote_shared::jws::{ExternalSignature, sign_external};
use edgevote_shared::{
    AdmissionError, AdmittedBallot, Ballot, CheckedBallot, Digest32, ElectionManifest,
    EnvelopeVote, KeySet, QueueEnvelope, Receipt, Role, SigningIdentity, WireError, check_ballot,
    sign, verify_checked,
};
use serde_json::json;

mod refusal;
pub use refusal::Refusal;

/// Characters of the vote id in a single-vote batch id (132 bits: unique in practice).
pub const SINGLE_BATCH_VOTE_ID_CHARS: usize = 22;

/// The vote route's prefix and suffix: `/v1/elections/{election}/votes`.
const ELECTIONS_PREFIX: &str = "/v1/elections/";

/// Host sealing: the authority a component sends checked ballots to. The host intercepts it;
/// `.invalid` (RFC 6761) never resolves, so on any other platform the call fails closed (503,
/// no receipt).
pub const HOST_SEALER_AUTHORITY: &str = "sealer.edgevote.invalid";

/// The URL a component hands a checked ballot for `election` to (host sealing).
pub fn host_seal_url(election: &str) -> String {
    format!("http://{HOST_SEALER_AUTHORITY}{ELECTIONS_PREFIX}{election}/seal")
}

/// The election of a host-sealing path, `/v1/elections/{election}/seal`.
pub fn host_seal_election(path: &str) -> Option<&str> {
    let id = path.strip_prefix(ELECTIONS_PREFIX)?.strip_suffix("/seal")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// An HTTP request as the core sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Method, upper case.
    pub method: &'a str,
    /// Path without query string.
    pub path: &'a str,
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// The body (the adapter stops reading at [`Edge::max_body_bytes`] + 1).
    pub body: &'a [u8],
}

/// An HTTP response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    fn json(status: u16, value: &serde_json::Value) -> Self {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: value.to_string().into_bytes(),
        }
    }

    /// A refusal: `{"error": code, "detail": ...}` ([`Refusal::body_json`]).
    pub fn error(status: u16, code: &'static str, detail: impl std::fmt::Display) -> Self {
        Response::refusal(&Refusal::new(status, code, detail))
    }

    /// The response carrying `refusal`, with its status and the one refusal body.
    pub fn refusal(refusal: &Refusal) -> Self {
        Response::json(refusal.status, &refusal.body_json())
    }

    /// 503 with `Retry-After`, for when the vote could not be made durable (no receipt).
    pub fn unavailable(retry_after_secs: u32, detail: impl std::fmt::Display) -> Self {
        let mut response = Response::error(503, "queue_unavailable", detail);
        response
            .headers
            .push(("retry-after", retry_after_secs.to_string()));
        response
    }

    /// The `error` code of a refusal, if this is one.
    pub fn error_code(&self) -> Option<String> {
        let value: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        value.get("error")?.as_str().map(str::to_owned)
    }
}

impl From<Refusal> for Response {
    fn from(refusal: Refusal) -> Self {
        Response::refusal(&refusal)
    }
}

/// What the adapter must do with a request.
#[derive(Debug)]
pub enum Outcome {
    /// Send this response; nothing to enqueue.
    Respond(Response),
    /// Make this vote durable, then answer with [`Edge::receipt_response`] (local sealing).
    Enqueue(Box<Accepted>),
    /// Hand this checked ballot to the host, which verifies, seals and signs, and answer with
    /// what the host answers (host sealing).
    HandToHost(Box<Handed>),
    /// Have the platform's Ed25519 verify this vote's token signature, then call
    /// [`Edge::admit_on_platform`] with its verdict (platform sealing).
    VerifyOnPlatform(Box<PlatformVote>),
}

/// A vote whose every check but its token's Ed25519 equation passed, for the platform.
#[derive(Debug, Clone)]
pub struct PlatformVote {
    token: PlatformToken,
    received_at_ms: u64,
}

impl PlatformVote {
    /// The authority's public key, the signed bytes and the signature to verify.
    pub fn signature_parts(&self) -> (&[u8; 32], &[u8], &[u8; 64]) {
        self.token.signature_parts()
    }
}

/// A receipt ready for the platform to sign; [`PlatformReceipt::respond`] makes the answer.
#[derive(Debug, Clone)]
pub struct PlatformReceipt {
    receipt: Receipt,
    unsigned: ExternalSignature,
}

impl PlatformReceipt {
    /// The bytes to sign.
    pub fn message(&self) -> &[u8] {
        self.unsigned.message()
    }

    /// `202` with the receipt signed by `signature` (the platform's, over [`Self::message`]).
    pub fn respond(self, signature: &[u8; 64]) -> Response {
        match self.unsigned.finish(signature) {
            Ok(compact) => receipt_json(&self.receipt, &compact),
            Err(e) => Response::error(500, "receipt_signing_failed", e),
        }
    }
}

/// The edge key a platform holds (platform sealing): its id, for the JWS header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformKey {
    /// The key id (its RFC 7638 thumbprint, as in the key set).
    pub kid: String,
}

/// A ballot that passed every rule but its token's signature, for the host to seal.
#[derive(Debug, Clone)]
pub struct Handed {
    /// The election it is for.
    pub election: String,
    /// The ballot, re-encoded as JSON (the body the host is sent).
    pub body: Vec<u8>,
}

/// Who holds the edge key and does the signature work.
#[derive(Debug)]
pub enum Sealing {
    /// This edge verifies tokens and signs envelopes and receipts itself.
    Local(Box<SigningIdentity>),
    /// This edge holds no key: it checks the rules and hands votes to its host, which does
    /// the signature work natively (the edge host's default).
    Host,
    /// The platform holds the edge key and does the Ed25519 work (WebCrypto on Workers); this
    /// edge checks everything else and prepares what to verify and to sign.
    Platform(PlatformKey),
}

/// A ballot the host was handed, checked again natively, waiting for its token's signature.
#[derive(Debug, Clone)]
pub struct HandedVote {
    checked: CheckedBallot,
    received_at_ms: u64,
}

impl HandedVote {
    /// Bytes this vote adds to an envelope, an upper bound (base64url of its JSON, plus a
    /// comma): what group commit packs by.
    pub fn envelope_bytes(&self) -> usize {
        envelope_vote_bytes(self.checked.ballot())
    }
}

/// Bytes a vote of `ballot` adds to an envelope, an upper bound: base64url of its JSON, plus a
/// comma.
fn envelope_vote_bytes(ballot: &Ballot) -> usize {
    let json = ballot.token.len()
        + ballot.choice.len()
        + ballot.election.len()
        + ballot.nonce.len()
        + VOTE_JSON_OVERHEAD_BYTES;
    json.div_ceil(3) * 4
}

/// JSON around one envelope vote's strings: member names, quotes, the timestamp (generous).
const VOTE_JSON_OVERHEAD_BYTES: usize = 128;
/// An envelope's JWS around its votes: header, the other members, the signature (generous).
pub const ENVELOPE_OVERHEAD_BYTES: usize = 1024;

/// A vote that passed every check, waiting to be made durable.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The admitted ballot (vote id, verified token).
    pub admitted: AdmittedBallot,
    /// What goes into the queue envelope.
    pub vote: EnvelopeVote,
}

/// One election as an edge serves it.
#[derive(Debug, Clone)]
pub struct ServedElection {
    /// The verified manifest.
    pub manifest: ElectionManifest,
    /// The signed manifest (compact JWS), served as is so clients can verify it.
    pub signed: String,
}

/// The edge: elections, keys, identity. Built once per process (or per Wasm instance).
#[derive(Debug)]
pub struct Edge {
    elections: BTreeMap<String, ServedElection>,
    keys: KeySet,
    keyset_json: String,
    sealing: Sealing,
    edge_id: String,
    region: String,
    bundle_sha256: Option<Digest32>,
}

impl Edge {
    /// An edge serving `elections`, verifying tokens against `keys` and signing receipts and
    /// envelopes with `signer`.
    pub fn new(
        elections: Vec<ServedElection>,
        keys: KeySet,
        signer: SigningIdentity,
        edge_id: &str,
        region: &str,
        bundle_sha256: Option<Digest32>,
    ) -> Self {
        Edge::with_sealing(
            elections,
            keys,
            Sealing::Local(Box::new(signer)),
            edge_id,
            region,
            bundle_sha256,
        )
    }

    /// An edge whose signature work is done as `sealing` says.
    pub fn with_sealing(
        elections: Vec<ServedElection>,
        keys: KeySet,
        sealing: Sealing,
        edge_id: &str,
        region: &str,
        bundle_sha256: Option<Digest32>,
    ) -> Self {
        Edge {
            elections: elections
                .into_iter()
                .map(|e| (e.manifest.id.clone(), e))
                .collect(),
            keyset_json: keys.to_json_pretty(),
            keys,
            sealing,
            edge_id: edge_id.to_owned(),
            region: region.to_owned(),
            bundle_sha256,
        }
    }

    /// Largest body any served election accepts; adapters read at most one byte more.
    pub fn max_body_bytes(&self) -> usize {
        self.elections
            .values()
            .map(|e| e.manifest.limits.max_ballot_bytes as usize)
            .max()
            // An edge serving no election takes no body.
            .unwrap_or(0)
    }

    /// Routes and checks a request at `now_ms` (unix milliseconds).
    pub fn handle(&self, request: Request<'_>, now_ms: u64) -> Outcome {
        let Some(route) = route(request.path) else {
            return respond(Response::error(404, "not_found", request.path));
        };
        match (route, request.method) {
            (Route::Health, "GET") => respond(Response::json(200, &json!({"status": "ok"}))),
            (Route::Keys, "GET") => respond(Response {
                status: 200,
                content_type: "application/jwk-set+json",
                headers: Vec::new(),
                body: self.keyset_json.clone().into_bytes(),
            }),
            (Route::Election(id), "GET") => respond(self.manifest_response(id)),
            (Route::Votes(id), "POST") => self.vote(id, request, now_ms),
            (Route::Page(asset), "GET") => respond(page::response(asset)),
            (Route::Verifier, "GET") => respond(page::no_verifier()),
            (_, method) => respond(Response::error(405, "method_not_allowed", method)),
        }
    }

    fn manifest_response(&self, id: &str) -> Response {
        match self.elections.get(id) {
            Some(e) => Response::json(200, &json!({"manifest": e.manifest, "signed": e.signed})),
            None => Response::error(404, "unknown_election", id),
        }
    }

    fn vote(&self, id: &str, request: Request<'_>, now_ms: u64) -> Outcome {
        let Some(election) = self.elections.get(id) else {
            return respond(Response::error(404, "unknown_election", id));
        };
        if !is_json(request.content_type) {
            return respond(Response::error(
                415,
                "unsupported_media_type",
                "ballots are application/json",
            ));
        }
        let checked = match check(&election.manifest, request.body, now_ms) {
            Ok(checked) => checked,
            Err(refusal) => return respond(refusal),
        };
        match &self.sealing {
            Sealing::Local(_) => match checked.verify(&self.keys) {
                Ok(admitted) => Outcome::Enqueue(Box::new(Accepted::new(admitted, now_ms))),
                Err(e) => respond(admission_refusal(&e)),
            },
            Sealing::Host => {
                let body = serde_json::to_vec(checked.ballot())
                    .expect("a ballot (strings only) always serialises to JSON");
                Outcome::HandToHost(Box::new(Handed {
                    election: id.to_owned(),
                    body,
                }))
            }
            Sealing::Platform(_) => match checked.verify_on_platform(&self.keys) {
                Ok(token) => Outcome::VerifyOnPlatform(Box::new(PlatformVote {
                    token,
                    received_at_ms: now_ms,
                })),
                Err(e) => respond(admission_refusal(&e)),
            },
        }
    }

    /// Platform sealing: the accepted vote when the platform said its token's signature is
    /// valid (`platform_valid`) and the strict checks hold, else the refusal.
    pub fn admit_on_platform(
        &self,
        vote: PlatformVote,
        platform_valid: bool,
    ) -> Result<Accepted, Response> {
        match vote.token.admit(platform_valid) {
            Ok(admitted) => Ok(Accepted::new(admitted, vote.received_at_ms)),
            Err(e) => Err(admission_refusal(&e)),
        }
    }

    fn platform_key(&self) -> Result<&PlatformKey, WireError> {
        match &self.sealing {
            Sealing::Platform(key) => Ok(key),
            _ => Err(WireError::InvalidField {
                field: "edge key",
                reason: "this edge's platform holds no key".into(),
            }),
        }
    }

    /// Platform sealing: the receipt of a vote that is now durable, for the platform to sign.
    pub fn receipt_to_sign(&self, accepted: &Accepted) -> Result<PlatformReceipt, WireError> {
        let key = self.platform_key()?;
        let receipt = self.receipt_of(accepted, self.bundle_sha256);
        let unsigned = sign_external(&key.kid, Role::Edge, &receipt)?;
        Ok(PlatformReceipt { receipt, unsigned })
    }

    /// Host sealing, natively in the host: checks again, at the host's `now_ms`, a ballot a
    /// component handed over for `election` (the component is trusted code, but the edge key
    /// only ever signs what the host itself checked). The token's signature is left to
    /// [`Edge::verify_handed`].
    pub fn check_handed(
        &self,
        election: &str,
        body: &[u8],
        now_ms: u64,
    ) -> Result<HandedVote, Response> {
        let served = self
            .elections
            .get(election)
            .ok_or_else(|| Response::error(404, "unknown_election", election))?;
        let checked = check(&served.manifest, body, now_ms)?;
        Ok(HandedVote {
            checked,
            received_at_ms: now_ms,
        })
    }

    /// Host sealing: verifies the tokens of handed votes in one batch; each result is the
    /// accepted vote or its refusal, in order.
    pub fn verify_handed(&self, votes: Vec<HandedVote>) -> Vec<Result<Accepted, Response>> {
        let times: Vec<u64> = votes.iter().map(|v| v.received_at_ms).collect();
        let checked = votes.into_iter().map(|v| v.checked).collect();
        verify_checked(checked, &self.keys)
            .into_iter()
            .zip(times)
            .map(|(admitted, at)| match admitted {
                Ok(admitted) => Ok(Accepted::new(admitted, at)),
                Err(e) => Err(admission_refusal(&e)),
            })
            .collect()
    }

    fn signer(&self) -> Result<&SigningIdentity, WireError> {
        match &self.sealing {
            Sealing::Local(signer) => Ok(signer),
            Sealing::Host => Err(WireError::InvalidField {
                field: "edge key",
                reason: "this edge holds no key: its host seals and signs".into(),
            }),
            Sealing::Platform(_) => Err(WireError::InvalidField {
                field: "edge key",
                reason: "this edge's key is its platform's: use receipt_to_sign".into(),
            }),
        }
    }

    /// Signs the receipt of a vote that is now durable: `202` with the receipt.
    pub fn receipt_response(&self, accepted: &Accepted) -> Response {
        self.receipt_response_for(accepted, self.bundle_sha256)
    }

    /// [`Edge::receipt_response`] naming `bundle_sha256` as the bundle that took the vote (a
    /// host seals for whichever bundle is active).
    pub fn receipt_response_for(
        &self,
        accepted: &Accepted,
        bundle_sha256: Option<Digest32>,
    ) -> Response {
        let receipt = self.receipt_of(accepted, bundle_sha256);
        match self.signer().and_then(|signer| sign(signer, &receipt)) {
            Ok(compact) => receipt_json(&receipt, &compact),
            Err(e) => Response::error(500, "receipt_signing_failed", e),
        }
    }

    fn receipt_of(&self, accepted: &Accepted, bundle_sha256: Option<Digest32>) -> Receipt {
        let mut receipt =
            accepted
                .admitted
                .receipt(&self.edge_id, &self.region, accepted.vote.received_at_ms);
        receipt.bundle_sha256 = bundle_sha256;
        receipt
    }

    /// The batch id of an envelope holding only `accepted`: `{edge id}.{22 chars of vote id}`
    /// (the edge id is cut so the whole stays a valid id of at most 64 characters).
    pub fn single_batch_id(&self, accepted: &Accepted) -> String {
        self.batch_id_from(accepted.admitted.vote_id)
    }

    /// `{edge id}.{22 characters of digest}`, cut to stay a valid id.
    fn batch_id_from(&self, digest: Digest32) -> String {
        let digest = digest.to_b64();
        let edge: String = self
            .edge_id
            .chars()
            .take(64 - 1 - SINGLE_BATCH_VOTE_ID_CHARS)
            .collect();
        format!("{edge}.{}", &digest[..SINGLE_BATCH_VOTE_ID_CHARS])
    }

    /// Host sealing (and the Worker's group commit under local sealing): seals accepted votes
    /// into as few envelopes as the envelope bounds allow (one, unless the votes exceed
    /// [`MAX_ENVELOPE_VOTES`] or its byte limit: then halves). A batch id is the edge id and a
    /// digest of the batch's vote ids, so the same votes sealed again keep their id.
    pub fn seal_batch(&self, accepted: &[Accepted], now_ms: u64) -> Result<Vec<String>, WireError> {
        let signer = self.signer()?;
        self.split_into_envelopes(accepted, now_ms, &|envelope| sign(signer, envelope))
    }

    /// Platform sealing: [`Edge::seal_batch`]'s envelopes, each with what the platform must
    /// sign (one signature per envelope instead of one per vote).
    pub fn envelopes_to_sign(
        &self,
        accepted: &[Accepted],
        now_ms: u64,
    ) -> Result<Vec<ExternalSignature>, WireError> {
        let key = self.platform_key()?;
        self.split_into_envelopes(accepted, now_ms, &|envelope| {
            sign_external(&key.kid, Role::Edge, envelope)
        })
    }

    /// The envelopes of `accepted` as `seal` makes each (signed, or ready to sign), halving
    /// the votes until each envelope fits its bounds.
    fn split_into_envelopes<S>(
        &self,
        accepted: &[Accepted],
        now_ms: u64,
        seal: &dyn Fn(&QueueEnvelope) -> Result<S, WireError>,
    ) -> Result<Vec<S>, WireError> {
        let mut envelopes = Vec::new();
        self.seal_into(accepted, now_ms, seal, &mut envelopes)?;
        Ok(envelopes)
    }

    fn seal_into<S>(
        &self,
        accepted: &[Accepted],
        now_ms: u64,
        seal: &dyn Fn(&QueueEnvelope) -> Result<S, WireError>,
        envelopes: &mut Vec<S>,
    ) -> Result<(), WireError> {
        if accepted.is_empty() {
            return Ok(());
        }
        let halves = |envelopes: &mut Vec<S>| {
            let (first, second) = accepted.split_at(accepted.len() / 2);
            self.seal_into(first, now_ms, seal, envelopes)?;
            self.seal_into(second, now_ms, seal, envelopes)
        };
        if accepted.len() > MAX_ENVELOPE_VOTES {
            return halves(envelopes);
        }
        let votes = accepted.iter().map(|a| a.vote.clone()).collect();
        match seal(&self.envelope(&self.batch_id_of(accepted), votes, now_ms)) {
            Ok(envelope) => {
                envelopes.push(envelope);
                Ok(())
            }
            // Recursion depth is bounded by log2 of the vote count.
            Err(WireError::TooLarge { .. }) if accepted.len() > 1 => halves(envelopes),
            Err(e) => Err(e),
        }
    }

    fn batch_id_of(&self, accepted: &[Accepted]) -> String {
        let ids: Vec<u8> = accepted.iter().flat_map(|a| a.admitted.vote_id.0).collect();
        self.batch_id_from(Digest32::of(&ids))
    }

    /// Seals one accepted vote into its own envelope (what an edge without group commit sends);
    /// returns the batch id and the envelope.
    pub fn seal_single(
        &self,
        accepted: &Accepted,
        now_ms: u64,
    ) -> Result<(String, String), WireError> {
        let batch_id = self.single_batch_id(accepted);
        let envelope = self.seal(&batch_id, vec![accepted.vote.clone()], now_ms)?;
        Ok((batch_id, envelope))
    }

    /// Seals accepted votes into one signed queue envelope.
    pub fn seal(
        &self,
        batch_id: &str,
        votes: Vec<EnvelopeVote>,
        now_ms: u64,
    ) -> Result<String, WireError> {
        sign(self.signer()?, &self.envelope(batch_id, votes, now_ms))
    }

    fn envelope(&self, batch_id: &str, votes: Vec<EnvelopeVote>, now_ms: u64) -> QueueEnvelope {
        QueueEnvelope {
            v: 1,
            batch_id: batch_id.to_owned(),
            edge: self.edge_id.clone(),
            region: self.region.clone(),
            created_at_ms: now_ms,
            votes,
        }
    }
}

impl Accepted {
    /// Bytes this vote adds to an envelope, an upper bound (as [`HandedVote::envelope_bytes`]):
    /// what the Worker's group commit packs by.
    pub fn envelope_bytes(&self) -> usize {
        envelope_vote_bytes(&self.vote.ballot)
    }

    fn new(admitted: AdmittedBallot, received_at_ms: u64) -> Self {
        Accepted {
            vote: EnvelopeVote {
                ballot: admitted.ballot.clone(),
                received_at_ms,
            },
            admitted,
        }
    }
}

/// `202` with a signed receipt, its vote id and election.
fn receipt_json(receipt: &Receipt, compact: &str) -> Response {
    Response::json(
        202,
        &json!({"receipt": compact, "vote_id": receipt.vote_id, "election": receipt.election}),
    )
}

/// Appends to `body` the part of `chunk` (an item of the platform's body stream) that fits
/// within `limit` bytes, and says whether the body is now full; a failed chunk is the error's
/// text. Adapters read request bodies chunk by chunk and stop once it is full: with `limit` one
/// byte over [`Edge::max_body_bytes`], the core then refuses the body as too large, and the
/// rest is never buffered.
pub fn append_bounded<C: AsRef<[u8]>, E: std::fmt::Display>(
    body: &mut Vec<u8>,
    chunk: Result<C, E>,
    limit: usize,
) -> Result<bool, String> {
    let chunk = chunk.map_err(|e| e.to_string())?;
    let chunk = chunk.as_ref();
    let room = limit.saturating_sub(body.len());
    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    Ok(body.len() >= limit)
}

fn respond(response: Response) -> Outcome {
    Outcome::Respond(response)
}

/// Parses a ballot body and applies the election rules, all but the token's signature.
fn check(manifest: &ElectionManifest, body: &[u8], now_ms: u64) -> Result<CheckedBallot, Response> {
    let ballot = Ballot::parse(body, manifest.limits.max_ballot_bytes as usize)
        .map_err(|e| wire_refusal(&e))?;
    check_ballot(manifest, ballot, now_ms / 1000).map_err(|e| admission_refusal(&e))
}

enum Route<'a> {
    Page(&'static page::Asset),
    Verifier,
    Health,
    Keys,
    Election(&'a str),
    Votes(&'a str),
}

fn route(path: &str) -> Option<Route<'_>> {
    match path {
        "/healthz" => return Some(Route::Health),
        "/v1/keys" => return Some(Route::Keys),
        page::VERIFIER_PATH => return Some(Route::Verifier),
        _ => {}
    }
    if let Some(asset) = page::asset(path) {
        return Some(Route::Page(asset));
    }
    let rest = path.strip_prefix(ELECTIONS_PREFIX)?;
    match rest.split_once('/') {
        None if !rest.is_empty() => Some(Route::Election(rest)),
        Some((id, "votes")) if !id.is_empty() => Some(Route::Votes(id)),
        _ => None,
    }
}

fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// The HTTP status of a wire error code.
pub fn status_of(code: &str) -> u16 {
    match code {
        "too_large" => 413,
        "bad_signature"
        | "unknown_key_id"
        | "key_role_mismatch"
        | "key_not_valid_at_time"
        | "weak_key"
        | "wrong_document_type" => 401,
        "token_expired" | "token_not_yet_valid" | "wrong_election" | "election_closed" => 403,
        "invalid_choice" => 422,
        _ => 400,
    }
}

fn wire_refusal(e: &WireError) -> Response {
    Response::refusal(&Refusal::new(status_of(e.code()), e.code(), e))
}

fn admission_refusal(e: &AdmissionError) -> Response {
    Response::refusal(&Refusal::new(status_of(e.code()), e.code(), e))
}

/// Whether the edge key `kid` may sign for `edge_id` in `region` at `now_secs`: in `keys`, an
/// edge key bound to exactly that edge and region, and valid now. Every adapter checks this
/// before it serves, so that an edge never hands out receipts for envelopes that every collector
/// would refuse (a mis-bound or retired key would turn acknowledged votes into dead letters).
pub fn check_edge_key(
    keys: &KeySet,
    kid: &str,
    edge_id: &str,
    region: &str,
    now_secs: u64,
) -> Result<(), String> {
    let (jwk, _) = keys
        .get(kid)
        .ok_or_else(|| format!("edge key {kid} is not in the key set"))?;
    if jwk.edgevote_role != Role::Edge {
        return Err(format!(
            "key {kid} has role {}, not edge",
            jwk.edgevote_role
        ));
    }
    jwk.check_binding(edge_id, region)
        .map_err(|e| format!("{e} ({})", e.code()))?;
    if !jwk.valid_at(now_secs) {
        return Err(format!(
            "edge key {kid} is not valid now (valid from {} until {}): use the edge's current key",
            jwk.valid_from,
            jwk.valid_until
                .map_or_else(|| "-".to_owned(), |u| u.to_string())
        ));
    }
    Ok(())
}
