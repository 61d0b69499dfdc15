//! Which HTTP version a connection speaks. A client that knows the edge speaks HTTP/2 over
//! plain TCP (prior knowledge, as load balancers and gRPC-style clients do) opens with the
//! HTTP/2 connection preface (RFC 9113 section 3.4); anything else is HTTP/1.
//!
//! The first bytes are read here, within the header-read timeout, so a client that connects
//! and sends nothing is closed like one that stalls in its head. The bytes read are replayed in
//! front of the stream ([`Replayed`]) for the HTTP layer that then serves the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The HTTP/2 connection preface.
pub const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The HTTP version of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.0 or HTTP/1.1 (or bytes the HTTP/1 parser will refuse).
    Http1,
    /// HTTP/2 with prior knowledge.
    Http2,
}

/// Reads the first bytes of `stream` (at most the preface's 24) until they are the HTTP/2
/// preface, or cannot become it, or the client closes. `Err(TimedOut)` when `within` passes
/// first. The bytes read go back in front of the stream.
pub async fn detect<S: AsyncRead + Unpin>(
    mut stream: S,
    within: Duration,
) -> io::Result<(Protocol, Replayed<S>)> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::with_capacity(HTTP2_PREFACE.len());
    let mut buf = [0u8; HTTP2_PREFACE.len()];
    while seen.len() < HTTP2_PREFACE.len() && HTTP2_PREFACE.starts_with(&seen) {
        let wanted = HTTP2_PREFACE.len() - seen.len();
        let read = tokio::time::timeout_at(deadline, stream.read(&mut buf[..wanted]))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no request in time"))??;
        if read == 0 {
            break; // closed: HTTP/1 sees the end and closes quietly
        }
        seen.extend_from_slice(&buf[..read]);
    }
    let protocol = if seen == HTTP2_PREFACE {
        Protocol::Http2
    } else {
        Protocol::Http1
    };
    Ok((
        protocol,
        Replayed {
            prefix: seen,
            offset: 0,
            inner: stream,
        },
    ))
}

/// A stream whose first bytes, already read, are read again first.
#[derive(Debug)]
pub struct Replayed<S> {
    prefix: Vec<u8>,
    offset: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Replayed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.offset < this.prefix.len() {
            let rest = &this.prefix[this.offset..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.offset += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replayed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn detect_bytes(chunks: &[&[u8]]) -> io::Result<(Protocol, Vec<u8>)> {
        let (mut client, server) = tokio::io::duplex(1024);
        for chunk in chunks {
            client.write_all(chunk).await?;
        }
        drop(client);
        let (protocol, mut replayed) = detect(server, Duration::from_secs(1)).await?;
        let mut all = Vec::new();
        replayed.read_to_end(&mut all).await?;
        Ok((protocol, all))
    }

    #[tokio::test]
    async fn the_preface_means_http2_and_every_byte_is_replayed() {
        let settings: &[u8] = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00";
        let (protocol, all) = detect_bytes(&[&HTTP2_PREFACE[..5], &HTTP2_PREFACE[5..], settings])
            .await
            .unwrap();
        assert_eq!(protocol, Protocol::Http2);
        assert_eq!(all, [&HTTP2_PREFACE[..], settings].concat());
    }

    #[tokio::test]
    async fn anything_else_is_http1_decided_at_the_first_differing_byte() {
        for request in [
            &b"GET / HTTP/1.1\r\nHost: e\r\n\r\n"[..],
            b"POST /v1/elections/e/votes HTTP/1.1\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nXX",
            b"PR",
            b"",
        ] {
            let (protocol, all) = detect_bytes(&[request]).await.unwrap();
            assert_eq!(protocol, Protocol::Http1, "{request:?}");
            assert_eq!(all, request);
        }
    }

    #[tokio::test]
    async fn a_silent_client_times_out() {
        let (_client, server) = tokio::io::duplex(64);
        let error = detect(server, Duration::from_millis(20)).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
