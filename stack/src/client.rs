//! One keep-alive HTTP/1.1 connection to an edge or a collector of the stack.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::BoxError;

/// The connection closed before the request was sent (the server closed it while idle): the
/// server never saw the request, so sending it again on a new connection is safe.
#[derive(Debug, thiserror::Error)]
#[error("connection closed before the request was sent: {0}")]
pub struct NotSent(hyper::Error);

/// A connection to `http://authority`.
pub struct Conn {
    authority: String,
    /// Sent as `X-Forwarded-For` on every request: the client a proxy in front would report.
    forwarded_for: Option<hyper::header::HeaderValue>,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Connects to `url` (`http://host:port`, or just `host:port`).
    pub async fn connect(url: &str) -> Result<Conn, BoxError> {
        Conn::connect_as(url, None).await
    }

    /// [`Conn::connect`] as a client behind a proxy that reports it as `forwarded_for`
    /// (`X-Forwarded-For` on every request), so an edge that trusts one proxy hop keeps its
    /// per-client limits per such client.
    pub async fn connect_as(url: &str, forwarded_for: Option<&str>) -> Result<Conn, BoxError> {
        let forwarded_for = forwarded_for
            .map(hyper::header::HeaderValue::from_str)
            .transpose()?;
        let authority = url.trim_start_matches("http://").to_owned();
        let stream = tokio::net::TcpStream::connect(&authority).await?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Conn {
            authority,
            forwarded_for,
            sender,
        })
    }

    /// POSTs a ballot (`body`, JSON) to the edge's vote endpoint of `election`: status and
    /// body text.
    pub async fn post_vote(
        &mut self,
        election: &str,
        body: Bytes,
    ) -> Result<(u16, String), BoxError> {
        let request = hyper::Request::builder()
            .method("POST")
            .uri(format!("/v1/elections/{election}/votes"))
            .header("host", &self.authority)
            .header("content-type", "application/json")
            .body(Full::new(body))?;
        let (status, bytes) = self.exchange(request).await?;
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// GETs `path` (with a bearer token if given): status and body.
    pub async fn get(
        &mut self,
        path: &str,
        bearer: Option<&str>,
    ) -> Result<(u16, Bytes), BoxError> {
        let mut request = hyper::Request::builder()
            .uri(path)
            .header("host", &self.authority);
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        self.exchange(request.body(Full::new(Bytes::new()))?).await
    }

    /// Whether the connection is known to be closed (by the server: an idle keep-alive
    /// connection is closed after the edge's `header_read_timeout_ms`). A pooled connection
    /// that is closed must not be used.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    async fn exchange(
        &mut self,
        mut request: hyper::Request<Full<Bytes>>,
    ) -> Result<(u16, Bytes), BoxError> {
        if let Some(client) = &self.forwarded_for {
            request
                .headers_mut()
                .insert("x-forwarded-for", client.clone());
        }
        self.sender
            .ready()
            .await
            .map_err(|e| Box::new(NotSent(e)) as BoxError)?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }
}
