//! Request rate (token bucket per key) and concurrent stream subscriptions per key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `RATE[:BURST]` requests per second; `0` = unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_s: f64,
    pub burst: f64,
}

impl Rate {
    #[cfg(test)]
    pub const OFF: Rate = Rate { per_s: 0.0, burst: 0.0 };
    pub fn parse(s: &str) -> Result<Rate, String> {
        let (r, b) = match s.split_once(':') {
            Some((r, b)) => (r, Some(b)),
            None => (s, None),
        };
        let per_s: f64 = r.trim().parse().ok().filter(|v: &f64| v.is_finite() && *v >= 0.0).ok_or_else(|| format!("'{s}': expected RATE[:BURST] requests per second (0 = unlimited)"))?;
        let burst = match b {
            Some(b) => b.trim().parse().ok().filter(|v: &f64| v.is_finite() && *v >= 1.0).ok_or_else(|| format!("'{s}': BURST must be a number ≥ 1"))?,
            None => (per_s * 2.0).max(1.0),
        };
        Ok(Rate { per_s, burst })
    }
    pub fn is_off(&self) -> bool {
        self.per_s <= 0.0
    }
}

/// Token buckets by key (a client IP or a token id).
pub struct Buckets {
    rate: Rate,
    map: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Buckets {
    pub fn new(rate: Rate) -> Buckets {
        Buckets { rate, map: Mutex::new(HashMap::new()) }
    }
    /// Takes one token; `Err(wait)` when the bucket is empty (the time until one is back).
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        if self.rate.is_off() {
            return Ok(());
        }
        let now = Instant::now();
        let mut m = self.map.lock().unwrap();
        if m.len() > 100_000 {
            // Forget buckets that have refilled completely (they are equivalent to new ones).
            let r = self.rate;
            m.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * r.per_s < r.burst);
        }
        let e = m.entry(key.to_string()).or_insert((self.rate.burst, now));
        let refilled = (e.0 + now.duration_since(e.1).as_secs_f64() * self.rate.per_s).min(self.rate.burst);
        e.1 = now;
        if refilled >= 1.0 {
            e.0 = refilled - 1.0;
            Ok(())
        } else {
            e.0 = refilled;
            Err(Duration::from_secs_f64((1.0 - refilled) / self.rate.per_s))
        }
    }
}

/// Open stream subscriptions per key, at most `max` each.
#[derive(Clone)]
pub struct Streams {
    max: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// One open subscription; released on drop (when the stream ends).
pub struct StreamPermit {
    key: String,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut m = self.open.lock().unwrap();
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

impl Streams {
    pub fn new(max: usize) -> Streams {
        Streams { max, open: Arc::default() }
    }
    pub fn max(&self) -> usize {
        self.max
    }
    pub fn acquire(&self, key: &str) -> Option<StreamPermit> {
        let mut m = self.open.lock().unwrap();
        let n = m.entry(key.to_string()).or_insert(0);
        if self.max > 0 && *n >= self.max {
            return None;
        }
        *n += 1;
        Some(StreamPermit { key: key.to_string(), open: self.open.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_buckets_refuse_past_the_burst() {
        assert_eq!(Rate::parse("10").unwrap(), Rate { per_s: 10.0, burst: 20.0 });
        assert_eq!(Rate::parse("0.5:3").unwrap(), Rate { per_s: 0.5, burst: 3.0 });
        assert!(Rate::parse("-1").is_err() && Rate::parse("x").is_err() && Rate::parse("1:0").is_err());
        // 0.001 per second: the burst of 3 is all there is within this test.
        let b = Buckets::new(Rate { per_s: 0.001, burst: 3.0 });
        assert!(b.take("a").is_ok() && b.take("a").is_ok() && b.take("a").is_ok());
        let wait = b.take("a").unwrap_err();
        assert!(wait > Duration::from_secs(900), "{wait:?}");
        assert!(b.take("b").is_ok(), "keys have their own buckets");
        assert!(Buckets::new(Rate::OFF).take("a").is_ok());
    }

    #[test]
    fn stream_permits_are_counted_and_released() {
        let s = Streams::new(2);
        let p1 = s.acquire("k").unwrap();
        let _p2 = s.acquire("k").unwrap();
        assert!(s.acquire("k").is_none());
        assert!(s.acquire("other").is_some());
        drop(p1);
        assert!(s.acquire("k").is_some());
    }
}
