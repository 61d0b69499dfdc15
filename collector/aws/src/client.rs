//! Building SDK configuration for a region and an optional custom endpoint.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::config::Credentials;

/// Access key id and secret used against local emulators (moto), which check neither.
pub const LOCAL_CREDENTIALS: (&str, &str) = ("test", "test");

/// Static credentials for local emulators.
pub fn local_credentials() -> Credentials {
    Credentials::new(
        LOCAL_CREDENTIALS.0,
        LOCAL_CREDENTIALS.1,
        None,
        None,
        "edgevote-local",
    )
}

/// Longest wait for a TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest single attempt of a request: above the longest SQS long poll (20 s).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest request, retries included (the SDK's standard mode makes up to 3 attempts).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(100);

/// The timeouts every edgevote client uses, so no request hangs forever.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// Loads the SDK configuration for `region`, with [`timeouts`].
///
/// Without `endpoint_url` this is the standard AWS credential chain (environment, profile, web
/// identity, ECS, IMDS). With `endpoint_url` (moto, LocalStack) the requests go there; when
/// `AWS_ACCESS_KEY_ID` is not set, static [`LOCAL_CREDENTIALS`] are used so a local stack needs
/// no AWS setup (and never waits for the instance metadata service).
pub async fn sdk_config(region: &str, endpoint_url: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .timeout_config(timeouts());
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(local_credentials());
        }
    }
    tracing::debug!(
        region,
        endpoint_url = endpoint_url.unwrap_or("default"),
        "loading aws config"
    );
    loader.load().await
}
