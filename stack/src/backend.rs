//! The stack's queues and stores: embedded (files in each region's directory) or AWS (SQS and
//! DynamoDB on an AWS-API endpoint: a moto server `up` starts, or one it is given).
//!
//! On AWS, each region gets a queue pair (`edgevote-votes` and its dead-letter queue, in that
//! region) and a ballot table:
//! - eventual consistency: one table per region (`edgevote-ballots` in that region), which
//!   [`edgevote_aws::dynamo::replicate`] keeps in step as Global Tables would;
//! - strong consistency: one table every region's collector writes (created in the first region):
//!   what multi-region strong consistency shows a client, every acknowledged write visible in
//!   every region.

use std::path::Path;
use std::sync::Arc;

pub use edgevote_aws::Consistency;
use edgevote_aws::dynamo::replicate::RegionTable;
use edgevote_aws::{DynamoStore, SdkDynamo, SqsQueue};
use edgevote_queue::Queue;
use edgevote_store::Store;
use edgevote_store::embedded::{EmbeddedStore, EmbeddedStoreConfig};

use crate::info::{AwsInfo, AwsRegionInfo};
use crate::{BoxError, StackError, StackInfo};

/// Name of every region's vote queue (its dead-letter queue adds `-dlq`).
pub const QUEUE_NAME: &str = "edgevote-votes";
/// Name of the ballot table.
pub const TABLE_NAME: &str = "edgevote-ballots";
/// Visibility timeout of the stack's SQS queues, seconds.
const VISIBILITY_TIMEOUT_SECS: u32 = 30;

/// Which queues and stores a stack runs on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Backend {
    /// The embedded queue and store in each region's directory, replicated in process.
    #[default]
    Embedded,
    /// SQS and DynamoDB.
    Aws {
        /// An AWS-API endpoint to use; `None` starts a local moto server
        /// (`scripts/bootstrap.sh python` installs it).
        endpoint_url: Option<String>,
        /// The ballot tables' consistency mode.
        consistency: Consistency,
    },
}

/// The running AWS services of a stack.
pub struct AwsServices {
    /// The moto server `up` started (stopped when this is dropped).
    _moto: Option<edgevote_aws::moto::MotoServer>,
    /// Where everything is.
    pub info: AwsInfo,
}

impl AwsServices {
    /// Starts moto (without `endpoint_url`) and creates every region's queues and table.
    pub async fn start(
        endpoint_url: Option<&str>,
        consistency: Consistency,
        regions: &[String],
        max_receives: u32,
    ) -> Result<Self, BoxError> {
        let moto = match endpoint_url {
            Some(_) => None,
            // Starting waits (blocking) until the server answers.
            None => {
                Some(tokio::task::spawn_blocking(edgevote_aws::moto::MotoServer::start).await??)
            }
        };
        let endpoint = match (&moto, endpoint_url) {
            (Some(server), _) => server.endpoint_url().to_owned(),
            (None, Some(url)) => url.to_owned(),
            (None, None) => unreachable!("a moto server is started when no endpoint is given"),
        };
        tracing::info!(endpoint = %endpoint, ?consistency, "aws services");
        let mut infos = Vec::with_capacity(regions.len());
        for name in regions {
            let queue = edgevote_aws::provision::queue_pair(
                name,
                &endpoint,
                QUEUE_NAME,
                max_receives,
                VISIBILITY_TIMEOUT_SECS,
            )
            .await?;
            let table_region = match consistency {
                Consistency::Eventual => name,
                Consistency::Strong => &regions[0],
            };
            let store = edgevote_aws::provision::ballot_table(
                table_region,
                &endpoint,
                TABLE_NAME,
                consistency,
            )
            .await?;
            infos.push(AwsRegionInfo {
                name: name.clone(),
                queue,
                store,
            });
        }
        Ok(AwsServices {
            _moto: moto,
            info: AwsInfo {
                endpoint_url: endpoint,
                consistency,
                regions: infos,
            },
        })
    }
}

/// The queue of one region of an AWS-backed stack.
pub async fn aws_queue(region: &AwsRegionInfo) -> Arc<dyn Queue> {
    Arc::new(SqsQueue::connect(&region.queue).await)
}

/// The store of one region of an AWS-backed stack.
pub async fn aws_store(region: &AwsRegionInfo) -> Arc<dyn Store> {
    Arc::new(DynamoStore::connect(&region.store).await)
}

/// The tables replication keeps in step (eventual consistency), one per region; none under
/// strong consistency, where every region writes one table.
pub async fn replicated_tables(info: &AwsInfo) -> Vec<RegionTable> {
    if info.consistency == Consistency::Strong {
        return Vec::new();
    }
    let mut tables = Vec::with_capacity(info.regions.len());
    for region in &info.regions {
        tables.push(RegionTable {
            region: region.name.clone(),
            table: SdkDynamo::connect(&region.store).await,
        });
    }
    tables
}

/// The ballot store of `region` in the stack: its table on AWS (readable while `up` runs), or
/// its embedded store (readable once `up` has stopped: a running stack holds the file).
pub async fn region_store(
    data_dir: &Path,
    stack: &StackInfo,
    region: &str,
) -> Result<Arc<dyn Store>, StackError> {
    let read_err = |source: BoxError| StackError::ReadRegion {
        region: region.to_owned(),
        source,
    };
    match &stack.aws {
        Some(aws) => Ok(aws_store(aws.region(region)?).await),
        None => {
            let path = data_dir.join(region).join("store.redb");
            let store =
                EmbeddedStore::open(&EmbeddedStoreConfig { path: path.clone() }).map_err(|e| {
                    read_err(
                        format!(
                            "opening {} (stop edgevote up first: the store is in use while it \
                             runs): {e}",
                            path.display()
                        )
                        .into(),
                    )
                })?;
            Ok(Arc::new(store))
        }
    }
}
