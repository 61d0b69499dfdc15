//! Per-IP and per-token rate limits (token buckets) in front of the component: a client over
//! its budget gets 429 with `Retry-After`, before any Wasm runs. Both maps are bounded; idle
//! buckets are dropped when a map is full.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Most buckets kept per map.
const MAX_BUCKETS: usize = 100_000;

/// Rate limit settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Whether limits apply at all.
    pub enabled: bool,
    /// Sustained requests per second per client IP.
    pub per_ip_per_sec: u32,
    /// Burst per client IP.
    pub per_ip_burst: u32,
    /// Sustained votes per minute per vote token.
    pub per_token_per_min: u32,
    /// Burst per vote token.
    pub per_token_burst: u32,
    /// Trusted proxies in front of this host that each append to `X-Forwarded-For` (2 for
    /// CloudFront then a load balancer). The client address is the entry this many places from
    /// the right, since entries further left are whatever the client sent. 0: the TCP peer.
    pub forwarded_for_hops: u8,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: true,
            per_ip_per_sec: 100,
            per_ip_burst: 200,
            per_token_per_min: 6,
            per_token_burst: 6,
            forwarded_for_hops: 0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A set of token buckets keyed by `K`.
#[derive(Debug)]
struct Buckets<K> {
    map: Mutex<HashMap<K, Bucket>>,
    rate_per_sec: f64,
    burst: f64,
}

impl<K: Hash + Eq> Buckets<K> {
    fn new(rate_per_sec: f64, burst: f64) -> Self {
        Buckets {
            map: Mutex::new(HashMap::new()),
            rate_per_sec: rate_per_sec.max(1e-6),
            burst: burst.max(1.0),
        }
    }

    /// Takes one token for `key` at `now`; on refusal, how long until one is available.
    fn take(&self, key: K, now: Instant) -> Result<(), Duration> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_BUCKETS && !map.contains_key(&key) {
            let full_after = Duration::from_secs_f64(self.burst / self.rate_per_sec);
            map.retain(|_, b| now.duration_since(b.last) < full_after);
            if map.len() >= MAX_BUCKETS {
                return Err(Duration::from_secs(1)); // still full: shed load rather than grow
            }
        }
        let bucket = map.entry(key).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let refill = now.duration_since(bucket.last).as_secs_f64() * self.rate_per_sec;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.rate_per_sec,
            ))
        }
    }
}

/// The host's limiter.
#[derive(Debug)]
pub struct RateLimiter {
    enabled: bool,
    forwarded_for_hops: u8,
    per_ip: Buckets<IpAddr>,
    per_token: Buckets<String>,
}

impl RateLimiter {
    /// A limiter with `config`.
    pub fn new(config: &RateLimitConfig) -> Self {
        RateLimiter {
            enabled: config.enabled,
            forwarded_for_hops: config.forwarded_for_hops,
            per_ip: Buckets::new(
                f64::from(config.per_ip_per_sec),
                f64::from(config.per_ip_burst),
            ),
            per_token: Buckets::new(
                f64::from(config.per_token_per_min) / 60.0,
                f64::from(config.per_token_burst),
            ),
        }
    }

    /// The address the per-IP limit applies to: the TCP peer, or with `forwarded_for_hops` the
    /// entry a trusted proxy recorded in `X-Forwarded-For` (the peer when it is missing or
    /// malformed).
    pub fn client_ip(&self, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
        let hops = usize::from(self.forwarded_for_hops);
        if hops == 0 {
            return peer;
        }
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect(); // bounded by the head size limit (http.max_header_bytes)
        entries
            .len()
            .checked_sub(hops)
            .and_then(|i| entries[i].parse().ok())
            .unwrap_or(peer)
    }

    /// Admits one request from `ip`; on refusal, the `Retry-After` in whole seconds.
    pub fn admit_ip(&self, ip: IpAddr) -> Result<(), u64> {
        if !self.enabled {
            return Ok(());
        }
        self.per_ip.take(ip, Instant::now()).map_err(retry_secs)
    }

    /// Admits one vote with token id `token`; on refusal, the `Retry-After` in whole seconds.
    pub fn admit_token(&self, token: &str) -> Result<(), u64> {
        if !self.enabled {
            return Ok(());
        }
        self.per_token
            .take(token.to_owned(), Instant::now())
            .map_err(retry_secs)
    }
}

fn retry_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_address_comes_from_the_trusted_proxies() {
        let limiter = RateLimiter::new(&RateLimitConfig {
            forwarded_for_hops: 2,
            ..RateLimitConfig::default()
        });
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        let mut headers = http::HeaderMap::new();
        assert_eq!(
            limiter.client_ip(peer, &headers),
            peer,
            "no header: the peer"
        );
        // The client sent a fake entry; CloudFront appended the client, the balancer CloudFront.
        headers.insert(
            "x-forwarded-for",
            "1.2.3.4, 203.0.113.7, 130.176.0.1".parse().unwrap(),
        );
        assert_eq!(
            limiter.client_ip(peer, &headers),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        headers.insert("x-forwarded-for", "130.176.0.1".parse().unwrap());
        assert_eq!(
            limiter.client_ip(peer, &headers),
            peer,
            "too few entries: the peer"
        );
        headers.insert("x-forwarded-for", "junk, 130.176.0.1".parse().unwrap());
        assert_eq!(
            limiter.client_ip(peer, &headers),
            peer,
            "malformed: the peer"
        );
        let direct = RateLimiter::new(&RateLimitConfig::default());
        assert_eq!(direct.client_ip(peer, &headers), peer, "0 hops: the peer");
    }

    use super::*;

    #[test]
    fn bucket_allows_burst_then_refuses_then_refills() {
        let buckets = Buckets::new(10.0, 3.0);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(buckets.take("a", t0).is_ok());
        }
        let wait = buckets.take("a", t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(buckets.take("b", t0).is_ok(), "keys are independent");
        assert!(buckets.take("a", t0 + Duration::from_millis(150)).is_ok());
    }
}
