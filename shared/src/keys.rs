//! Public keys as JWK (RFC 7517, OKP/Ed25519 per RFC 8037), key sets, and the signing identity.
//!
//! A key set is a standard JWK Set (`{"keys":[...]}`) whose keys carry three extra members
//! (allowed by RFC 7517 §4): `edgevote_role`, `valid_from` and `valid_until`. Off-the-shelf JOSE
//! libraries ignore them and can verify our documents with the set as it is. Key ids are the
//! RFC 7638 JWK thumbprints, so anyone can check that a `kid` names the key it claims to.

use std::collections::BTreeMap;

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::strict::StrictKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::b64;
use crate::error::WireError;
use crate::json;

/// Most keys one key set may hold (active and archived together).
pub const MAX_KEYS_PER_SET: usize = 1024;
/// Longest key set document in bytes.
pub const MAX_KEY_SET_BYTES: usize = 512 * 1024;

/// What a key may sign. A document type names the one role that signs it, so a key of one role
/// can never produce a valid document of another role's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The election authority: signs election manifests and voters' vote tokens.
    Authority,
    /// An edge: signs receipts and queue envelopes.
    Edge,
    /// Operations: signs Wasm bundle manifests.
    Ops,
    /// The public log: signs checkpoints and published tallies.
    Log,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 4] = [Role::Authority, Role::Edge, Role::Ops, Role::Log];

    /// The role's name as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Authority => "authority",
            Role::Edge => "edge",
            Role::Ops => "ops",
            Role::Log => "log",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = WireError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| WireError::invalid("edgevote_role", format!("unknown role {s:?}")))
    }
}

/// Computes the RFC 7638 thumbprint of an Ed25519 public key: SHA-256 over the canonical JSON
/// `{"crv":"Ed25519","kty":"OKP","x":"..."}`, base64url encoded. This is every key's `kid`.
pub fn thumbprint(key: &VerifyingKey) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        b64::encode(key.as_bytes())
    );
    b64::encode(Sha256::digest(canonical.as_bytes()))
}

/// Decodes and checks an Ed25519 public key: a valid point that is not of small order.
pub fn parse_public_key(kid: &str, x: &[u8; 32]) -> Result<VerifyingKey, WireError> {
    let key = VerifyingKey::from_bytes(x).map_err(|_| WireError::WeakKey(kid.to_owned()))?;
    if key.is_weak() {
        return Err(WireError::WeakKey(kid.to_owned()));
    }
    Ok(key)
}

/// One public key as a JWK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicJwk {
    /// Key type; always `OKP`.
    pub kty: String,
    /// Curve; always `Ed25519`.
    pub crv: String,
    /// The 32-byte public key, base64url.
    pub x: String,
    /// Key id: the RFC 7638 thumbprint of this key.
    pub kid: String,
    /// Algorithm; always `EdDSA`.
    pub alg: String,
    /// Public key use; always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// What this key may sign.
    pub edgevote_role: Role,
    /// Unix seconds from which documents signed by this key are accepted.
    pub valid_from: u64,
    /// Unix seconds from which they are no longer accepted (set when the key is rotated out;
    /// the key stays in the set so older documents keep verifying).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<u64>,
    /// Edge keys only: the edge this key belongs to. Receipts and envelopes signed by the key
    /// must name this edge, so one edge's key cannot speak for another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edgevote_edge: Option<String>,
    /// Edge keys only: the region of that edge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edgevote_region: Option<String>,
}

