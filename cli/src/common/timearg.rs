//! Time arguments: `now`, `+2h` (relative to now), unix seconds, or RFC 3339.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};
pub use edgevote_signer::clock::{now_ms, now_secs};

/// Parses a time argument relative to `now_secs`.
pub fn parse(text: &str, now_secs: u64) -> anyhow::Result<u64> {
    let text = text.trim();
    if text == "now" {
        return Ok(now_secs);
    }
    if let Some(rel) = text.strip_prefix('+') {
        let d = humantime::parse_duration(rel)
            .with_context(|| format!("bad relative time {text:?} (try +30m, +2h, +7d)"))?;
        return Ok(now_secs.saturating_add(d.as_secs()));
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(secs);
    }
    match humantime::parse_rfc3339_weak(text) {
        Ok(t) => Ok(t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)),
        Err(_) => bail!(
            "bad time {text:?}: use now, +DURATION (e.g. +2h), unix seconds, or RFC 3339 (2026-11-25T18:00:00Z)"
        ),
    }
}

/// Formats unix seconds as RFC 3339 UTC.
pub fn show(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(parse("now", 100).unwrap(), 100);
        assert_eq!(parse("+2h", 100).unwrap(), 7300);
        assert_eq!(parse("1700000000", 0).unwrap(), 1_700_000_000);
        assert_eq!(parse("1970-01-01T00:01:00Z", 0).unwrap(), 60);
        assert!(parse("yesterday", 0).is_err());
    }
}
