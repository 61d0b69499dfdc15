//! edgevote's AWS backends, behind the same traits as the embedded ones:
//! - [`sqs::SqsQueue`] implements `edgevote_queue::Queue` over Amazon SQS (with a dead-letter
//!   queue and a redrive policy, [`sqs::create_queue_pair`]);
//! - [`dynamo::DynamoStore`] implements `edgevote_store::Store` over one DynamoDB table (a Global
//!   Table in production). Its logic runs over the small [`dynamo::DynamoApi`] trait, so the
//!   latency-simulating [`dynamo::SimDynamo`] can be benchmarked with the same code as
//!   [`dynamo::SdkDynamo`].
//!
//! Errors are the trait crates' `QueueError` and `StoreError`, whose stage names the call.
//! With the `local-server` feature, `moto::MotoServer` runs a local moto server for tests.

pub mod backends;
pub mod client;
pub mod dynamo;
#[cfg(feature = "local-server")]
pub mod moto;
pub mod provision;
pub mod sqs;

pub use dynamo::{
    Consistency, DynamoApi, DynamoStore, DynamoStoreConfig, SdkDynamo, SimCosts, SimDynamo,
    SimGlobalTable,
};
pub use sqs::{SqsQueue, SqsQueueConfig, create_queue_pair};
