//! The screen in front of the component. A request head that no component could answer well is
//! refused here, natively, with a 4xx and a stable code, before its body is read and before an
//! instance is taken:
//!
//! | what | answer |
//! |---|---|
//! | `CONNECT`, `TRACE` or a method outside RFC 9110's set | 405 `method_not_allowed` |
//! | a target that is not a path (authority-form, `*` other than with OPTIONS) | 400 `bad_target` |
//! | HTTP/1.1 without `Host` (and without an absolute URI) | 400 `missing_host` |
//! | two `Host` headers, or one that is not a valid authority | 400 `bad_host` |
//! | two `Content-Type` headers (one reader takes the first, another the last) | 400 `duplicate_header` |
//! | `Expect` other than `100-continue` | 417 `expectation_failed` |
//! | a declared `Content-Length` over the largest ballot | 413 `too_large` (no `100 Continue`) |
//! | a `Content-Encoding` other than identity, a `Transfer-Encoding` other than chunked | 415 `unsupported_encoding` |
//!
//! HTTP/1.0 may omit `Host`: such a request is served with the host's public authority.
//! Why here: a request the component cannot take (wasi-http needs an authority) would otherwise
//! fail inside the runtime as a 500 and cost an instance, and a client announcing a huge body
//! with `Expect: 100-continue` would be invited to send it.

use http::header::{
    CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, HOST, HeaderMap, HeaderValue,
    TRANSFER_ENCODING,
};
use http::{Method, Version};

/// Largest request body the front lets through to the component: the largest ballot any election
/// may accept (an election's own, smaller limit is the component's to enforce).
pub const MAX_BODY_BYTES: usize = edgevote_shared::manifest::MAX_BALLOT_BYTES as usize;

/// A request the front refuses (always a 4xx): the edge's one refusal type, answered with its
/// one body.
pub use edgevote_edge_core::Refusal;

fn refuse(status: u16, code: &'static str, detail: impl std::fmt::Display) -> Refusal {
    debug_assert!(
        (400..500).contains(&status),
        "the front only refuses with 4xx"
    );
    Refusal::new(status, code, detail)
}

/// Checks a request head; on success the head is ready for the component (an HTTP/1.0 request
/// without `Host` gets `public_authority`).
pub fn screen(
    parts: &mut http::request::Parts,
    public_authority: &HeaderValue,
) -> Result<(), Refusal> {
    check_method(&parts.method)?;
    check_target(&parts.method, &parts.uri)?;
    check_host(parts, public_authority)?;
    check_single(&parts.headers, CONTENT_TYPE)?;
    check_expect(&parts.headers)?;
    check_length(&parts.headers)?;
    check_encodings(&parts.headers)
}

fn check_method(method: &Method) -> Result<(), Refusal> {
    let served = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
    ];
    if served.contains(method) {
        return Ok(());
    }
    Err(refuse(
        405,
        "method_not_allowed",
        format!("method {method} is not served"),
    ))
}

fn check_target(method: &Method, uri: &http::Uri) -> Result<(), Refusal> {
    match uri.path_and_query().map(|p| p.path()) {
        Some(path) if path.starts_with('/') => Ok(()),
        Some("*") if method == Method::OPTIONS => Ok(()),
        _ => Err(refuse(
            400,
            "bad_target",
            "the request target must be a path (origin-form or absolute-form)",
        )),
    }
}

fn check_host(
    parts: &mut http::request::Parts,
    public_authority: &HeaderValue,
) -> Result<(), Refusal> {
    let mut hosts = parts.headers.get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(refuse(400, "bad_host", "more than one Host header"));
    }
    match host {
        Some(value) if is_authority(value) => Ok(()),
        Some(_) => Err(refuse(
            400,
            "bad_host",
            "the Host header is not a valid host[:port]",
        )),
        // Absolute-form: the target names the authority (RFC 9112 3.2.2).
        None if parts.uri.authority().is_some() => Ok(()),
        None if parts.version <= Version::HTTP_10 => {
            parts.headers.insert(HOST, public_authority.clone());
            Ok(())
        }
        None => Err(refuse(
            400,
            "missing_host",
            "HTTP/1.1 requests must carry a Host header",
        )),
    }
}

/// Whether a Host value is `host[:port]`: ASCII, an authority without user info.
fn is_authority(value: &HeaderValue) -> bool {
    let Ok(text) = value.to_str() else {
        return false;
    };
    !text.is_empty() && !text.contains('@') && text.parse::<http::uri::Authority>().is_ok()
}

/// A header that must appear at most once: with two, components and proxies could each read
/// a different one.
fn check_single(headers: &HeaderMap, name: http::HeaderName) -> Result<(), Refusal> {
    if headers.get_all(&name).iter().nth(1).is_some() {
        return Err(refuse(
            400,
            "duplicate_header",
            format!("more than one {name} header"),
        ));
    }
    Ok(())
}

fn check_expect(headers: &HeaderMap) -> Result<(), Refusal> {
    for value in headers.get_all(EXPECT) {
        if !value.as_bytes().eq_ignore_ascii_case(b"100-continue") {
            return Err(refuse(
                417,
                "expectation_failed",
                "only Expect: 100-continue is supported",
            ));
        }
    }
    Ok(())
}

