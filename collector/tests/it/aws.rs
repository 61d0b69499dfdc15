//! The same suite on the AWS backends (SQS + DynamoDB), against a local moto server that the
//! test starts on 127.0.0.1 and stops. A missing moto install fails the tests (it is installed
//! by `scripts/bootstrap.sh`).

use std::sync::Arc;

use edgevote_aws::moto::MotoServer;
use edgevote_aws::{DynamoStore, SdkDynamo, SqsQueue, create_queue_pair};
use edgevote_queue::Queue;
use edgevote_store::Store;

use crate::suite;

async fn backends(server: &MotoServer) -> (Arc<dyn Queue>, Arc<dyn Store>) {
    let sqs = server.sqs_client();
    let name = MotoServer::unique_name("collector");
    let (url, dlq) = create_queue_pair(&sqs, &name, 5, 2).await.unwrap();
    let dynamo = server.dynamo_client();
    edgevote_aws::dynamo::create_table(&dynamo, &name)
        .await
        .unwrap();
    let queue = SqsQueue::with_client(sqs, &url, &dlq);
    let store = DynamoStore::new(SdkDynamo::new(dynamo, &name), 16);
    (Arc::new(queue), Arc::new(store))
}

macro_rules! aws_suite {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let server = MotoServer::shared().expect("moto server (run scripts/bootstrap.sh python)");
            let (queue, store) = backends(&server).await;
            suite::$name(queue, store).await;
        }
    )*};
}

aws_suite!(
    same_ballot_five_times_counts_once,
    two_ballots_of_one_voter_follow_the_policy,
    crash_after_store_before_delete_counts_once,
    hostile_messages_are_dead_lettered_and_count_nothing,
    packed_envelopes_count_whole_or_not_at_all,
    ballots_beyond_the_voter_limit_are_refused,
    retried_vote_keeps_its_earliest_copy,
);
