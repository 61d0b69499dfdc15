//! The queue message: what an edge writes to its regional queue and a collector reads back.
//!
//! A message body is one or more signed queue envelopes ([`crate::QueueEnvelope`], compact
//! JWS), one per line, joined by `\n`. A collector counts a message whole or not at all. This
//! module is the one owner of that format and of its bounds: the edge host's group commit
//! encodes with [`encode`] and packs within [`MAX_ENVELOPES`] and [`MAX_BYTES`], the collector
//! splits with [`split`], and the simulation does both through the same functions.

/// Most envelopes (lines) one message may carry. A collector dead-letters a message with more
/// (`too_many_envelopes`). Under component sealing every vote is its own envelope, so this is
/// also the most votes an edge may pack into one message.
pub const MAX_ENVELOPES: usize = 256;

/// Largest message body in bytes: the classic SQS limit, which the embedded queue keeps too.
pub const MAX_BYTES: usize = 256 * 1024;

/// Why a message body is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The body has no envelope.
    #[error("empty message")]
    Empty,
    /// More lines than [`MAX_ENVELOPES`].
    #[error("more than {MAX_ENVELOPES} envelopes in one message")]
    TooManyEnvelopes,
    /// The body is larger than [`MAX_BYTES`].
    #[error("message of {0} bytes, over the {MAX_BYTES} byte limit")]
    TooLarge(usize),
    /// An envelope to encode contains a line break, so it would read back as two.
    #[error("an envelope contains a line break")]
    LineBreak,
}

impl MessageError {
    /// Stable machine-readable code (what a collector's dead-letter reason starts with).
    pub fn code(&self) -> &'static str {
        match self {
            // An empty body is no JWS at all: the code every unreadable envelope gets.
            MessageError::Empty => "malformed_jws",
            MessageError::TooManyEnvelopes => "too_many_envelopes",
            MessageError::TooLarge(_) => "too_large",
            MessageError::LineBreak => "malformed_jws",
        }
    }
}

/// Bytes a message of envelopes of these sizes takes: the envelopes and one separator between
/// each two. What group commit packs by, so that [`encode`] never refuses its batches.
pub fn encoded_len(envelope_bytes: impl IntoIterator<Item = usize>) -> usize {
    let (count, bytes) = envelope_bytes
        .into_iter()
        .fold((0usize, 0usize), |(n, total), len| (n + 1, total + len));
    bytes + count.saturating_sub(1)
}

/// Encodes envelopes into one message body, checking every bound a collector checks.
pub fn encode<S: AsRef<str>>(envelopes: &[S]) -> Result<String, MessageError> {
    if envelopes.is_empty() {
        return Err(MessageError::Empty);
    }
    if envelopes.len() > MAX_ENVELOPES {
        return Err(MessageError::TooManyEnvelopes);
    }
    if envelopes.iter().any(|e| e.as_ref().contains(['\n', '\r'])) {
        return Err(MessageError::LineBreak);
    }
    let len = encoded_len(envelopes.iter().map(|e| e.as_ref().len()));
    if len > MAX_BYTES {
        return Err(MessageError::TooLarge(len));
    }
    let body = envelopes
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<&str>>()
        .join("\n");
    debug_assert_eq!(body.len(), len, "encoded_len is the encoding's length");
    Ok(body)
}

/// Splits a message body into its envelopes (one per non-empty line), bounded: at most
/// [`MAX_ENVELOPES`] lines are read, and a larger body is refused before any is.
pub fn split(body: &str) -> Result<Vec<&str>, MessageError> {
    if body.len() > MAX_BYTES {
        return Err(MessageError::TooLarge(body.len()));
    }
    let lines: Vec<&str> = body
        .lines()
        .filter(|line| !line.is_empty())
        .take(MAX_ENVELOPES + 1)
        .collect();
    if lines.len() > MAX_ENVELOPES {
        return Err(MessageError::TooManyEnvelopes);
    }
    if lines.is_empty() {
        return Err(MessageError::Empty);
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_and_split_are_inverse() {
        let envelopes = ["a.b.c", "d.e.f", "g.h.i"];
        let body = encode(&envelopes).expect("valid");
        assert_eq!(body.len(), encoded_len(envelopes.iter().map(|e| e.len())));
        assert_eq!(split(&body).expect("valid"), envelopes);
    }

    #[test]
    fn bounds_hold_both_ways() {
        let too_many = vec!["x"; MAX_ENVELOPES + 1];
        assert_eq!(encode(&too_many), Err(MessageError::TooManyEnvelopes));
        assert_eq!(
            split(&too_many.join("\n")),
            Err(MessageError::TooManyEnvelopes)
        );
        assert!(encode(&vec!["x"; MAX_ENVELOPES]).is_ok());
        let big = "x".repeat(MAX_BYTES + 1);
        assert_eq!(encode(&[&big]), Err(MessageError::TooLarge(MAX_BYTES + 1)));
        assert_eq!(split(&big), Err(MessageError::TooLarge(MAX_BYTES + 1)));
        assert_eq!(encode::<&str>(&[]), Err(MessageError::Empty));
        assert_eq!(split("\n\n"), Err(MessageError::Empty));
        assert_eq!(encode(&["a\nb"]), Err(MessageError::LineBreak));
    }

    #[test]
    fn empty_lines_are_skipped_when_splitting() {
        assert_eq!(split("a\n\nb\n").expect("valid"), ["a", "b"]);
    }
}