fn check_length(headers: &HeaderMap) -> Result<(), Refusal> {
    // The HTTP layer has already refused a malformed or conflicting Content-Length.
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > MAX_BODY_BYTES as u64 => Err(refuse(
            413,
            "too_large",
            format!("a body of {length} bytes is over the limit of {MAX_BODY_BYTES}"),
        )),
        _ => Ok(()),
    }
}

fn check_encodings(headers: &HeaderMap) -> Result<(), Refusal> {
    let only = |name: &http::HeaderName, allowed: &[u8]| {
        headers.get_all(name).iter().all(|value| {
            value
                .as_bytes()
                .split(|b| *b == b',')
                .map(<[u8]>::trim_ascii)
                .all(|coding| coding.eq_ignore_ascii_case(allowed))
        })
    };
    if !only(&CONTENT_ENCODING, b"identity") {
        return Err(refuse(
            415,
            "unsupported_encoding",
            "request bodies must not be content-encoded",
        ));
    }
    if !only(&TRANSFER_ENCODING, b"chunked") {
        return Err(refuse(
            415,
            "unsupported_encoding",
            "the only transfer coding accepted is chunked",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(build: http::request::Builder) -> http::request::Parts {
        build.body(()).expect("valid request").into_parts().0
    }

    fn screened(build: http::request::Builder) -> Result<http::request::Parts, Refusal> {
        let mut parts = parts(build);
        screen(&mut parts, &HeaderValue::from_static("edge.example")).map(|()| parts)
    }

    fn code(build: http::request::Builder) -> Option<&'static str> {
        screened(build).err().map(|r| r.code)
    }

    fn get(version: Version) -> http::request::Builder {
        http::Request::builder()
            .method("GET")
            .uri("/v1/keys")
            .version(version)
    }

    #[test]
    fn host_rules() {
        assert_eq!(code(get(Version::HTTP_11)), Some("missing_host"));
        let served = screened(get(Version::HTTP_10)).expect("HTTP/1.0 may omit Host");
        assert_eq!(served.headers[HOST], "edge.example");
        assert_eq!(
            code(
                get(Version::HTTP_11)
                    .header("host", "a")
                    .header("host", "b")
            ),
            Some("bad_host")
        );
        assert_eq!(
            code(get(Version::HTTP_11).header("host", "u@h")),
            Some("bad_host")
        );
        assert_eq!(
            code(get(Version::HTTP_11).header("host", "")),
            Some("bad_host")
        );
        assert_eq!(
            code(get(Version::HTTP_11).header("host", HeaderValue::from_bytes(b"\xffh").unwrap())),
            Some("bad_host")
        );
        assert_eq!(
            code(get(Version::HTTP_11).header("host", "edge:8080")),
            None
        );
        let absolute = http::Request::builder().uri("http://edge/v1/keys");
        assert_eq!(code(absolute), None);
    }

    #[test]
    fn methods_and_targets() {
        let with = |method: &str, uri: &str| {
            http::Request::builder()
                .method(method)
                .uri(uri)
                .header("host", "e")
        };
        assert_eq!(code(with("CONNECT", "e:443")), Some("method_not_allowed"));
        assert_eq!(code(with("TRACE", "/")), Some("method_not_allowed"));
        assert_eq!(code(with("BREW", "/")), Some("method_not_allowed"));
        assert_eq!(code(with("OPTIONS", "*")), None);
        assert_eq!(code(with("GET", "*")), Some("bad_target"));
        assert_eq!(code(with("GET", "e:443")), Some("bad_target"));
        assert_eq!(
            code(with("DELETE", "/v1/keys")),
            None,
            "the component answers 405 itself"
        );
    }

    #[test]
    fn body_rules() {
        let post = || {
            http::Request::builder()
                .method("POST")
                .uri("/v1/elections/e/votes")
                .header("host", "e")
        };
        let over = (MAX_BODY_BYTES + 1).to_string();
        assert_eq!(
            code(post().header("content-length", over.as_str())),
            Some("too_large")
        );
        assert_eq!(
            code(
                post()
                    .header("content-length", over.as_str())
                    .header("expect", "100-continue")
            ),
            Some("too_large")
        );
        assert_eq!(
            code(
                post()
                    .header("content-length", "500")
                    .header("expect", "100-Continue")
            ),
            None
        );
        assert_eq!(
            code(
                post()
                    .header("content-type", "application/json")
                    .header("content-type", "text/plain")
            ),
            Some("duplicate_header")
        );
        assert_eq!(
            code(post().header("expect", "fly")),
            Some("expectation_failed")
        );
        assert_eq!(
            code(post().header("content-encoding", "gzip")),
            Some("unsupported_encoding")
        );
        assert_eq!(code(post().header("content-encoding", "identity")), None);
        assert_eq!(
            code(post().header("transfer-encoding", "gzip, chunked")),
            Some("unsupported_encoding")
        );
        assert_eq!(code(post().header("transfer-encoding", "Chunked")), None);
    }
}
