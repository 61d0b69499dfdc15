//! Per-IP and per-token rate limits (token buckets) in front of the component: a client over
//! its budget gets 429 with `Retry-After`, before any Wasm runs.
//!
//! The per-token limit runs before the token's signature is checked, so it must not trust what
//! the token says. Its key is a digest of the whole token, not the token's `jti`: a forged token
//! that names an honest voter's `jti` gets a bucket of its own and cannot drain theirs (a valid
//! token is one exact string: its signature is strict Ed25519, not malleable).
//!
//! Both maps are bounded and never refuse a newcomer for being full: when a map is full, the
//! buckets that have refilled (no different from a fresh one) are dropped, and if that is not
//! enough the least recently used sixteenth goes. A flood of junk keys can therefore only
//! give the keys it pushes out a fresh bucket again; it never locks a new voter out.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use edgevote_shared::Digest32;
use serde::Deserialize;

/// Most buckets kept per map.
const MAX_BUCKETS: usize = 100_000;
/// Buckets dropped at once, least recently used first, when a full map has no refilled bucket
/// to drop (one sixteenth: the scan that finds them runs at most once per that many newcomers).
const EVICT_AT_ONCE: usize = MAX_BUCKETS / 16;

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

impl<K: Hash + Eq + Copy> Buckets<K> {
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
                // Still full: the least recently used make room, so a newcomer always gets a
                // bucket (never refused for the map's fullness).
                let mut by_age: Vec<(Instant, K)> = map.iter().map(|(k, b)| (b.last, *k)).collect();
                let evict = EVICT_AT_ONCE.min(by_age.len());
                by_age.select_nth_unstable_by_key(evict - 1, |(last, _)| *last);
                for (_, old) in &by_age[..evict] {
                    map.remove(old);
                }
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
    per_token: Buckets<Digest32>,
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

    /// Admits one vote carrying `token` (the compact JWS, its signature not checked yet: the
    /// bucket is keyed by a digest of the whole token); on refusal, the `Retry-After` in whole
    /// seconds.
    pub fn admit_token(&self, token: &str) -> Result<(), u64> {
        if !self.enabled {
            return Ok(());
        }
        self.per_token
            .take(Digest32::of(token.as_bytes()), Instant::now())
            .map_err(retry_secs)
    }
}

/// The vote token of a vote request body, if it carries a well-formed one (the component checks
/// the rest): what [`RateLimiter::admit_token`] is given.
pub fn vote_token(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct VoteBody {
        token: String,
    }
    let token = serde_json::from_slice::<VoteBody>(body).ok()?.token;
    edgevote_shared::decode_unverified::<edgevote_shared::VoteToken>(&token).ok()?;
    Some(token)
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

#[cfg(test)]
mod lockout {
    use super::*;

    /// An attacker with no valid token fills the per-token map with 100k junk tokens (more than
    /// it holds), then keeps flooding; every honest voter who comes next still gets a bucket.
    #[test]
    fn junk_tokens_never_lock_an_honest_voter_out() {
        let limiter = RateLimiter::new(&RateLimitConfig::default());
        for i in 0..100_000 {
            let _ = limiter.admit_token(&format!("junk-{i}"));
        }
        assert_eq!(limiter.admit_token("honest-voter-1"), Ok(()));
        for i in 100_000..150_000 {
            let _ = limiter.admit_token(&format!("junk-{i}"));
        }
        for voter in 2..50 {
            assert_eq!(
                limiter.admit_token(&format!("honest-voter-{voter}")),
                Ok(())
            );
        }
        // The limit itself still holds for a token that keeps voting.
        for _ in 1..RateLimitConfig::default().per_token_burst {
            assert_eq!(limiter.admit_token("honest-voter-1"), Ok(()));
        }
        assert!(limiter.admit_token("honest-voter-1").is_err());
    }

    /// The same for client addresses (an attacker with many addresses, e.g. an IPv6 prefix).
    #[test]
    fn many_addresses_never_lock_a_new_client_out() {
        let limiter = RateLimiter::new(&RateLimitConfig::default());
        for i in 0..100_000u128 {
            let _ = limiter.admit_ip(IpAddr::V6((0x2001_0db8_u128 << 96 | i).into()));
        }
        assert_eq!(limiter.admit_ip("203.0.113.7".parse().unwrap()), Ok(()));
    }

    /// Forged tokens that copy an honest voter's `jti` (it is not secret once seen) do not
    /// drain the honest voter's bucket: the key is the whole token.
    #[test]
    fn forged_tokens_naming_a_voters_jti_do_not_drain_their_bucket() {
        let authority =
            edgevote_shared::SigningIdentity::from_seed(&[1; 32], edgevote_shared::Role::Authority);
        let claims = edgevote_shared::VoteToken {
            jti: "t-alice".into(),
            sub: "alice".into(),
            aud: "e".into(),
            iat: 1_000,
            nbf: 1_000,
            exp: 2_000,
        };
        let honest = edgevote_shared::sign(&authority, &claims).unwrap();
        let body = |token: &str| format!(r#"{{"election":"e","token":"{token}","choice":"yes"}}"#);
        assert_eq!(vote_token(body(&honest).as_bytes()), Some(honest.clone()));
        assert_eq!(vote_token(b"{\"token\": 5}"), None);
        let limiter = RateLimiter::new(&RateLimitConfig::default());
        let (head, _) = honest.rsplit_once('.').unwrap();
        for i in 0..100u8 {
            let forged = format!("{head}.{}", edgevote_shared::b64::encode([i; 64]));
            let token = vote_token(body(&forged).as_bytes()).expect("well formed");
            let _ = limiter.admit_token(&token);
        }
        let token = vote_token(body(&honest).as_bytes()).unwrap();
        assert_eq!(limiter.admit_token(&token), Ok(()));
    }
}
