//! [`DynamoApi`] on DynamoDB, through aws-sdk-dynamodb.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ScalarAttributeType,
};
use edgevote_shared::Digest32;
use edgevote_store::{LiveTally, ScanPage, StoreError, StoredBallot};

use super::item::{self, COUNT_PREFIX, COUNTER_SHARDS, PK, SK, Scalar};
use super::{
    BallotWrite, DynamoApi, DynamoStoreConfig, MAX_COUNTER_CHOICES, MAX_QUERY_PAGES, VoterBallots,
};

/// The condition of a ballot put: no copy of the vote is stored, or the stored copy is later
/// than this one by (`received_at_ms`, `edge`, `batch_id`), compared as
/// `edgevote_store::counting::replaces_copy` does (numbers by value, strings by their UTF-8
/// bytes, as DynamoDB compares them). `#t #e #b` name those attributes and `:t :e :b` are this
/// copy's values.
pub const KEEP_EARLIEST_COPY: &str =
    "attribute_not_exists(pk) OR #t > :t OR (#t = :t AND (#e > :e OR (#e = :e AND #b > :b)))";

/// The condition of a claim put: the slot is free, or this vote already holds it (a redelivery
/// after a crash between the claim and the ballot put). `:v` is the vote id.
pub const CLAIM_FREE_OR_MINE: &str = "attribute_not_exists(pk) OR vote_id = :v";

/// The error code of a write that lost to a concurrent write of the same item in another region
/// (multi-region strong consistency); it becomes [`StoreError::Conflict`].
pub const REPLICATED_WRITE_CONFLICT: &str = "ReplicatedWriteConflictException";

/// DynamoDB error codes that mean "slow down"; they become [`StoreError::Throttled`] (after the
/// SDK's own retries).
pub const THROTTLING_CODES: [&str; 3] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
];

pub(crate) type Item = HashMap<String, AttributeValue>;

/// The ballot table on DynamoDB.
#[derive(Debug, Clone)]
pub struct SdkDynamo {
    client: Client,
    table: String,
}

/// Maps an SDK error to a store error, throttling to [`StoreError::Throttled`].
fn store_err<E>(stage: &'static str) -> impl FnOnce(E) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error,
{
    move |e| classify(stage, e.code(), DisplayErrorContext(&e).to_string())
}

/// A store error of the kind an AWS error code calls for.
fn classify(stage: &'static str, code: Option<&str>, detail: String) -> StoreError {
    match code {
        Some(code) if THROTTLING_CODES.contains(&code) => {
            tracing::warn!(stage, code, "dynamodb throttled");
            StoreError::Throttled { stage, detail }
        }
        Some(REPLICATED_WRITE_CONFLICT) => {
            tracing::warn!(
                stage,
                code = REPLICATED_WRITE_CONFLICT,
                "dynamodb write conflict"
            );
            StoreError::Conflict { stage, detail }
        }
        _ => StoreError::Backend { stage, detail },
    }
}

fn attribute_value(value: Scalar) -> AttributeValue {
    match value {
        Scalar::S(s) => AttributeValue::S(s),
        Scalar::N(n) => AttributeValue::N(n),
    }
}

fn key(pk: String, sk: String) -> Item {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(pk)),
        (SK.to_owned(), AttributeValue::S(sk)),
    ])
}

fn string<'a>(stage: &'static str, item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| StoreError::backend(stage, format!("corrupt item: no string {name}")))
}

/// Decodes a ballot item.
fn ballot_of(stage: &'static str, item: &Item) -> Result<StoredBallot, StoreError> {
    let s = |name| string(stage, item, name).map(str::to_owned);
    let received_at_ms = item
        .get("received_at_ms")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| StoreError::backend(stage, "corrupt item: no numeric received_at_ms"))?;
    let vote_id = edgevote_shared::b64::decode_array::<32>("vote_id", &s("vote_id")?)
        .map_err(|e| StoreError::backend(stage, format!("corrupt item: {e}")))?;
    Ok(StoredBallot {
        election: s("election")?,
        voter: s("voter")?,
        vote_id: Digest32(vote_id),
        choice: s("choice")?,
        token_id: s("token_id")?,
        nonce: s("nonce")?,
        received_at_ms,
        edge: s("edge")?,
        region: s("region")?,
        batch_id: s("batch_id")?,
    })
}

/// Adds a counter item's per-choice counts to `tally`.
fn add_counter_item(tally: &mut LiveTally, item: &Item) -> Result<(), StoreError> {
    let region = string("read_counters", item, SK)?;
    let counts = tally.entry(region.to_owned()).or_default();
    for (name, value) in item {
        let Some(choice) = name.strip_prefix(COUNT_PREFIX) else {
            continue;
        };
        let n: i64 = value
            .as_n()
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                StoreError::backend("read_counters", format!("corrupt counter {name}"))
            })?;
        *counts.entry(choice.to_owned()).or_insert(0) += n;
    }
    Ok(())
}

fn cursor_of_key(key: &Item) -> Result<String, StoreError> {
    Ok(item::cursor_of(
        string("scan", key, PK)?,
        string("scan", key, SK)?,
    ))
}