impl PublicJwk {
    /// Describes `key` as a JWK of `role`, valid from `valid_from` with no end yet.
    pub fn new(key: &VerifyingKey, role: Role, valid_from: u64) -> Self {
        PublicJwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: b64::encode(key.as_bytes()),
            kid: thumbprint(key),
            alg: "EdDSA".into(),
            use_: "sig".into(),
            edgevote_role: role,
            valid_from,
            valid_until: None,
            edgevote_edge: None,
            edgevote_region: None,
        }
    }

    /// This key, bound to one edge of one region (edge keys).
    pub fn bound_to(self, edge: &str, region: &str) -> Self {
        PublicJwk {
            edgevote_edge: Some(edge.to_owned()),
            edgevote_region: Some(region.to_owned()),
            ..self
        }
    }

    /// The edge and region an edge key is bound to, if any.
    pub fn binding(&self) -> Option<(&str, &str)> {
        Some((
            self.edgevote_edge.as_deref()?,
            self.edgevote_region.as_deref()?,
        ))
    }

    /// Checks that this key may sign for `edge` in `region`: an edge key must be bound to
    /// exactly that edge and region (an unbound edge key speaks for no edge).
    pub fn check_binding(&self, edge: &str, region: &str) -> Result<(), WireError> {
        if self.binding() == Some((edge, region)) {
            return Ok(());
        }
        Err(WireError::KeyBindingMismatch {
            kid: self.kid.clone(),
            claimed: format!("{edge}@{region}"),
            bound: self
                .binding()
                .map_or_else(|| "no edge".to_owned(), |(e, r)| format!("{e}@{r}")),
        })
    }

    /// Checks the fixed members, decodes the point, refuses weak keys and checks that `kid` is
    /// the key's thumbprint.
    pub fn verifying_key(&self) -> Result<VerifyingKey, WireError> {
        let fixed = [
            ("kty", &self.kty, "OKP"),
            ("crv", &self.crv, "Ed25519"),
            ("alg", &self.alg, "EdDSA"),
            ("use", &self.use_, "sig"),
        ];
        for (field, value, want) in fixed {
            if value != want {
                return Err(WireError::invalid(
                    field,
                    format!("{value:?}, expected {want:?}"),
                ));
            }
        }
        let x = b64::decode_array::<32>("x", &self.x)?;
        let key = parse_public_key(&self.kid, &x)?;
        if thumbprint(&key) != self.kid {
            return Err(WireError::invalid(
                "kid",
                "is not the RFC 7638 thumbprint of the key",
            ));
        }
        if let Some(until) = self.valid_until {
            crate::validate::check_window("valid_from/valid_until", self.valid_from, until)?;
        }
        self.check_binding_fields()?;
        Ok(key)
    }

    /// A binding names both an edge and a region, by valid ids, and only on an edge key.
    fn check_binding_fields(&self) -> Result<(), WireError> {
        match (&self.edgevote_edge, &self.edgevote_region) {
            (None, None) => Ok(()),
            (Some(edge), Some(region)) if self.edgevote_role == Role::Edge => {
                crate::validate::check_id("edgevote_edge", edge)?;
                crate::validate::check_id("edgevote_region", region)
            }
            (Some(_), Some(_)) => Err(WireError::invalid(
                "edgevote_edge",
                "only edge keys are bound to an edge",
            )),
            _ => Err(WireError::invalid(
                "edgevote_edge",
                "edgevote_edge and edgevote_region come together",
            )),
        }
    }

    /// True when a document signed at `at_secs` falls inside this key's validity window.
    pub fn valid_at(&self, at_secs: u64) -> bool {
        at_secs >= self.valid_from && self.valid_until.is_none_or(|until| at_secs < until)
    }
}

/// Strict Ed25519 verification of raw bytes: refuses small-order keys and `R`, and
/// non-canonical `S`.
pub fn verify_message(key: &VerifyingKey, message: &[u8], signature: &[u8; 64]) -> bool {
    crate::strict::verify(key, message, signature)
}

/// [`verify_message`] for a public key given as its 32 bytes (false when they are no key).
pub fn verify_with_public_key(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    VerifyingKey::from_bytes(public_key).is_ok_and(|key| verify_message(&key, message, signature))
}

/// A JWK Set as published: the wire form of [`KeySet`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySetDoc {
    /// The keys, active and archived.
    pub keys: Vec<PublicJwk>,
}

/// A checked key set, indexed by key id, ready for verification.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeySet {
    entries: BTreeMap<String, (PublicJwk, StrictKey)>,
}

impl KeySet {
    /// Builds a key set from JWKs, checking every key.
    pub fn from_jwks(keys: Vec<PublicJwk>) -> Result<Self, WireError> {
        if keys.len() > MAX_KEYS_PER_SET {
            return Err(WireError::invalid(
                "keys",
                format!("{} keys, more than {MAX_KEYS_PER_SET}", keys.len()),
            ));
        }
        let mut entries = BTreeMap::new();
        for jwk in keys {
            let key = StrictKey::new(jwk.verifying_key()?);
            let kid = jwk.kid.clone();
            if entries.insert(kid.clone(), (jwk, key)).is_some() {
                return Err(WireError::DuplicateKeyId(kid));
            }
        }
        Ok(KeySet { entries })
    }

