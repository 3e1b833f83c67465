//! A mergeable, deletable quantile sketch (DDSketch-style logarithmic buckets).
//!
//! Each value v > 0 goes to bucket k = ⌈ln v / ln γ⌉ with γ = (1 + α)/(1 − α); the bucket's
//! representative 2γᵏ/(γ + 1) is within relative error α of every value in it. Values ≤ 0 share
//! one zero bucket (reported as 0). Counts can be added and removed (events whose state moves
//! out of a filter), and two sketches merge by adding counts. α = 0.5 %.

use std::collections::BTreeMap;

pub const ALPHA: f64 = 0.005;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sketch {
    zero: i64,
    buckets: BTreeMap<i32, i64>,
}

fn gamma_ln() -> f64 {
    ((1.0 + ALPHA) / (1.0 - ALPHA)).ln()
}

impl Sketch {
    pub fn add(&mut self, v: f64, w: i64) {
        if v <= 0.0 || !v.is_finite() {
            self.zero += w;
            return;
        }
        let k = (v.ln() / gamma_ln()).ceil() as i32;
        let e = self.buckets.entry(k).or_insert(0);
        *e += w;
        if *e == 0 {
            self.buckets.remove(&k);
        }
    }
    pub fn merge(&mut self, o: &Sketch) {
        self.zero += o.zero;
        for (k, c) in &o.buckets {
            let e = self.buckets.entry(*k).or_insert(0);
            *e += c;
            if *e == 0 {
                self.buckets.remove(k);
            }
        }
    }
    pub fn count(&self) -> i64 {
        self.zero + self.buckets.values().sum::<i64>()
    }
    /// Nearest-rank percentile p ∈ (0, 100]: the value of rank ⌈p/100 · n⌉ (1-based), within
    /// relative error α.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        let n = self.count();
        if n <= 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as i64;
        let mut seen = self.zero;
        if seen >= rank {
            return Some(0.0);
        }
        let g = gamma_ln().exp();
        for (k, c) in &self.buckets {
            seen += c;
            if seen >= rank {
                return Some(2.0 * g.powi(*k) / (g + 1.0));
            }
        }
        None
    }
    pub fn len(&self) -> usize {
        self.buckets.len() + 1
    }
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn within_alpha() {
        let mut s = Sketch::default();
        for v in 1..=1000 {
            s.add(v as f64, 1);
        }
        // nearest rank of p95 over 1..=1000 is the 950th value = 950
        let p = s.percentile(95.0).unwrap();
        assert!((p - 950.0).abs() <= 950.0 * ALPHA, "{p}");
        s.add(950.0, -1);
        // now 999 values; rank ⌈0.95·999⌉ = 950 → 951
        let p = s.percentile(95.0).unwrap();
        assert!((p - 951.0).abs() <= 951.0 * ALPHA, "{p}");
    }
}
