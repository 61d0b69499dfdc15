//! Configuration parsing and the config-driven constructors (aws-config loading).

use edgevote_aws::dynamo::DEFAULT_MAX_CONCURRENT_REQUESTS;
use edgevote_aws::moto::MotoServer;
use edgevote_aws::{
    DynamoStore, DynamoStoreConfig, SqsQueue, SqsQueueConfig, create_queue_pair,
    dynamo::create_table,
};
use edgevote_queue::Queue;
use edgevote_store::Store;

use crate::moto;

#[test]
fn configs_parse_with_defaults_and_refuse_unknown_fields() {
    let sqs: SqsQueueConfig = toml::from_str(
        r#"queue_url = "https://sqs.eu-west-1.amazonaws.com/1/votes"
           dead_letter_queue_url = "https://sqs.eu-west-1.amazonaws.com/1/votes-dlq"
           region = "eu-west-1""#,
    )
    .unwrap();
    assert_eq!(sqs.endpoint_url, None);
    let dynamo: DynamoStoreConfig = toml::from_str(
        r#"table_name = "ballots"
                          region = "eu-west-1""#,
    )
    .unwrap();
    assert_eq!(
        dynamo.max_concurrent_requests,
        DEFAULT_MAX_CONCURRENT_REQUESTS
    );
    let unknown = toml::from_str::<DynamoStoreConfig>(
        r#"table_name = "b"
           region = "r"
           max_concurrent = 3"#,
    );
    assert!(unknown.is_err());
}

#[tokio::test]
async fn connect_from_config_reaches_the_endpoint() {
    let server = moto();
    let name = MotoServer::unique_name("configured");
    let (queue_url, dlq_url) = create_queue_pair(&server.sqs_client(), &name, 3, 30)
        .await
        .unwrap();
    let queue = SqsQueue::connect(&SqsQueueConfig {
        queue_url,
        dead_letter_queue_url: dlq_url,
        region: "us-east-1".into(),
        endpoint_url: Some(server.endpoint_url().into()),
    })
    .await;
    queue.send_batch(vec!["hello".into()]).await.unwrap();
    assert_eq!(queue.stats().await.unwrap().visible, 1);

    create_table(&server.dynamo_client(), &name).await.unwrap();
    let store = DynamoStore::connect(&DynamoStoreConfig {
        table_name: name,
        region: "us-east-1".into(),
        endpoint_url: Some(server.endpoint_url().into()),
        max_concurrent_requests: 4,
        consistency: Default::default(),
    })
    .await;
    assert!(store.live_tally("nothing-yet").await.unwrap().is_empty());
}
