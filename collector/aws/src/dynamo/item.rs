//! The item layout (see the module docs of [`crate::dynamo`]), shared by [`super::SdkDynamo`],
//! which turns it into attribute values, and [`super::SimDynamo`], which measures it.

use std::collections::BTreeMap;

use edgevote_store::{StoreError, StoredBallot};

/// Partition key attribute.
pub const PK: &str = "pk";
/// Sort key attribute.
pub const SK: &str = "sk";
/// Number of counter shards per election and region.
pub const COUNTER_SHARDS: u32 = 16;
/// Prefix of a counter item's per-choice attributes.
pub const COUNT_PREFIX: &str = "c#";

/// A scalar attribute value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar {
    /// A string (`S`).
    S(String),
    /// A number (`N`), in decimal.
    N(String),
}

/// Partition key of a voter's ballots.
pub fn ballot_pk(election: &str, voter: &str) -> String {
    format!("ballot#{election}#{voter}")
}

/// Prefix shared by the partition keys of an election's ballots.
pub fn ballot_prefix(election: &str) -> String {
    format!("ballot#{election}#")
}

/// Partition key of a voter's limit slots (strong consistency only).
pub fn claim_pk(election: &str, voter: &str) -> String {
    format!("claim#{election}#{voter}")
}

/// Sort key of one limit slot: zero-padded, so slots sort by number.
pub fn claim_sk(slot: u32) -> String {
    format!("{slot:04}")
}

/// Size of a claim item.
pub fn claim_size(election: &str, voter: &str, slot: u32) -> usize {
    let vote_id_b64 = 43;
    PK.len()
        + claim_pk(election, voter).len()
        + SK.len()
        + claim_sk(slot).len()
        + "vote_id".len()
        + vote_id_b64
}

/// Partition key of one counter shard.
pub fn counter_pk(election: &str, shard: u32) -> String {
    format!("tally#{election}#{shard}")
}

/// Counter attribute of one choice.
pub fn count_attribute(choice: &str) -> String {
    format!("{COUNT_PREFIX}{choice}")
}

/// A counter shard chosen at random (shard 0 if the OS has no randomness to give).
pub fn random_shard() -> u32 {
    getrandom::u32().map_or(0, |r| r % COUNTER_SHARDS)
}

/// True when `part` can be a key component: `#` separates components and `/` cursor parts.
pub fn key_safe(part: &str) -> bool {
    !part.is_empty() && !part.contains(['#', '/'])
}

/// The attributes of a ballot item, keys first.
pub fn ballot_item(ballot: &StoredBallot) -> Vec<(&'static str, Scalar)> {
    let s = |v: &str| Scalar::S(v.to_owned());
    let vote_id = ballot.vote_id.to_b64();
    vec![
        (PK, Scalar::S(ballot_pk(&ballot.election, &ballot.voter))),
        (SK, s(&vote_id)),
        ("election", s(&ballot.election)),
        ("voter", s(&ballot.voter)),
        ("vote_id", Scalar::S(vote_id)),
        ("choice", s(&ballot.choice)),
        ("token_id", s(&ballot.token_id)),
        ("nonce", s(&ballot.nonce)),
        (
            "received_at_ms",
            Scalar::N(ballot.received_at_ms.to_string()),
        ),
        ("edge", s(&ballot.edge)),
        ("region", s(&ballot.region)),
        ("batch_id", s(&ballot.batch_id)),
    ]
}

/// Size of a number as DynamoDB bills it: one byte per two significant digits, plus one.
pub fn number_size(decimal: &str) -> usize {
    let digits: String = decimal.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0');
    significant.len().div_ceil(2) + 1
}

/// Size of one attribute: its name's bytes plus its value's.
pub fn attribute_size(name: &str, value: &Scalar) -> usize {
    name.len()
        + match value {
            Scalar::S(s) => s.len(),
            Scalar::N(n) => number_size(n),
        }
}

/// Size of an item as DynamoDB bills it.
pub fn item_size<'a>(attributes: impl IntoIterator<Item = (&'a str, &'a Scalar)>) -> usize {
    attributes
        .into_iter()
        .map(|(name, value)| attribute_size(name, value))
        .sum()
}

/// Size of a ballot item.
pub fn ballot_size(ballot: &StoredBallot) -> usize {
    item_size(ballot_item(ballot).iter().map(|(n, v)| (*n, v)))
}

/// Size of a counter item holding `counts`.
pub fn counter_size(pk: &str, region: &str, counts: &BTreeMap<String, i64>) -> usize {
    let keys = PK.len() + pk.len() + SK.len() + region.len();
    let values: usize = counts
        .iter()
        .map(|(choice, n)| COUNT_PREFIX.len() + choice.len() + number_size(&n.to_string()))
        .sum();
    keys + values
}

/// The scan cursor for a key: `{pk}/{sk}` (partition keys never hold `/`).
pub fn cursor_of(pk: &str, sk: &str) -> String {
    format!("{pk}/{sk}")
}

/// The key a scan cursor names.
pub fn parse_cursor(cursor: &str) -> Result<(String, String), StoreError> {
    let invalid = || StoreError::Invalid {
        stage: "scan",
        detail: format!("malformed cursor {cursor:?}"),
    };
    let (pk, sk) = cursor.split_once('/').ok_or_else(invalid)?;
    if pk.is_empty() || sk.is_empty() {
        return Err(invalid());
    }
    Ok((pk.to_owned(), sk.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_sizes_follow_dynamodb() {
        assert_eq!(number_size("0"), 1);
        assert_eq!(number_size("1"), 2);
        assert_eq!(number_size("-12"), 2);
        assert_eq!(number_size("1000"), 2);
        assert_eq!(number_size("1764072000123"), 8);
    }

    #[test]
    fn cursor_round_trips() {
        let cursor = cursor_of("ballot#e#v", "abc-_");
        assert_eq!(
            parse_cursor(&cursor).ok(),
            Some(("ballot#e#v".into(), "abc-_".into()))
        );
        assert!(parse_cursor("nocursor").is_err());
    }
}
