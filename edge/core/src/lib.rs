//! The platform-free edge handler. The Spin component, the Cloudflare Worker and the wasmtime
//! host are thin adapters around it: they turn their platform's request into a [`Request`],
//! call [`Edge::handle`], and do the I/O the [`Outcome`] asks for.
//!
//! Nothing here does I/O or reads a clock: the adapter passes the time in. A vote is never
//! acknowledged by this crate alone. [`Outcome::Enqueue`] hands the adapter an accepted vote,
//! and only after the adapter has made it durable (queue, or the host's fsync'd spill log)
//! does it call [`Accepted::receipt_response`] to sign and return the receipt.

use std::collections::BTreeMap;

use edgevote_shared::{
    AdmissionError, AdmittedBallot, Ballot, Digest32, ElectionManifest, EnvelopeVote, KeySet,
    QueueEnvelope, SigningIdentity, WireError, admit, sign,
};
use serde_json::json;

/// Characters of the vote id in a single-vote batch id (132 bits: unique in practice).
pub const SINGLE_BATCH_VOTE_ID_CHARS: usize = 22;

/// The vote route's prefix and suffix: `/v1/elections/{election}/votes`.
const ELECTIONS_PREFIX: &str = "/v1/elections/";

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

    /// A refusal: `{"error": code, "detail": ...}`.
    pub fn error(status: u16, code: &str, detail: impl std::fmt::Display) -> Self {
        Response::json(
            status,
            &json!({"error": code, "detail": detail.to_string()}),
        )
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

/// What the adapter must do with a request.
#[derive(Debug)]
pub enum Outcome {
    /// Send this response; nothing to enqueue.
    Respond(Response),
    /// Make this vote durable, then answer with [`Accepted::receipt_response`].
    Enqueue(Box<Accepted>),
}

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
    signer: SigningIdentity,
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
        Edge {
            elections: elections
                .into_iter()
                .map(|e| (e.manifest.id.clone(), e))
                .collect(),
            keyset_json: keys.to_json_pretty(),
            keys,
            signer,
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
        let limit = election.manifest.limits.max_ballot_bytes as usize;
        let ballot = match Ballot::parse(request.body, limit) {
            Ok(ballot) => ballot,
            Err(e) => return respond(wire_refusal(&e)),
        };
        match admit(&election.manifest, &self.keys, ballot, now_ms / 1000) {
            Ok(admitted) => Outcome::Enqueue(Box::new(Accepted {
                vote: EnvelopeVote {
                    ballot: admitted.ballot.clone(),
                    received_at_ms: now_ms,
                },
                admitted,
            })),
            Err(e) => respond(admission_refusal(&e)),
        }
    }

    /// Signs the receipt of a vote that is now durable: `202` with the receipt.
    pub fn receipt_response(&self, accepted: &Accepted) -> Response {
        let mut receipt =
            accepted
                .admitted
                .receipt(&self.edge_id, &self.region, accepted.vote.received_at_ms);
        receipt.bundle_sha256 = self.bundle_sha256;
        match sign(&self.signer, &receipt) {
            Ok(compact) => Response::json(
                202,
                &json!({"receipt": compact, "vote_id": receipt.vote_id, "election": receipt.election}),
            ),
            Err(e) => Response::error(500, "receipt_signing_failed", e),
        }
    }

    /// The batch id of an envelope holding only `accepted`: `{edge id}.{22 chars of vote id}`
    /// (the edge id is cut so the whole stays a valid id of at most 64 characters).
    pub fn single_batch_id(&self, accepted: &Accepted) -> String {
        let vote_id = accepted.admitted.vote_id.to_b64();
        let edge: String = self
            .edge_id
            .chars()
            .take(64 - 1 - SINGLE_BATCH_VOTE_ID_CHARS)
            .collect();
        format!("{edge}.{}", &vote_id[..SINGLE_BATCH_VOTE_ID_CHARS])
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
        let envelope = QueueEnvelope {
            v: 1,
            batch_id: batch_id.to_owned(),
            edge: self.edge_id.clone(),
            region: self.region.clone(),
            created_at_ms: now_ms,
            votes,
        };
        sign(&self.signer, &envelope)
    }
}

fn respond(response: Response) -> Outcome {
    Outcome::Respond(response)
}

enum Route<'a> {
    Health,
    Keys,
    Election(&'a str),
    Votes(&'a str),
}

fn route(path: &str) -> Option<Route<'_>> {
    match path {
        "/healthz" => return Some(Route::Health),
        "/v1/keys" => return Some(Route::Keys),
        _ => {}
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
    Response::error(status_of(e.code()), e.code(), e)
}

fn admission_refusal(e: &AdmissionError) -> Response {
    Response::error(status_of(e.code()), e.code(), e)
}
