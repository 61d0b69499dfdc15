//! edgevote's edge as a Cloudflare Worker (workers-rs, `wasm32-unknown-unknown`).
//!
//! All vote logic is in `edgevote-edge-core`; this adapter reads the configuration from the
//! worker's environment (see [`config`]), converts requests and responses, has the platform's
//! WebCrypto do the Ed25519 work (the core's platform sealing; `EDGEVOTE_CRYPTO=wasm` keeps it
//! in the bundle's Wasm instead). The accepted votes one isolate serves at the same time are
//! sealed together into one envelope, signed once by the edge key, and share an SQS message
//! ([`group`]), sent with a SigV4-signed `SendMessage` (`edgevote-edge-sqs`) over the Workers
//! `fetch`, trying the configured queues in order. Each vote's receipt is signed and returned
//! only after a queue took its message; when none did, the answer is 503 with `Retry-After`
//! and no receipt.
//!
//! The configuration is parsed and the manifests verified on the first request of an isolate
//! and kept for the isolate's life (Cloudflare starts a new isolate when the variables change).
//! `SystemTime::now()` panics on `wasm32-unknown-unknown`, so every time comes from JS
//! `Date.now()`.

pub mod config;
pub mod group;

#[cfg(target_arch = "wasm32")]
mod glue;
#[cfg(target_arch = "wasm32")]
mod webcrypto;

/// Seconds a client should wait before retrying when no queue accepted the vote.
pub const RETRY_AFTER_SECS: u32 = 2;

/// Why one queue did not take the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFailure {
    /// The request could not be built (bad URL, signing error).
    Request(String),
    /// No answer: connection refused, reset, DNS, ...
    Unreachable(String),
    /// No answer within the queue timeout.
    Timeout(u32),
    /// SQS answered, but not with a message id.
    Refused {
        /// HTTP status.
        status: u16,
        /// What SQS said (logged, not sent to the client).
        detail: String,
    },
}

impl SendFailure {
    /// The short form sent to clients: no queue URLs, account ids or SQS messages.
    pub fn public(&self) -> String {
        match self {
            SendFailure::Request(_) => "request could not be built".into(),
            SendFailure::Unreachable(_) => "unreachable".into(),
            SendFailure::Timeout(ms) => format!("no answer within {ms} ms"),
            SendFailure::Refused { status, .. } => format!("refused (HTTP {status})"),
        }
    }
}

impl std::fmt::Display for SendFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendFailure::Request(detail) => write!(f, "request could not be built: {detail}"),
            SendFailure::Unreachable(detail) => write!(f, "unreachable: {detail}"),
            SendFailure::Timeout(ms) => write!(f, "no answer within {ms} ms"),
            SendFailure::Refused { status, detail } => {
                write!(f, "refused (HTTP {status}): {detail}")
            }
        }
    }
}

/// The detail of the 503 answer when every queue failed: region and kind of each failure.
pub fn unavailable_detail(failures: &[(String, SendFailure)]) -> String {
    let tried: Vec<String> = failures
        .iter()
        .map(|(region, failure)| format!("{region}: {}", failure.public()))
        .collect();
    format!(
        "no queue accepted the vote ({}); retry later with the same nonce",
        tried.join("; ")
    )
}

/// The length a `Content-Length` value declares: one or more ASCII digits (RFC 9110 section
/// 8.6), nothing else; `None` for any other value or one past `usize`.
pub fn declared_content_length(value: &str) -> Option<usize> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Whether a `Content-Encoding` value (`None`: no header) says the body is encoded: anything
/// but `identity` (any case, surrounding spaces ignored) counts, an empty or unknown value
/// included, so a body whose decoded length nobody declared is read as a stream.
pub fn is_encoded_coding(value: Option<&str>) -> bool {
    value.is_some_and(|coding| !coding.trim().eq_ignore_ascii_case("identity"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_identity_or_no_coding_leaves_a_body_as_declared() {
        for plain in [None, Some("identity"), Some("IDENTITY"), Some(" identity ")] {
            assert!(!is_encoded_coding(plain), "{plain:?}");
        }
        for encoded in ["gzip", "br", "", "identity, gzip", "x-identity", "deflate"] {
            assert!(is_encoded_coding(Some(encoded)), "{encoded:?}");
        }
    }

    #[test]
    fn a_declared_length_is_digits_and_nothing_else() {
        assert_eq!(declared_content_length("0"), Some(0));
        assert_eq!(declared_content_length("412"), Some(412));
        assert_eq!(declared_content_length("000412"), Some(412));
        for refused in [
            "", " 412", "412 ", "+412", "-1", "4 12", "0x10", "412,412", "١٢",
        ] {
            assert_eq!(declared_content_length(refused), None, "{refused:?}");
        }
        assert_eq!(
            declared_content_length(&usize::MAX.to_string()),
            Some(usize::MAX)
        );
        assert_eq!(declared_content_length("99999999999999999999999"), None);
    }

    #[test]
    fn the_public_detail_leaves_out_what_sqs_said() {
        let failures = vec![
            (
                "eu-west-1".to_owned(),
                SendFailure::Refused {
                    status: 400,
                    detail: "https://sqs.eu-west-1.amazonaws.com/123456789012/votes".into(),
                },
            ),
            (
                "eu-central-1".to_owned(),
                SendFailure::Unreachable("connection refused 10.0.0.1".into()),
            ),
            ("us-east-1".to_owned(), SendFailure::Timeout(3000)),
        ];
        let detail = unavailable_detail(&failures);
        assert_eq!(
            detail,
            "no queue accepted the vote (eu-west-1: refused (HTTP 400); eu-central-1: unreachable; \
             us-east-1: no answer within 3000 ms); retry later with the same nonce"
        );
        assert!(failures[0].1.to_string().contains("123456789012"));
    }
}
