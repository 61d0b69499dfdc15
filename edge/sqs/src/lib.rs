//! Building SigV4-signed SQS `SendMessage` requests (JSON protocol) and reading their answers,
//! without I/O, so Wasm edges (Spin, Cloudflare) can send votes to SQS over their platform's
//! outbound HTTP. The full AWS SDK is too big for a Wasm bundle; this is the one call an edge
//! needs.
//!
//! The edge host recognises the same request on its way out of the component
//! ([`parse_send_message`]) and routes it to its own group-commit queue path.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde::{Deserialize, Serialize};

/// The `X-Amz-Target` of SendMessage in the SQS JSON protocol.
pub const SEND_MESSAGE_TARGET: &str = "AmazonSQS.SendMessage";
/// The content type of the SQS JSON protocol.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// Most bytes of a `SendMessage` answer an edge reads (a real one is a few hundred bytes);
/// an answer past it is refused unread.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// Where to send: a queue URL and its region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueTarget {
    /// The queue URL (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`, or a local server's).
    pub queue_url: String,
    /// The region to sign for.
    pub region: String,
}

/// Static credentials (from the platform's secrets).
#[derive(Clone)]
pub struct AwsCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token, for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The credential variables, which `EDGEVOTE_QUEUE_AUTH=none` leaves out.
const CREDENTIAL_VARS: [&str; 3] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// The credentials a component's configuration names (`var` reads a variable): by
/// `EDGEVOTE_QUEUE_AUTH`, `sigv4` (the default) needs `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY` (`AWS_SESSION_TOKEN` optional); `none` (calls go unsigned, which
/// only the edge host's interception accepts) needs all three absent, so that no credential
/// sits in a sandbox that does not use it. The error names the variable.
pub fn credentials_from(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<AwsCredentials>, String> {
    let required =
        |name: &str| var(name).ok_or_else(|| format!("environment variable {name} is not set"));
    match var("EDGEVOTE_QUEUE_AUTH").as_deref() {
        None | Some("sigv4") => Ok(Some(AwsCredentials {
            access_key_id: required("AWS_ACCESS_KEY_ID")?,
            secret_access_key: required("AWS_SECRET_ACCESS_KEY")?,
            session_token: var("AWS_SESSION_TOKEN"),
        })),
        Some("none") => match CREDENTIAL_VARS.iter().find(|name| var(name).is_some()) {
            Some(name) => Err(format!(
                "{name} is set, but EDGEVOTE_QUEUE_AUTH=none: calls go unsigned"
            )),
            None => Ok(None),
        },
        Some(other) => Err(format!(
            "EDGEVOTE_QUEUE_AUTH is {other:?}; expected \"sigv4\" or \"none\""
        )),
    }
}

/// A request ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    /// Always `POST`.
    pub method: &'static str,
    /// The endpoint URL (the queue URL's scheme and authority, path `/`).
    pub url: String,
    /// Headers, the SigV4 signature's included when it was signed.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Vec<u8>,
}

