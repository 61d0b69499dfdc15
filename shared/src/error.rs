//! Typed errors for every parser and verifier in this crate.
//!
//! Each variant maps to one stable, machine-readable code ([`WireError::code`]). The codes are
//! part of the public contract: the edge returns them in 4xx bodies, the collector writes them as
//! dead-letter reasons, and auditors see them in `edgevote verify`. Never rename a code; add new
//! ones instead.

use thiserror::Error;

/// Why a piece of wire data was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// The input is longer than the bound for its kind.
    #[error("{what} is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// Which input (e.g. "receipt").
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The JSON nests objects/arrays deeper than allowed.
    #[error("JSON nests deeper than {max} levels")]
    TooDeep {
        /// The allowed depth.
        max: usize,
    },
    /// The bytes are not JSON of the expected shape.
    #[error("malformed JSON in {what}: {detail}")]
    MalformedJson {
        /// Which input.
        what: &'static str,
        /// The parser's message.
        detail: String,
    },
    /// Not a JWS compact serialization (three base64url parts).
    #[error("malformed JWS: {0}")]
    MalformedJws(&'static str),
    /// A base64url field does not decode canonically.
    #[error("field {0} is not canonical unpadded base64url")]
    MalformedBase64(&'static str),
    /// The JWS `alg` is not `EdDSA`.
    #[error("unsupported JWS algorithm {0:?}; only EdDSA (Ed25519) is accepted")]
    UnsupportedAlgorithm(String),
    /// The JWS header has members we do not understand (e.g. `crit`).
    #[error("unsupported JWS header: {0}")]
    UnsupportedHeader(String),
    /// The JWS `typ` names another kind of document (domain separation).
    #[error("document type {found:?} where {expected:?} was expected")]
    WrongDocumentType {
        /// The `typ` the verifier wanted.
        expected: &'static str,
        /// The `typ` in the header.
        found: String,
    },
    /// No key with this id in the key set.
    #[error("no key with id {0:?} in the key set")]
    UnknownKeyId(String),
    /// The key exists but belongs to a role that may not sign this document type.
    #[error("key {kid:?} has role {role}, but {typ} must be signed by a {expected} key")]
    KeyRoleMismatch {
        /// The key id.
        kid: String,
        /// The key's role.
        role: &'static str,
        /// The role that signs this document type.
        expected: &'static str,
        /// The document type.
        typ: &'static str,
    },
    /// The key was not valid at the time the document claims it was signed.
    #[error(
        "key {kid:?} was not valid at {at_secs} (valid from {valid_from} until {valid_until:?})"
    )]
    KeyNotValidAtTime {
        /// The key id.
        kid: String,
        /// The document's signing time, unix seconds.
        at_secs: u64,
        /// Start of the key's window, unix seconds.
        valid_from: u64,
        /// End of the key's window (exclusive), unix seconds.
        valid_until: Option<u64>,
    },
    /// A public key is of small order or not a valid curve point.
    #[error("public key {0:?} is weak (small order) or not a valid Ed25519 point")]
    WeakKey(String),
    /// The signature does not verify under strict Ed25519 rules.
    #[error("signature does not verify")]
    BadSignature,
    /// A field is present but its value breaks a rule.
    #[error("invalid field {field}: {reason}")]
    InvalidField {
        /// The field name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Two keys in one key set share a key id.
    #[error("duplicate key id {0:?} in key set")]
    DuplicateKeyId(String),
    /// The token's `exp` has passed.
    #[error("token expired at {exp} (now {now})")]
    TokenExpired {
        /// Expiry, unix seconds.
        exp: u64,
        /// Checking time, unix seconds.
        now: u64,
    },
    /// The token's `nbf` is in the future.
    #[error("token not valid before {nbf} (now {now})")]
    TokenNotYetValid {
        /// Not-before, unix seconds.
        nbf: u64,
        /// Checking time, unix seconds.
        now: u64,
    },
    /// A bundle's Wasm does not match its signed manifest.
    #[error("bundle mismatch: {0}")]
    BundleMismatch(String),
    /// An edge key signed for an edge or region it is not bound to.
    #[error("key {kid} is bound to {bound}, not {claimed}")]
    KeyBindingMismatch {
        /// The signing key.
        kid: String,
        /// The edge@region the document names.
        claimed: String,
        /// The edge@region the key set binds the key to ("no edge" when unbound).
        bound: String,
    },
    /// A receipt names another ballot than the one sent (another choice, nonce or token).
    #[error("ballot mismatch: {0}")]
    BallotMismatch(String),
    /// The document belongs to another election.
    #[error("document is for election {found:?}, not {expected:?}")]
    WrongElection {
        /// The election the verifier wanted.
        expected: String,
        /// The election in the document.
        found: String,
    },
}

impl WireError {
    /// The stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            WireError::TooLarge { .. } => "too_large",
            WireError::TooDeep { .. } => "too_deep",
            WireError::MalformedJson { .. } => "malformed_json",
            WireError::MalformedJws(_) => "malformed_jws",
            WireError::MalformedBase64(_) => "malformed_base64",
            WireError::UnsupportedAlgorithm(_) => "unsupported_alg",
            WireError::UnsupportedHeader(_) => "unsupported_header",
            WireError::WrongDocumentType { .. } => "wrong_document_type",
            WireError::UnknownKeyId(_) => "unknown_key_id",
            WireError::KeyRoleMismatch { .. } => "key_role_mismatch",
            WireError::KeyNotValidAtTime { .. } => "key_not_valid_at_time",
            WireError::WeakKey(_) => "weak_key",
            WireError::BadSignature => "bad_signature",
            WireError::InvalidField { .. } => "invalid_field",
            WireError::DuplicateKeyId(_) => "duplicate_key_id",
            WireError::TokenExpired { .. } => "token_expired",
            WireError::TokenNotYetValid { .. } => "token_not_yet_valid",
            WireError::WrongElection { .. } => "wrong_election",
            WireError::BundleMismatch(_) => "bundle_mismatch",
            WireError::BallotMismatch(_) => "ballot_mismatch",
            WireError::KeyBindingMismatch { .. } => "key_binding_mismatch",
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        WireError::InvalidField {
            field,
            reason: reason.into(),
        }
    }
}

/// Every code [`WireError::code`] can return, for documentation and exhaustive tests.
pub const ALL_CODES: &[&str] = &[
    "too_large",
    "too_deep",
    "malformed_json",
    "malformed_jws",
    "malformed_base64",
    "unsupported_alg",
    "unsupported_header",
    "wrong_document_type",
    "unknown_key_id",
    "key_role_mismatch",
    "key_not_valid_at_time",
    "weak_key",
    "bad_signature",
    "invalid_field",
    "duplicate_key_id",
    "token_expired",
    "token_not_yet_valid",
    "wrong_election",
    "bundle_mismatch",
    "ballot_mismatch",
    "key_binding_mismatch",
];