impl SdkDynamo {
    /// Connects with the SDK configuration of `config` (see [`crate::client::sdk_config`]).
    pub async fn connect(config: &DynamoStoreConfig) -> Self {
        let sdk = crate::client::sdk_config(&config.region, config.endpoint_url.as_deref()).await;
        Self::new(Client::new(&sdk), &config.table_name)
    }

    /// Uses an explicit client (tests, or a client configured by the caller).
    pub fn new(client: Client, table: &str) -> Self {
        SdkDynamo {
            client,
            table: table.to_owned(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The items of one partition key (and, with `sk`, of one key), at most `max_items` in at
    /// most [`MAX_QUERY_PAGES`] pages. Each page asks for no more items than are still wanted
    /// (plus one, to know whether there are more), so at most `max_items + 1` items are read.
    /// The flag is false when the key holds more.
    async fn query_bounded(
        &self,
        stage: &'static str,
        pk: String,
        sk: Option<String>,
        consistent: bool,
        max_items: usize,
    ) -> Result<(Vec<Item>, bool), StoreError> {
        let mut items: Vec<Item> = Vec::new();
        let mut start = None;
        for _ in 0..MAX_QUERY_PAGES {
            let wanted = max_items + 1 - items.len();
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .consistent_read(consistent)
                .limit(i32::try_from(wanted).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start);
            query = match &sk {
                Some(sk) => query
                    .key_condition_expression("pk = :pk AND sk = :sk")
                    .expression_attribute_values(":sk", AttributeValue::S(sk.clone())),
                None => query.key_condition_expression("pk = :pk"),
            };
            let out = query.send().await.map_err(store_err(stage))?;
            items.extend_from_slice(out.items());
            if items.len() > max_items {
                items.truncate(max_items);
                return Ok((items, false));
            }
            match out.last_evaluated_key() {
                Some(last) => start = Some(last.clone()),
                None => return Ok((items, true)),
            }
        }
        Ok((items, false))
    }

    /// One raw Scan page of every item (replication between local tables).
    pub(crate) async fn scan_items(
        &self,
        start: Option<Item>,
        limit: i32,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(store_err("replicate"))?;
        Ok((out.items().to_vec(), out.last_evaluated_key().cloned()))
    }

    /// Writes a ballot item another region holds, under the ballot put's condition; false when
    /// this table keeps its earlier copy.
    pub(crate) async fn put_replica_ballot(&self, item: Item) -> Result<bool, StoreError> {
        let field = |name: &str| {
            item.get(name)
                .cloned()
                .ok_or_else(|| StoreError::backend("replicate", format!("ballot without {name}")))
        };
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .condition_expression(KEEP_EARLIEST_COPY)
            .expression_attribute_names("#t", "received_at_ms")
            .expression_attribute_names("#e", "edge")
            .expression_attribute_names("#b", "batch_id")
            .expression_attribute_values(":t", field("received_at_ms")?)
            .expression_attribute_values(":e", field("edge")?)
            .expression_attribute_values(":b", field("batch_id")?)
            .set_item(Some(item))
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(store_err("replicate")(e)),
        }
    }

    /// Overwrites an item with another region's copy (items with one writing region).
    pub(crate) async fn put_replica_item(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(store_err("replicate"))?;
        Ok(())
    }

    /// Every item of one partition key; more than `max_items` is refused.
    async fn query_all(
        &self,
        stage: &'static str,
        pk: String,
        consistent: bool,
        max_items: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let (items, complete) = self
            .query_bounded(stage, pk.clone(), None, consistent, max_items)
            .await?;
        if !complete {
            return Err(StoreError::Invalid {
                stage,
                detail: format!("{pk} holds more than {max_items} items"),
            });
        }
        Ok(items)
    }
}

#[async_trait]
impl DynamoApi for SdkDynamo {
    async fn put_ballot(&self, ballot: &StoredBallot) -> Result<BallotWrite, StoreError> {
        let item = item::ballot_item(ballot)
            .into_iter()
            .map(|(name, value)| (name.to_owned(), attribute_value(value)))
            .collect();
        let received_at_ms = AttributeValue::N(ballot.received_at_ms.to_string());
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(KEEP_EARLIEST_COPY)
            .expression_attribute_names("#t", "received_at_ms")
            .expression_attribute_names("#e", "edge")
            .expression_attribute_names("#b", "batch_id")
            .expression_attribute_values(":t", received_at_ms)
            .expression_attribute_values(":e", AttributeValue::S(ballot.edge.clone()))
            .expression_attribute_values(":b", AttributeValue::S(ballot.batch_id.clone()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match put {
            Ok(out) if out.attributes().is_some_and(|old| !old.is_empty()) => {
                Ok(BallotWrite::Replaced)
            }
            Ok(_) => Ok(BallotWrite::Stored),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(BallotWrite::Kept)
            }
            Err(e) => Err(store_err("put_ballot")(e)),
        }
    }

    async fn query_voter(
        &self,
        election: &str,
        voter: &str,
        max_items: usize,
    ) -> Result<VoterBallots, StoreError> {
        let stage = "query_voter";
        let (items, complete) = self
            .query_bounded(
                stage,
                item::ballot_pk(election, voter),
                None,
                true,
                max_items,
            )
            .await?;
        Ok(VoterBallots {
            ballots: items
                .iter()
                .map(|item| ballot_of(stage, item))
                .collect::<Result<_, _>>()?,
            complete,
        })
    }

    async fn get_ballot(
        &self,
        election: &str,
        voter: &str,
        vote_id: &Digest32,
    ) -> Result<Option<StoredBallot>, StoreError> {
        let stage = "get_ballot";
        let (items, _) = self
            .query_bounded(
                stage,
                item::ballot_pk(election, voter),
                Some(vote_id.to_b64()),
                true,
                1,
            )
            .await?;
        items.first().map(|item| ballot_of(stage, item)).transpose()
    }

    async fn add_counters(
        &self,
        election: &str,
        region: &str,
        deltas: &BTreeMap<String, i64>,
    ) -> Result<(), StoreError> {
        let stage = "add_counters";
        let changes: Vec<(&String, &i64)> = deltas.iter().filter(|(_, d)| **d != 0).collect();
        if changes.is_empty() {
            return Ok(());
        }
        if changes.len() > MAX_COUNTER_CHOICES {
            return Err(StoreError::Invalid {
                stage,
                detail: format!("{} choices, at most {MAX_COUNTER_CHOICES}", changes.len()),
            });
        }
        let pk = item::counter_pk(election, item::random_shard());
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, region.to_owned())));
        let mut clauses = Vec::with_capacity(changes.len());
        for (i, (choice, delta)) in changes.into_iter().enumerate() {
            update = update
                .expression_attribute_names(format!("#c{i}"), item::count_attribute(choice))
                .expression_attribute_values(
                    format!(":d{i}"),
                    AttributeValue::N(delta.to_string()),
                );
            clauses.push(format!("#c{i} :d{i}"));
        }
        update
            .update_expression(format!("ADD {}", clauses.join(", ")))
            .send()
            .await
            .map_err(store_err(stage))?;
        Ok(())
    }

