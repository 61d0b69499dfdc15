//! Creating a region's queues and ballot table on an AWS-API endpoint (a local moto server or
//! another emulator), for the local stack (`edgevote up --backend aws`). Production resources
//! come from the infrastructure templates (`infra/`), not from here.

use edgevote_queue::QueueError;
use edgevote_store::StoreError;

use crate::dynamo::{Consistency, DynamoStoreConfig, create_table};
use crate::sqs::{SqsQueueConfig, create_queue_pair};

/// Creates (or finds) the queue `name` and its dead-letter queue `name-dlq` in `region` at
/// `endpoint_url`; a message is dead-lettered after `max_receives` receives.
pub async fn queue_pair(
    region: &str,
    endpoint_url: &str,
    name: &str,
    max_receives: u32,
    visibility_timeout_secs: u32,
) -> Result<SqsQueueConfig, QueueError> {
    let sdk = crate::client::sdk_config(region, Some(endpoint_url)).await;
    let client = aws_sdk_sqs::Client::new(&sdk);
    let (queue_url, dead_letter_queue_url) =
        create_queue_pair(&client, name, max_receives, visibility_timeout_secs).await?;
    Ok(SqsQueueConfig {
        queue_url,
        dead_letter_queue_url,
        region: region.to_owned(),
        endpoint_url: Some(endpoint_url.to_owned()),
    })
}

/// Creates (or finds) the ballot table `name` in `region` at `endpoint_url`, and returns the
/// store configuration of a collector that uses it with `consistency`.
pub async fn ballot_table(
    region: &str,
    endpoint_url: &str,
    name: &str,
    consistency: Consistency,
) -> Result<DynamoStoreConfig, StoreError> {
    let sdk = crate::client::sdk_config(region, Some(endpoint_url)).await;
    create_table(&aws_sdk_dynamodb::Client::new(&sdk), name).await?;
    Ok(DynamoStoreConfig {
        table_name: name.to_owned(),
        region: region.to_owned(),
        endpoint_url: Some(endpoint_url.to_owned()),
        max_concurrent_requests: crate::dynamo::DEFAULT_MAX_CONCURRENT_REQUESTS,
        consistency,
    })
}
