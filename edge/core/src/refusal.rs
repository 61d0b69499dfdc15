//! Refusals: every 4xx/5xx answer an edge gives has a status, a stable code and a detail, and
//! one body shape, `{"error": code, "detail": ...}`. [`Refusal::body_json`] is the only place
//! that shape is built: the core's own refusals, the Spin component, the Worker and the edge
//! host (front screen, rate limits, deadlines, admin endpoint) all answer through it.

/// A refusal: HTTP status, stable machine-readable code (see ARCHITECTURE.md, "Error codes"),
/// and a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status (4xx for the client's fault, 5xx for the edge's).
    pub status: u16,
    /// The stable code, the body's `error` member.
    pub code: &'static str,
    /// What was wrong, the body's `detail` member.
    pub detail: String,
}

impl Refusal {
    /// A refusal with `status`, `code` and `detail`.
    pub fn new(status: u16, code: &'static str, detail: impl std::fmt::Display) -> Self {
        Refusal {
            status,
            code,
            detail: detail.to_string(),
        }
    }

    /// The body of every refusal: `{"error": code, "detail": ...}`. An answer that needs one
    /// more member (the admin endpoint's verifier `code`) adds it to this object.
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::json!({"error": self.code, "detail": self.detail})
    }

    /// [`Refusal::body_json`], serialised: the bytes a client receives.
    pub fn body(&self) -> Vec<u8> {
        self.body_json().to_string().into_bytes()
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)
    }
}