    async fn claim_slot(
        &self,
        election: &str,
        voter: &str,
        slot: u32,
        vote_id: &Digest32,
    ) -> Result<bool, StoreError> {
        let mut item = key(item::claim_pk(election, voter), item::claim_sk(slot));
        item.insert("vote_id".into(), AttributeValue::S(vote_id.to_b64()));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(CLAIM_FREE_OR_MINE)
            .expression_attribute_values(":v", AttributeValue::S(vote_id.to_b64()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(store_err("claim_slot")(e)),
        }
    }

    async fn read_counters(&self, election: &str) -> Result<LiveTally, StoreError> {
        let mut tally = LiveTally::new();
        for shard in 0..COUNTER_SHARDS {
            let pk = item::counter_pk(election, shard);
            for item in self.query_all("read_counters", pk, false, 10_000).await? {
                add_counter_item(&mut tally, &item)?;
            }
        }
        Ok(tally)
    }

    async fn scan_page(
        &self,
        election: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        let stage = "scan";
        let start = cursor
            .as_deref()
            .map(item::parse_cursor)
            .transpose()?
            .map(|(pk, sk)| key(pk, sk));
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(pk, :prefix)")
            .expression_attribute_values(
                ":prefix",
                AttributeValue::S(item::ballot_prefix(election)),
            )
            .consistent_read(true)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(store_err(stage))?;
        Ok(ScanPage {
            ballots: out
                .items()
                .iter()
                .map(|i| ballot_of(stage, i))
                .collect::<Result<_, _>>()?,
            next: out.last_evaluated_key().map(cursor_of_key).transpose()?,
        })
    }
}

/// Creates the ballot table (`pk`, `sk` strings, on-demand). An existing table is fine. For
/// tests and dev; production tables come from the infrastructure templates.
pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let stage = "create_table";
    let build = |e| StoreError::backend(stage, e);
    let attribute = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build)
    };
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .map_err(build)
    };
    let created = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(PK)?)
        .attribute_definitions(attribute(SK)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .send()
        .await;
    match created {
        Ok(_) => {
            tracing::info!(table = name, "dynamodb table created");
            Ok(())
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(store_err(stage)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_become_throttled() {
        for code in THROTTLING_CODES {
            let e = classify("put_ballot", Some(code), "slow down".into());
            assert!(
                matches!(
                    e,
                    StoreError::Throttled {
                        stage: "put_ballot",
                        ..
                    }
                ),
                "{code}"
            );
        }
        let e = classify("claim_slot", Some(REPLICATED_WRITE_CONFLICT), "race".into());
        assert!(matches!(e, StoreError::Conflict { .. }) && e.is_retryable());
        let e = classify("put_ballot", Some("ValidationException"), "bad".into());
        assert!(matches!(e, StoreError::Backend { .. }));
        assert!(matches!(
            classify("scan", None, "io".into()),
            StoreError::Backend { .. }
        ));
    }
}