/// Why a request could not be built or its answer was a failure.
#[derive(Debug, thiserror::Error)]
pub enum SqsRequestError {
    /// The queue URL is not `scheme://authority/...`.
    #[error("queue URL {0:?} is not an http(s) URL")]
    BadQueueUrl(String),
    /// SigV4 signing failed.
    #[error("signing the SQS request failed: {0}")]
    Signing(String),
    /// SQS answered with an error.
    #[error("SQS refused the message: HTTP {status}: {detail}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The error type and message SQS gave.
        detail: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendMessageBody {
    queue_url: String,
    message_body: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendMessageAnswer {
    message_id: String,
}

/// The endpoint of a queue URL: scheme and authority with path `/`.
pub fn endpoint_of(queue_url: &str) -> Result<String, SqsRequestError> {
    let bad = || SqsRequestError::BadQueueUrl(queue_url.to_owned());
    let (scheme, rest) = queue_url.split_once("://").ok_or_else(bad)?;
    if !matches!(scheme, "http" | "https") {
        return Err(bad());
    }
    let authority = rest
        .split('/')
        .next()
        .filter(|a| !a.is_empty())
        .ok_or_else(bad)?;
    Ok(format!("{scheme}://{authority}/"))
}

/// Builds a `SendMessage` request carrying `message_body`, SigV4-signed at `now` with
/// `credentials`; with none, unsigned (what the edge host takes from its component into its
/// own group commit; a real queue refuses it).
pub fn send_message(
    target: &QueueTarget,
    credentials: Option<&AwsCredentials>,
    message_body: &str,
    now: SystemTime,
) -> Result<SendRequest, SqsRequestError> {
    let url = endpoint_of(&target.queue_url)?;
    let body = serde_json::to_vec(&SendMessageBody {
        queue_url: target.queue_url.clone(),
        message_body: message_body.to_owned(),
    })
    .map_err(|e| SqsRequestError::Signing(e.to_string()))?;
    let host = url
        .split("://")
        .nth(1)
        .map(|r| r.trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let mut headers = vec![
        ("host".to_owned(), host),
        ("content-type".to_owned(), CONTENT_TYPE.to_owned()),
        ("x-amz-target".to_owned(), SEND_MESSAGE_TARGET.to_owned()),
    ];
    if let Some(credentials) = credentials {
        sign_v4(target, credentials, now, &url, &body, &mut headers)?;
    }
    Ok(SendRequest {
        method: "POST",
        url,
        headers,
        body,
    })
}

/// Adds the SigV4 headers of a `POST` of `body` to `url` with `headers` to `headers`.
fn sign_v4(
    target: &QueueTarget,
    credentials: &AwsCredentials,
    now: SystemTime,
    url: &str,
    body: &[u8],
    headers: &mut Vec<(String, String)>,
) -> Result<(), SqsRequestError> {
    let identity = Credentials::new(
        &credentials.access_key_id,
        &credentials.secret_access_key,
        credentials.session_token.clone(),
        None,
        "edgevote-edge",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&target.region)
        .name("sqs")
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SqsRequestError::Signing(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| SqsRequestError::Signing(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| SqsRequestError::Signing(e.to_string()))?
        .into_parts();
    for (name, value) in instructions.headers() {
        headers.push((name.to_owned(), value.to_owned()));
    }
    Ok(())
}

/// Reads a `SendMessage` answer: the message id on 200, else the error SQS gave.
pub fn read_answer(status: u16, body: &[u8]) -> Result<String, SqsRequestError> {
    if status == 200
        && let Ok(answer) = serde_json::from_slice::<SendMessageAnswer>(body)
    {
        return Ok(answer.message_id);
    }
    let detail = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
    Err(SqsRequestError::Refused { status, detail })
}

/// If `target_header` and `body` are an SQS `SendMessage` call, returns (queue URL, message
/// body). The edge host uses this to take the component's outbound call into its own queue.
pub fn parse_send_message(target_header: Option<&str>, body: &[u8]) -> Option<(String, String)> {
    if target_header != Some(SEND_MESSAGE_TARGET) {
        return None;
    }
    let parsed: SendMessageBody = serde_json::from_slice(body).ok()?;
    Some((parsed.queue_url, parsed.message_body))
}

/// The answer the edge host gives in SQS's place once it made a message durable.
pub fn answer_body(message_id: &str) -> Vec<u8> {
    serde_json::json!({"MessageId": message_id, "MD5OfMessageBody": ""})
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_request_has_sigv4_headers_and_round_trips() {
        let target = QueueTarget {
            queue_url: "http://127.0.0.1:4566/123456789012/votes".into(),
            region: "eu-west-1".into(),
        };
        let creds = AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: None,
        };
        let request = send_message(&target, Some(&creds), "hello", SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(request.url, "http://127.0.0.1:4566/");
        let auth = request
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/19700101/eu-west-1/sqs/aws4_request"
            ),
            "{auth}"
        );
        let (url, body) = parse_send_message(Some(SEND_MESSAGE_TARGET), &request.body).unwrap();
        assert_eq!(
            (url.as_str(), body.as_str()),
            (target.queue_url.as_str(), "hello")
        );
        assert_eq!(read_answer(200, &answer_body("m-1")).unwrap(), "m-1");
        assert!(read_answer(400, b"{\"__type\":\"x\"}").is_err());
        assert!(endpoint_of("ftp://x/y").is_err());

        // Without credentials: the same call, with no SigV4 header at all.
        let unsigned = send_message(&target, None, "hello", SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(
            (&unsigned.url, &unsigned.body),
            (&request.url, &request.body)
        );
        let names: Vec<&str> = unsigned.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["host", "content-type", "x-amz-target"]);
        assert!(request.headers.starts_with(&unsigned.headers));
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn credentials_are_required_unless_calls_go_unsigned_and_then_refused() {
        let both = [("AWS_ACCESS_KEY_ID", "AK"), ("AWS_SECRET_ACCESS_KEY", "SK")];
        let signed = credentials_from(vars(&both)).unwrap().unwrap();
        assert_eq!(
            (signed.access_key_id.as_str(), signed.session_token),
            ("AK", None)
        );
        let explicit = [both[0], both[1], ("EDGEVOTE_QUEUE_AUTH", "sigv4")];
        assert!(credentials_from(vars(&explicit)).unwrap().is_some());
        let missing = credentials_from(vars(&both[..1])).unwrap_err();
        assert!(missing.contains("AWS_SECRET_ACCESS_KEY"), "{missing}");

        let none = ("EDGEVOTE_QUEUE_AUTH", "none");
        assert!(credentials_from(vars(&[none])).unwrap().is_none());
        for name in CREDENTIAL_VARS {
            let refused = credentials_from(vars(&[none, (name, "x")])).unwrap_err();
            assert!(refused.starts_with(name), "{refused}");
        }
        let unknown = credentials_from(vars(&[("EDGEVOTE_QUEUE_AUTH", "off")])).unwrap_err();
        assert!(unknown.contains("\"off\""), "{unknown}");
    }
}
