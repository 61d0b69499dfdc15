//! Prices and billing rules ([`Prices`]), and the price file that overrides them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Check, above, between};
use crate::error::PriceFileError;

/// Declares [`Prices`], its defaults and the per-field metadata from one list.
macro_rules! prices {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident = $default:expr, $check:expr, $note:literal;
    )+) => {
        /// Prices and billing rules: on-demand list prices, us-east-1, 2025 (North America for
        /// CloudFront). A price file overrides any of them; unknown keys are refused.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct Prices {
            $( $(#[doc = $doc])+ pub $name: f64, )+
        }

        impl Default for Prices {
            fn default() -> Self {
                Prices { $( $name: $default, )+ }
            }
        }

        impl Prices {
            /// Every price: (key, value, check, what it is), in the order of the list.
            pub fn fields(&self) -> Vec<(&'static str, f64, Check, &'static str)> {
                vec![$( (stringify!($name), self.$name, $check, $note), )+]
            }
        }
    };
}

// list prices, us-east-1, 2025; override with --price-file
prices! {
    /// SQS standard queue, USD per million requests (64 KiB payload chunks).
    usd_per_million_sqs_requests = 0.40, between(0.0, 1e6), "SQS standard requests";
    /// Payload bytes SQS bills as one request.
    sqs_billing_chunk_bytes = 65_536.0, above(0.0, 1e9), "SQS billing rule: each 64 KiB chunk is one request";
    /// DynamoDB on-demand, USD per million write request units.
    usd_per_million_write_request_units = 0.625, between(0.0, 1e6), "DynamoDB on-demand writes";
    /// DynamoDB global tables, USD per million replicated write request units (per replica).
    usd_per_million_replicated_write_request_units = 0.625, between(0.0, 1e6), "DynamoDB global table replicated writes";
    /// DynamoDB on-demand, USD per million read request units.
    usd_per_million_read_request_units = 0.125, between(0.0, 1e6), "DynamoDB on-demand reads";
    /// DynamoDB standard table class storage, USD per GB-month.
    usd_per_gb_month_storage = 0.25, between(0.0, 1e6), "DynamoDB storage";
    /// Bytes DynamoDB adds to every item for storage billing.
    dynamodb_item_overhead_bytes = 100.0, between(0.0, 1e6), "DynamoDB billing rule: 100 bytes per item";
    /// DynamoDB Streams, USD per 100,000 read request units.
    usd_per_100k_stream_read_request_units = 0.02, between(0.0, 1e6), "DynamoDB Streams reads";
    /// Data transfer between AWS regions, USD per GB (global table replication).
    usd_per_gb_inter_region = 0.02, between(0.0, 1e6), "inter-region data transfer";
    /// CloudFront, USD per 10,000 HTTPS requests (North America).
    usd_per_10k_cloudfront_https_requests = 0.01, between(0.0, 1e6), "CloudFront HTTPS requests";
    /// CloudFront data transfer out to the internet, USD per GB (first 10 TB, North America).
    usd_per_gb_cloudfront_out = 0.085, between(0.0, 1e6), "CloudFront transfer out";
    /// CloudFront data transfer to the origin, USD per GB (North America).
    usd_per_gb_cloudfront_to_origin = 0.02, between(0.0, 1e6), "CloudFront transfer to origin";
    /// Cloudflare Workers (Standard), USD per million requests.
    usd_per_million_worker_requests = 0.30, between(0.0, 1e6), "Cloudflare Workers requests";
    /// Cloudflare Workers (Standard), USD per million CPU milliseconds.
    usd_per_million_worker_cpu_ms = 0.02, between(0.0, 1e6), "Cloudflare Workers CPU time";
    /// AWS data transfer out to the internet, USD per GB (first 10 TB).
    usd_per_gb_internet_out = 0.09, between(0.0, 1e6), "AWS transfer out to the internet";
    /// Fargate (Linux, x86), USD per vCPU-hour.
    usd_per_vcpu_hour_fargate = 0.04048, between(0.0, 1e6), "Fargate vCPU";
    /// Fargate (Linux, x86), USD per GB-hour of memory.
    usd_per_gb_hour_fargate = 0.004445, between(0.0, 1e6), "Fargate memory";
}

/// The price file a configuration read, and the keys it set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PriceFile {
    /// Its path as given.
    pub path: String,
    /// The keys it set (the other prices keep their list price).
    pub keys: BTreeSet<String>,
}

/// Reads a price file: flat TOML, one `key = number` per line, `#` comments. Returns the prices
/// (list prices for keys left out) and the keys it set. Unknown keys are refused.
pub fn parse_price_file(text: &str) -> Result<(Prices, BTreeSet<String>), PriceFileError> {
    let mut map = serde_json::Map::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            continue;
        }
        if content.starts_with('[') {
            return Err(PriceFileError::Table { line });
        }
        let Some((key, value)) = content.split_once('=') else {
            return Err(PriceFileError::NotKeyValue { line });
        };
        let (key, value) = (key.trim().to_owned(), value.trim());
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(PriceFileError::NotBareKey { line, key });
        }
        let Some(number) = value
            .replace('_', "")
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        else {
            let value = value.to_owned();
            return Err(PriceFileError::NotANumber { line, key, value });
        };
        if map.contains_key(&key) {
            return Err(PriceFileError::SetTwice { line, key });
        }
        map.insert(key, serde_json::Value::Number(number));
    }
    let keys = map.keys().cloned().collect();
    let prices = serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| PriceFileError::UnknownKey(e.to_string()))?;
    Ok((prices, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_file_is_flat_and_strict() {
        let (prices, keys) =
            parse_price_file("# cheaper queue\nusd_per_million_sqs_requests = 0.2 # note\n\n")
                .unwrap();
        assert_eq!(prices.usd_per_million_sqs_requests, 0.2);
        assert_eq!(prices.usd_per_gb_month_storage, 0.25);
        assert_eq!(keys.len(), 1);
        let unknown = parse_price_file("usd_per_bogus = 1")
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("usd_per_bogus"), "{unknown}");
        let refused = |text: &str| parse_price_file(text).unwrap_err();
        assert_eq!(refused("[prices]"), PriceFileError::Table { line: 1 });
        assert!(matches!(
            refused("usd_per_gb_hour_fargate = \"x\""),
            PriceFileError::NotANumber { line: 1, .. }
        ));
        assert!(matches!(
            refused("usd_per_gb_hour_fargate = 1\nusd_per_gb_hour_fargate = 2"),
            PriceFileError::SetTwice { line: 2, .. }
        ));
        assert!(matches!(
            refused("a b = 1"),
            PriceFileError::NotBareKey { .. }
        ));
        assert_eq!(refused("x"), PriceFileError::NotKeyValue { line: 1 });
    }
}
