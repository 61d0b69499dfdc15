//! Backend selection by configuration: the embedded engines or the AWS services. Shared by the
//! collector and the edge host, so both read the same `[queue]` / `[store]` tables.

use std::sync::Arc;

use edgevote_queue::embedded::{EmbeddedQueue, EmbeddedQueueConfig};
use edgevote_queue::{Queue, QueueError};
use edgevote_store::embedded::{EmbeddedStore, EmbeddedStoreConfig};
use edgevote_store::{Store, StoreError};
use serde::Deserialize;

use crate::{DynamoStore, DynamoStoreConfig, SqsQueue, SqsQueueConfig};

/// Which queue backend (`backend = "embedded" | "sqs"` plus that backend's keys).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
pub enum QueueBackendConfig {
    /// The embedded durable queue.
    Embedded(EmbeddedQueueConfig),
    /// Amazon SQS (or an SQS-API server at `endpoint_url`).
    Sqs(SqsQueueConfig),
}

/// Which store backend (`backend = "embedded" | "dynamodb"` plus that backend's keys).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
pub enum StoreBackendConfig {
    /// The embedded store.
    Embedded(EmbeddedStoreConfig),
    /// Amazon DynamoDB (or a DynamoDB-API server at `endpoint_url`).
    Dynamodb(DynamoStoreConfig),
}

/// Opens the configured queue.
pub async fn open_queue(config: &QueueBackendConfig) -> Result<Arc<dyn Queue>, QueueError> {
    match config {
        QueueBackendConfig::Embedded(c) => Ok(Arc::new(EmbeddedQueue::open(c)?)),
        QueueBackendConfig::Sqs(c) => Ok(Arc::new(SqsQueue::connect(c).await)),
    }
}

/// Opens the configured store.
pub async fn open_store(config: &StoreBackendConfig) -> Result<Arc<dyn Store>, StoreError> {
    match config {
        StoreBackendConfig::Embedded(c) => Ok(Arc::new(EmbeddedStore::open(c)?)),
        StoreBackendConfig::Dynamodb(c) => Ok(Arc::new(DynamoStore::connect(c).await)),
    }
}