    /// Parses and checks a published JWK Set.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let doc: KeySetDoc = json::parse_bounded("key set", bytes, MAX_KEY_SET_BYTES)?;
        Self::from_jwks(doc.keys)
    }

    /// The wire form, keys ordered by `valid_from` then `kid`.
    pub fn to_doc(&self) -> KeySetDoc {
        let mut keys: Vec<PublicJwk> = self.entries.values().map(|(j, _)| j.clone()).collect();
        keys.sort_by(|a, b| (a.valid_from, &a.kid).cmp(&(b.valid_from, &b.kid)));
        KeySetDoc { keys }
    }

    /// The published JSON, pretty-printed.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(&self.to_doc()).expect("key sets always serialize")
    }

    /// The key set's fingerprint: SHA-256 of its canonical published form
    /// ([`KeySet::to_json_pretty`]), base64url. Two key sets with the same keys, windows and
    /// bindings have the same fingerprint however their files are formatted, so a voter can
    /// compare the set a page or tool used with the one the authority published.
    pub fn fingerprint(&self) -> String {
        crate::digest::Digest32::of(self.to_json_pretty().as_bytes()).to_b64()
    }

    /// Adds a key; errors if its id is already present.
    pub fn insert(&mut self, jwk: PublicJwk) -> Result<(), WireError> {
        let key = StrictKey::new(jwk.verifying_key()?);
        if self.entries.contains_key(&jwk.kid) {
            return Err(WireError::DuplicateKeyId(jwk.kid));
        }
        self.entries.insert(jwk.kid.clone(), (jwk, key));
        Ok(())
    }

    /// Looks up a key by id.
    pub fn get(&self, kid: &str) -> Option<(&PublicJwk, &VerifyingKey)> {
        self.get_strict(kid).map(|(j, k)| (j, k.verifying_key()))
    }

    /// Looks up a key by id, ready for strict verification (see [`StrictKey`]).
    pub fn get_strict(&self, kid: &str) -> Option<(&PublicJwk, &StrictKey)> {
        self.entries.get(kid).map(|(j, k)| (j, k))
    }

    /// Ends the validity of key `kid` at `at_secs` (rotation). The key stays in the set so that
    /// documents signed before `at_secs` keep verifying.
    pub fn retire(&mut self, kid: &str, at_secs: u64) -> Result<(), WireError> {
        let (jwk, _) = self
            .entries
            .get_mut(kid)
            .ok_or_else(|| WireError::UnknownKeyId(kid.to_owned()))?;
        crate::validate::check_window("valid_until", jwk.valid_from, at_secs)?;
        jwk.valid_until = Some(at_secs);
        Ok(())
    }

    /// Every key, in key id order.
    pub fn iter(&self) -> impl Iterator<Item = &PublicJwk> {
        self.entries.values().map(|(j, _)| j)
    }

    /// Keys of `role` with no end of validity.
    pub fn active(&self, role: Role) -> impl Iterator<Item = &PublicJwk> {
        self.iter()
            .filter(move |j| j.edgevote_role == role && j.valid_until.is_none())
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A private signing key with its id and role: what an edge, the authority, ops or the log
/// holds. Signing is deterministic (Ed25519), so this needs no randomness and works in Wasm.
pub struct SigningIdentity {
    key: SigningKey,
    kid: String,
    role: Role,
}

impl std::fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("SigningIdentity")
            .field("kid", &self.kid)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl SigningIdentity {
    /// Wraps a 32-byte Ed25519 secret seed.
    pub fn from_seed(seed: &[u8; 32], role: Role) -> Self {
        let key = SigningKey::from_bytes(seed);
        let kid = thumbprint(&key.verifying_key());
        SigningIdentity { key, kid, role }
    }

    /// The key id (RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The 32-byte secret seed (for writing key files).
    pub fn seed(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// The public JWK of this key, valid from `valid_from`.
    pub fn public_jwk(&self, valid_from: u64) -> PublicJwk {
        PublicJwk::new(&self.verifying_key(), self.role, valid_from)
    }

    /// Signs raw bytes (for formats other than JWS, e.g. signed notes). Prefer [`crate::sign`]
    /// for documents: it adds the type and key id that domain-separate signatures.
    pub fn sign_message(&self, message: &[u8]) -> [u8; 64] {
        self.sign_raw(message).to_bytes()
    }

    pub(crate) fn sign_raw(&self, message: &[u8]) -> ed25519_dalek::Signature {
        use ed25519_dalek::Signer;
        let signature = self.key.sign(message);
        // Catch a faulty signature before it leaves the process (fault attacks, bad builds).
        debug_assert!(
            self.key
                .verifying_key()
                .verify_strict(message, &signature)
                .is_ok(),
            "freshly produced signature must verify"
        );
        signature
    }
}
