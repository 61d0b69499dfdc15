//! The attacker: forged, tampered, replayed and rogue-signed messages written straight into a
//! region's queue. None may change a count; each must end in the dead-letter queue.

use super::*;

impl World {
    /// The attacker writes a message straight into a region's queue. None of these may change
    /// a count; each must end in the dead-letter queue.
    pub(super) fn forge(&mut self, region: usize) {
        self.ghosts += 1;
        let ghost = format!("ghost-{:04}", self.ghosts);
        let stolen = Ballot {
            election: ELECTION.into(),
            token: token(&self.authority, &ghost, ELECTION),
            choice: OPTIONS[0].into(),
            nonce: b64::encode([7u8; 16]),
        };
        let honest_edge = &self.edges[region].edge;
        let now = self.edge_time(region);
        let vote = |ballot: Ballot| EnvelopeVote {
            ballot,
            received_at_ms: now,
        };
        let (kind, body) = match self.rng.below(8) {
            0 => (
                "envelope signed by an unknown edge key",
                self.rogue_envelope(region, vec![vote(stolen)]),
            ),
            1 => {
                let honest = honest_edge
                    .seal("forged.tamper", vec![vote(stolen)], now)
                    .expect("seal");
                ("tampered envelope", tamper(&honest))
            }
            2 => {
                let honest = honest_edge
                    .seal("forged.cut", vec![vote(stolen)], now)
                    .expect("seal");
                ("truncated envelope", honest[..honest.len() / 2].to_owned())
            }
            3 => {
                let ballot = Ballot {
                    election: "other-election".into(),
                    token: token(&self.authority, &ghost, "other-election"),
                    ..stolen
                };
                (
                    "ballot for an unknown election",
                    honest_edge
                        .seal("forged.election", vec![vote(ballot)], now)
                        .expect("seal"),
                )
            }
            4 => {
                let ballot = Ballot {
                    choice: "not-an-option".into(),
                    ..stolen
                };
                (
                    "invalid choice",
                    honest_edge
                        .seal("forged.choice", vec![vote(ballot)], now)
                        .expect("seal"),
                )
            }
            6 => {
                // One edge's stolen key, speaking for another edge (whose id the envelope names).
                let thief = (region + 1) % self.edges.len();
                let envelope = QueueEnvelope {
                    v: 1,
                    batch_id: "forged.borrowed".into(),
                    edge: format!("edge-{}", self.names[region]),
                    region: self.names[region].clone(),
                    created_at_ms: now,
                    votes: vec![vote(stolen)],
                };
                (
                    "an edge's key signing for another edge",
                    sign(&edge_identity(thief), &envelope).expect("edge key signs"),
                )
            }
            7 => {
                // The same stolen key minting a voter: a token signed by an edge key, sealed by
                // its own edge. Only verifying every token (the default) refuses it.
                let key = edge_identity(region);
                let header = serde_json::json!({"alg": "EdDSA", "kid": key.kid(), "typ": "edgevote-token+jwt"});
                let claims = edgevote_shared::decode_unverified::<VoteToken>(&stolen.token)
                    .expect("the attacker's template token decodes");
                let minted = Ballot {
                    token: edgevote_shared::forgery::sign_raw(
                        &header,
                        &serde_json::to_vec(&claims).expect("claims encode"),
                        &key,
                    ),
                    ..stolen
                };
                (
                    "a voter minted with an edge key",
                    honest_edge
                        .seal("forged.minted", vec![vote(minted)], now)
                        .expect("seal"),
                )
            }
            _ => {
                let rogue = self.rogue_envelope(region, vec![vote(stolen.clone())]);
                let other = Ballot {
                    nonce: b64::encode([8u8; 16]),
                    ..stolen
                };
                let honest = tamper(
                    &honest_edge
                        .seal("forged.mixed", vec![vote(other)], now)
                        .expect("seal"),
                );
                (
                    "message mixing a forged envelope into a batch",
                    format!("{honest}\n{rogue}"),
                )
            }
        };
        self.count_fault("forged message");
        self.trace(format_args!("attacker wrote to r{region}: {kind}"));
        self.queues[region].inject(body.clone());
        self.forged.insert(body);
    }

    pub(super) fn rogue_envelope(&self, region: usize, votes: Vec<EnvelopeVote>) -> String {
        let envelope = QueueEnvelope {
            v: 1,
            batch_id: "forged.rogue".into(),
            edge: format!("edge-r{region}"),
            region: self.names[region].clone(),
            created_at_ms: self.edge_time(region),
            votes,
        };
        sign(&self.rogue, &envelope).expect("rogue key signs")
    }
}

/// Flips one character of a compact JWS's payload, keeping it base64url.
fn tamper(compact: &str) -> String {
    let mut bytes = compact.as_bytes().to_vec();
    let dot = compact
        .find('.')
        .expect("a compact JWS has a dot after its header");
    let i = dot + 10;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ASCII stays ASCII")
}
